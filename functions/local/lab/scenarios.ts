// Failover scenarios on the lab in a box, measured from the workers: each job worker, started from the runner
// that carries its subnet (the one the scenario takes away), pings Beaker and looks its name up every 100 ms
// while the scenario runs; the lost replies, failed lookups and longest silences are its cost. The early
// workers, started at bring-up, must still resolve after every scenario. Shared by the lab's test and
// `npm run bench:failover`.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { eligibility, plan } from "../../core/plan.ts";
import { waitFor } from "../netns.ts";
import type { LocalLab, TimelineEntry } from "./lab.ts";
import { type LookupResult, startLookups } from "./lookups.ts";
import { AZS, BEAKER_IP, DOMAIN } from "./topology.ts";

export type ScenarioKind = "replace" | "kill" | "cut-tunnel" | "rotate" | "config-change" | "bad-config";

/** A second intranet domain: a change of every runner's keyfile (its DNS search list) that works. */
const EXTRA_DOMAIN = `lab2.${DOMAIN}`;
/** A typo in the lab's DNS server (an address of its intranet where nothing answers): every setup fails. */
const WRONG_DNS = "10.200.0.99";

export interface PingResult {
  readonly az: string;
  readonly sent: number;
  readonly received: number;
  /** Requests never answered, among those judged (see `judged`). */
  readonly lost: number;
  /** Requests judged: all but those sent in the last IN_FLIGHT_MS before ping was stopped. */
  readonly judged: number;
  /** When each lost request was sent (ms since the epoch, from ping's own timestamps), for the evidence. */
  readonly lostAt: readonly { readonly seq: number; readonly sentAt: number }[];
  /** The longest time without a reply, in seconds (0.1 s when none was lost). */
  readonly longestGapSeconds: number;
}

export interface ScenarioResult {
  readonly kind: ScenarioKind;
  readonly az: string;
  /** The runner the scenario was played on: the one carrying the AZ's worker subnet. */
  readonly runner: string;
  readonly pings: readonly PingResult[];
  /** Each job worker's lookups of Beaker's name, every 100 ms beside the pings. */
  readonly lookups: readonly LookupResult[];
  /**
   * From the repair of the AZ's routes to lookups back for good on its job worker, in seconds (0: none failed
   * after the repair); undefined without a repair.
   */
  readonly lookupsBackSeconds: number | undefined;
  /** From the event reaching labgate to the worker subnet's route on a runner that works, in seconds. */
  readonly eventToRepairSeconds: number | undefined;
  /** From the fault to the runner's own report of it (a cut tunnel: its watch's detection), in seconds. */
  readonly faultToReportSeconds: number | undefined;
  /** From the fault (the kill, the cut) to the repair, detection included, in seconds. */
  readonly faultToRepairSeconds: number | undefined;
  /** What labgate did, reconcile by reconcile: the event, then the kinds of the actions it took. */
  readonly actions: readonly string[];
  readonly reachedBeakerByName: boolean;
  /** Whether every early worker (started at bring-up, never since) reaches Beaker by name afterwards. */
  readonly earlyWorkersResolve: boolean;
  /** What happened to the lab while the workers pinged (route changes, commands, hooks, hosts). */
  readonly timeline: readonly TimelineEntry[];
  /** The kinds of the findings labgate reported during the scenario. */
  readonly findings: readonly string[];
  /** At the scenario's end: in-service runners per AZ that may not carry traffic (a rollout's cost). */
  readonly outOfServiceByAz: Readonly<Record<string, number>>;
  /** At the scenario's end: runners whose setup differs from what labgate would push (0: rolled out). */
  readonly setupsPending: number;
}

const PING_INTERVAL_S = 0.1;
/**
 * A reply that has not come back this long after its request is a loss; requests sent in the last
 * IN_FLIGHT_MS before ping is stopped are not judged (their replies may still be on their way).
 */
export const IN_FLIGHT_MS = 1_000;
/** How long the workers keep pinging after a scenario: more than IN_FLIGHT_MS, so that its end is judged. */
const QUIET_TAIL_MS = 2_000;

/** Looks Beaker's name up from every job worker until stopped; returns what each saw. */
const startAllLookups = (lab: LocalLab, tag: string) => {
  const stops = AZS.map((az) =>
    startLookups(
      lab.worker(az).host,
      az,
      join(lab.dir, `lookups-${tag}-${az}.log`),
      `beaker.${DOMAIN}`,
      BEAKER_IP,
    ),
  );
  return (): Promise<LookupResult[]> => Promise.all(stops.map((stop) => stop()));
};

/** Pings Beaker from every job worker until stopped; returns what each saw. */
const startPings = (lab: LocalLab, tag: string) => {
  const runs = AZS.map((az) => {
    const { host } = lab.worker(az);
    const log = join(lab.dir, `ping-${tag}-${az}.log`);
    // -D: timestamps; -O: a line for every request still unanswered when the next is sent; -W 2: a late
    // reply still counts; -i 0.1: every 100 ms (root may).
    const pid = host.start(
      ["ping", "-D", "-O", "-n", "-i", String(PING_INTERVAL_S), "-W", "2", BEAKER_IP],
      log,
    );
    return { az, pid, log };
  });
  return async (): Promise<PingResult[]> => {
    const stoppedAt = Date.now();
    for (const r of runs) process.kill(r.pid, "SIGINT");
    await waitFor("the pings to stop", () => runs.every((r) => !existsSync(`/proc/${r.pid}`)), {
      timeoutMs: 5_000,
    });
    return runs.map((r) => parsePing(r.az, readFileSync(r.log, "utf8"), stoppedAt));
  };
};

/**
 * Reads what ping printed (with -D and -O) up to `stoppedAt`. Request k was sent at about
 * first + (k - 1) * interval (ping keeps its schedule); it is lost when no reply to it ever came, unless it was
 * sent in the last IN_FLIGHT_MS before ping was stopped.
 */
export const parsePing = (az: string, text: string, stoppedAt: number): PingResult => {
  const summary = /(\d+) packets transmitted, (\d+) received/.exec(text);
  const sent = Number(summary?.[1] ?? 0);
  const replies = new Map<number, number>();
  const unanswered = new Map<number, number>();
  for (const m of text.matchAll(/^\[(\d+\.\d+)\] (.*)icmp_seq=(\d+)/gm)) {
    const at = Number(m[1]) * 1000;
    const seq = Number(m[3]);
    if ((m[2] ?? "").startsWith("no answer yet")) unanswered.set(seq, at);
    else if (!replies.has(seq)) replies.set(seq, at);
  }
  // The send time of request 1, from the earliest evidence: a reply (at most a round trip late) or a "no
  // answer yet" line (printed when the next request is sent).
  const firstSent = Math.min(
    ...[...replies].map(([seq, at]) => at - (seq - 1) * PING_INTERVAL_S * 1000),
    ...[...unanswered].map(([seq, at]) => at - seq * PING_INTERVAL_S * 1000),
  );
  const sentAt = (seq: number): number => firstSent + (seq - 1) * PING_INTERVAL_S * 1000;
  // Without a single timestamp there is nothing to tell a request in flight from a lost one: all count.
  const judgedSeqs = Array.from({ length: sent }, (_, i) => i + 1).filter(
    (seq) => !Number.isFinite(firstSent) || sentAt(seq) <= stoppedAt - IN_FLIGHT_MS,
  );
  const lostSeqs = judgedSeqs.filter((seq) => !replies.has(seq));
  const answered = [...replies.keys()].sort((a, b) => a - b);
  let longest = 1;
  const all = [0, ...answered, Math.max((answered.at(-1) ?? 0) + 1, judgedSeqs.at(-1) ?? 0)];
  for (let i = 1; i < all.length; i++)
    longest = Math.max(longest, (all[i] as number) - (all[i - 1] as number));
  return {
    az,
    sent,
    received: replies.size,
    lost: lostSeqs.length,
    judged: judgedSeqs.length,
    lostAt: lostSeqs.map((seq) => ({ seq, sentAt: Math.round(sentAt(seq)) })),
    longestGapSeconds: Number((longest * PING_INTERVAL_S).toFixed(1)),
  };
};

/** The evidence for a scenario that lost requests: each lost request, and what happened to the lab around it. */
export const explainLosses = (result: ScenarioResult): string => {
  const lost = [
    ...result.pings.flatMap((p) =>
      p.lostAt.map((l) => ({
        at: l.sentAt,
        text: `worker of ${p.az}: request ${l.seq} sent, never answered`,
      })),
    ),
    ...result.lookups.flatMap((r) =>
      r.failures.map((l) => ({
        at: l.sentAt,
        text: `worker of ${r.az}: lookup ${l.seq} sent, failed after ${((l.endedAt - l.sentAt) / 1000).toFixed(2)} s (${l.answer})`,
      })),
    ),
  ];
  if (lost.length === 0) return `${result.kind} in ${result.az}: no request lost, no lookup failed`;
  const first = Math.min(...lost.map((l) => l.at));
  const line = (at: number, text: string) => `  ${((at - first) / 1000).toFixed(3).padStart(8)} s  ${text}`;
  const rows = [...lost, ...result.timeline.map((e) => ({ at: e.at, text: e.text }))].sort(
    (a, b) => a.at - b.at,
  );
  return [
    `${result.kind} in ${result.az} (runner ${result.runner}) lost requests or lookups:`,
    ...rows.map((r) => line(r.at, r.text)),
  ].join("\n");
};

/**
 * Plays one scenario on the runner that carries the worker subnet of `az`, with fresh job workers (a new CI job)
 * started from that very runner, so that what is measured is the worst case: the worker loses the runner that
 * spawned it (its second DNS server) as well as its subnet's route.
 */
export const playScenario = async (
  lab: LocalLab,
  kind: ScenarioKind,
  az: string,
  tag: string,
): Promise<ScenarioResult> => {
  // Reports of the last scenario's runners (a new runner's first, a restarted watch's) are in first.
  await lab.awaitWatchesUp();
  await lab.spawnWorkers("job");
  const runner = await lab.carrier(az);
  if (!runner) throw new Error(`no runner carries the worker subnet of ${az}`);
  const historyFrom = lab.history.length;
  const timelineFrom = lab.timeline.length;
  await lab.noteState("at the start");
  const stopPings = startPings(lab, tag);
  const stopLookups = startAllLookups(lab, tag);
  await new Promise((r) => setTimeout(r, 1_000));
  let faultAt = Date.now();
  if (kind === "replace") {
    await lab.replace(runner);
  } else if (kind === "rotate") {
    // The carrier's key is rotated out of the pool: it drains, stops, and comes back with another key.
    await lab.rotate(runner);
  } else if (kind === "config-change") {
    // A setting that changes every keyfile, deployed: labgate rolls it out, one runner per AZ at a time.
    const added = !lab.lab.intranetDomains.includes(EXTRA_DOMAIN);
    await lab.deploy(
      { intranetDomains: added ? [DOMAIN, EXTRA_DOMAIN] : undefined },
      added ? `intranetDomains + ${EXTRA_DOMAIN}` : `intranetDomains - ${EXTRA_DOMAIN}`,
    );
  } else if (kind === "bad-config") {
    // A typo in the DNS server: every setup fails. The rollout must halt after the first runners.
    await lab.deploy({ dnsServers: [WRONG_DNS] }, `dnsServers = ${WRONG_DNS} (a typo)`);
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
  await new Promise((r) => setTimeout(r, QUIET_TAIL_MS));
  const [pings, lookups] = await Promise.all([stopPings(), stopLookups()]);
  await lab.noteState("at the end");
  const timeline = lab.timeline.slice(timelineFrom);
  const world = await lab.observe();
  const verdicts = eligibility(world, lab.lab);
  const outOfServiceByAz = Object.fromEntries(
    AZS.map((x) => [
      x,
      world.runners.filter(
        (r) => r.az === x && r.lifecycle === "InService" && verdicts.get(r.instanceId) !== undefined,
      ).length,
    ]),
  );
  const setupsPending = plan(world, lab.lab).actions.filter((a) => a.kind === "push-setup").length;
  const findings = [
    ...new Set(lab.history.slice(historyFrom).flatMap((h) => h.report.findings.map((f) => f.kind))),
  ].sort();
  if (kind === "bad-config") {
    // The fix, deployed: the failed runners get their working setup back, the lab is whole again.
    await lab.deploy({ dnsServers: undefined }, "dnsServers fixed");
    // The failed runners' watches probed the wrong server and reported their tunnels down; the fixed setup
    // restarts them, and their up reports make those runners eligible again.
    await lab.awaitWatchesUp();
  }
  if (kind === "cut-tunnel") {
    // The lab's server answers again; the runner is healthy and eligible again (its routes stay where they are).
    await lab.restoreTunnel(runner);
    await lab.settle();
  }
  const repair = timeline.find((e) => e.kind === "route" && e.az === az && e.runner !== runner);
  const report = timeline.find((e) => e.kind === "report" && e.runner === runner);
  const trigger = lab.history
    .slice(historyFrom)
    .find((h) => h.report.actions.some((a) => String(a.kind).endsWith("-route")));
  const [reach, ...early] = await Promise.all([
    lab.reachBeaker(az),
    ...AZS.map((a) => lab.reachBeaker(a, { role: "early" })),
  ]);
  const own = lookups.find((l) => l.az === az);
  return {
    kind,
    az,
    runner,
    pings,
    lookups,
    lookupsBackSeconds:
      repair === undefined || own === undefined
        ? undefined
        : own.backAt === undefined
          ? 0
          : seconds(Math.max(0, own.backAt - repair.at)),
    eventToRepairSeconds: repair && trigger ? seconds(repair.at - trigger.event.at) : undefined,
    faultToReportSeconds:
      report && (kind === "kill" || kind === "cut-tunnel") ? seconds(report.at - faultAt) : undefined,
    faultToRepairSeconds:
      repair && (kind === "kill" || kind === "cut-tunnel") ? seconds(repair.at - faultAt) : undefined,
    actions: lab.history
      .slice(historyFrom)
      .filter((h) => h.report.actions.length > 0)
      .map(
        (h) =>
          `${h.event.trigger.replace(/[0-9a-f-]{36}|i-[0-9a-f]{17}|\/labgate\/\w+\/vpn\/client-\d+/g, "…")}: ${h.report.actions.map((a) => String(a.kind)).join(", ")}`,
      ),
    reachedBeakerByName: reach?.ok === true,
    earlyWorkersResolve: early.every((e) => e.ok),
    timeline,
    findings,
    outOfServiceByAz,
    setupsPending,
  };
};

const seconds = (ms: number): number => Number((ms / 1000).toFixed(2));
