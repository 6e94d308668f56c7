// A runner's report of its own tunnel: the value of its TUNNEL_TAG, `<up|down> <UTC time>`, written by its
// tunnel watch when its verdict changes. Read by observe; a recent `down` makes the runner ineligible
// (rules/runner.ts), and no report ever makes a runner eligible that the rest of the world says is not.

export type TunnelState = "up" | "down";

export interface TunnelReport {
  readonly state: TunnelState;
  /** When the runner decided, by its own clock (ms since the epoch). */
  readonly at: number;
}

/**
 * How long a `down` report counts. Longer than the health alarm needs to catch up with a tunnel that stays
 * dead (3 reports of 10 s, and CloudWatch's evaluation): the report then only adds speed. A report whose
 * `up` never came (the watch stopped, the write kept failing) stops counting after this, and the alarm
 * alone decides again.
 */
export const TUNNEL_REPORT_TRUST_MS = 10 * 60_000;

const VALUE = /^(up|down) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$/;

/** The report a tag value holds; undefined for a missing or malformed value (which reports nothing). */
export const parseTunnelReport = (value: string | undefined): TunnelReport | undefined => {
  const m = value === undefined ? null : VALUE.exec(value);
  const at = m ? Date.parse(m[2] as string) : Number.NaN;
  return m && Number.isFinite(at) ? { state: m[1] as TunnelState, at } : undefined;
};

/** The tag value of a report (what the watch writes with `date -u +%Y-%m-%dT%H:%M:%SZ`). */
export const formatTunnelReport = (report: TunnelReport): string =>
  `${report.state} ${new Date(Math.floor(report.at / 1000) * 1000).toISOString().replace(".000Z", "Z")}`;

/** The newer of two reports (by their own time); either may be missing. */
export const newerReport = (
  a: TunnelReport | undefined,
  b: TunnelReport | undefined,
): TunnelReport | undefined => (a === undefined ? b : b === undefined || a.at >= b.at ? a : b);
