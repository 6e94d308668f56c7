// Failover scenarios on the lab in a box, measured from the workers: each worker pings Beaker every 100 ms
// while the scenario runs; the lost replies and the longest silence are its cost. Shared by the lab's test
// and `npm run bench:failover`.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../netns.ts";
import type { LocalLab } from "./lab.ts";
import { AZS, BEAKER_IP } from "./topology.ts";

export type ScenarioKind = "replace" | "kill" | "cut-tunnel";

export interface PingResult {
  readonly az: string;
  readonly sent: number;
  readonly received: number;
  readonly lost: number;
  /** The longest time without a reply, in seconds (0.1 s when none was lost). */
  readonly longestGapSeconds: number;
}

export interface ScenarioResult {
  readonly kind: ScenarioKind;
  readonly az: string;
  /** The runner the scenario was played on: the one carrying the AZ's worker subnet. */
  readonly runner: string;
  readonly pings: readonly PingResult[];
  /** From the event reaching labgate to the worker subnet's route on a runner that works, in seconds. */
  readonly eventToRepairSeconds: number | undefined;
  /** From the fault (the kill, the cut) to the repair, detection included, in seconds. */
  readonly faultToRepairSeconds: number | undefined;
  /** What labgate did, reconcile by reconcile: the event, then the kinds of the actions it took. */
  readonly actions: readonly string[];
  readonly reachedBeakerByName: boolean;
}

const PING_INTERVAL_S = 0.1;

/** Pings Beaker from every worker until stopped; returns what each saw. */
const startPings = (lab: LocalLab, tag: string) => {
  const runs = AZS.map((az) => {
    const { host } = lab.worker(az);
    const log = join(lab.dir, `ping-${tag}-${az}.log`);
    // -D: timestamps; -W 2: a late reply still counts; -i 0.1: every 100 ms (root may).
    const pid = host.start(["ping", "-D", "-n", "-i", String(PING_INTERVAL_S), "-W", "2", BEAKER_IP], log);
    return { az, pid, log };
  });
  return async (): Promise<PingResult[]> => {
    // Let the last requests get their replies, then stop; ping prints its summary on SIGINT.
    await new Promise((r) => setTimeout(r, 500));
    for (const r of runs) process.kill(r.pid, "SIGINT");
    await waitFor("the pings to stop", () => runs.every((r) => !existsSync(`/proc/${r.pid}`)), {
      timeoutMs: 5_000,
    });
    return runs.map((r) => parsePing(r.az, readFileSync(r.log, "utf8")));
  };
};

export const parsePing = (az: string, text: string): PingResult => {
  const summary = /(\d+) packets transmitted, (\d+) received/.exec(text);
  const sent = Number(summary?.[1] ?? 0);
  const seqs = [...new Set([...text.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1])))].sort(
    (a, b) => a - b,
  );
  const last = seqs.at(-1) ?? 0;
  // The request sent just before ping was stopped may still be on its way: it is not counted as lost.
  const lost = last - seqs.length + Math.max(0, sent - last - 1);
  let longest = 1;
  const all = [0, ...seqs, Math.max(last + 1, sent)];
  for (let i = 1; i < all.length; i++)
    longest = Math.max(longest, (all[i] as number) - (all[i - 1] as number));
  return {
    az,
    sent,
    received: seqs.length,
    lost,
    longestGapSeconds: Number((longest * PING_INTERVAL_S).toFixed(1)),
  };
};

/**
 * Plays one scenario on the runner that carries the worker subnet of `az`, with fresh workers (a new CI job)
 * whose own runner is another one, so that what is measured is the failover of the route.
 */
export const playScenario = async (
  lab: LocalLab,
  kind: ScenarioKind,
  az: string,
  tag: string,
): Promise<ScenarioResult> => {
  await lab.spawnWorkers();
  const runner = await lab.carrier(az);
  if (!runner) throw new Error(`no runner carries the worker subnet of ${az}`);
  const historyFrom = lab.history.length;
  const routesFrom = lab.routeChanges.length;
  const stop = startPings(lab, tag);
  await new Promise((r) => setTimeout(r, 1_000));
  let faultAt = Date.now();
  if (kind === "replace") {
    await lab.replace(runner);
  } else if (kind === "kill") {
    faultAt = Date.now();
    await lab.kill(runner);
    await lab.settle();
    // The group replaces the instance it lost, as Auto Scaling does.
    await lab.launch(az);
    await lab.settle();
  } else {
    faultAt = Date.now();
    await lab.cutTunnel(runner);
    await lab.settle();
  }
  await new Promise((r) => setTimeout(r, 1_000));
  const pings = await stop();
  if (kind === "cut-tunnel") {
    // The lab's server answers again; the runner is healthy and eligible again (its routes stay where they are).
    await lab.restoreTunnel(runner);
    await lab.settle();
  }
  const repair = lab.routeChanges.slice(routesFrom).find((c) => c.az === az && c.to !== runner);
  const trigger = lab.history
    .slice(historyFrom)
    .find((h) => h.report.actions.some((a) => String(a.kind).endsWith("-route")));
  const reach = await lab.reachBeaker(az);
  return {
    kind,
    az,
    runner,
    pings,
    eventToRepairSeconds: repair && trigger ? seconds(repair.at - trigger.event.at) : undefined,
    faultToRepairSeconds: repair && kind !== "replace" ? seconds(repair.at - faultAt) : undefined,
    actions: lab.history
      .slice(historyFrom)
      .filter((h) => h.report.actions.length > 0)
      .map(
        (h) =>
          `${h.event.trigger.replace(/[0-9a-f-]{36}|i-[0-9a-f]{17}/g, "…")}: ${h.report.actions.map((a) => String(a.kind)).join(", ")}`,
      ),
    reachedBeakerByName: reach.ok,
  };
};

const seconds = (ms: number): number => Number((ms / 1000).toFixed(2));
