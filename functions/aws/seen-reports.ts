// Tunnel reports that reached the function in Tag Change events, laid over what DescribeInstances shows for a
// while: EC2's reads are eventually consistent, and the reconcile that the event starts may otherwise read the
// tag as it was before the report. Only a newer report (by the runner's own time) replaces the one read, and
// the tag stays the truth: a cold container, or one that missed the event, reads it from EC2 alone.
import { newerReport, type TunnelReport } from "../core/tunnel-report.ts";
import type { ObservedRunner } from "../reconcile/store.ts";

/** How long a report seen in an event is laid over EC2's reads: far longer than EC2 takes to show a tag. */
export const SEEN_REPORT_MS = 2 * 60_000;

export class SeenReports {
  private readonly reports = new Map<string, { readonly report: TunnelReport; readonly seenAt: number }>();

  /** Remembers a report an event carried (from AWS: the tag's value when it changed). */
  note(instanceId: string, report: TunnelReport, now: number): void {
    const known = this.reports.get(instanceId)?.report;
    if (newerReport(report, known) === report) this.reports.set(instanceId, { report, seenAt: now });
  }

  /** The runner with the newer of its tag's report and one seen lately in an event. */
  laidOver<R extends ObservedRunner>(runner: R, now: number): R {
    for (const [id, { seenAt }] of this.reports) if (now - seenAt > SEEN_REPORT_MS) this.reports.delete(id);
    const seen = this.reports.get(runner.instanceId)?.report;
    if (seen === undefined) return runner;
    return { ...runner, tunnelReport: newerReport(runner.tunnelReport, seen) };
  }
}
