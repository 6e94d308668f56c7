// Rolling setups out: when what would be rendered differs from what runners carrying traffic have applied,
// they get it one runner per AZ at a time, so that a configuration change (or a labgate upgrade) never cuts
// every tunnel at once and a bad one is caught on one runner.
//
// - Only runners that may carry traffic now are rolled; any other runner (launching, never set up, failed,
//   alarming) gets its setup at once: it serves nobody, so nothing is at risk.
// - A push that changes the tunnel (`tunnelOf` of the hashes differs) restarts the VPN: the runner drains
//   first (it is ineligible for this plan, so its routes move to another eligible runner, in its AZ or,
//   where allowed, across AZs) and the push waits for those moves. A push that leaves the tunnel alone (a
//   new health reporter) restarts nothing and drains nothing, but is rolled all the same.
// - An AZ takes its next runner only once all its in-service runners work (none with a setup running, a
//   failed setup, an alarm...): at most one runner of an AZ is out at a time. A runner that carries no
//   route goes before one that does.
// - The first failure of a runner's current setup halts the rollout: no runner that works gets a new
//   setup until that one succeeds (it is retried every SETUP_RETRY_MS) or the setup changes again (a fixed
//   configuration), which resumes it on its own.
import type { Runner } from "../world.ts";
import type { Planning } from "./planning.ts";
import {
  appliedSetup,
  carriesRoutes,
  changesTunnel,
  commandPending,
  ineligibility,
  setupFailed,
} from "./runner.ts";

export interface DesiredSetup {
  readonly hash: string;
  readonly script: string;
  readonly credential: string;
}

export interface Rollout {
  /** Runners whose tunnel this plan restarts: they drain (ineligible, routes move), by the reason. */
  readonly draining: ReadonlyMap<string, string>;
  /** Working runners whose setup changes but must wait their turn (they keep their working setup). */
  readonly held: ReadonlySet<string>;
  /** Runners whose failed setup halted the rollout (empty: not halted). */
  readonly halting: readonly string[];
}

const inService = (r: Runner): boolean => r.state === "running" && r.lifecycle === "InService";

export const planRollout = (p: Planning, desired: ReadonlyMap<string, DesiredSetup>): Rollout => {
  const now = p.world.now;
  const draining = new Map<string, string>();
  const held = new Set<string>();
  const stale = (r: Runner): boolean => {
    const d = desired.get(r.instanceId);
    return d !== undefined && appliedSetup(r, now) !== d.hash;
  };
  // Working runners, judged before this plan drains any: the ones a rollout must keep serving.
  const working = p.live.filter((r) => inService(r) && ineligibility(p, r) === undefined);
  const candidates = working.filter((r) => stale(r) && !commandPending(r, now));
  const halting = p.live
    .filter((r) => setupFailed(r, now) && r.command?.hash === desired.get(r.instanceId)?.hash)
    .map((r) => r.instanceId);
  if (candidates.length === 0) return { draining, held, halting };
  if (halting.length > 0) {
    for (const r of candidates) held.add(r.instanceId);
    p.findings.push({
      kind: "rollout-halted",
      message: `the rollout of lab ${p.lab.name}'s setup is halted: it failed on ${halting.join(", ")} (its output is in SSM Run Command history); ${candidates.length} working runner(s) keep their setup (${candidates.map((r) => r.instanceId).join(", ")}). It resumes by itself once a retry succeeds (every 10 min) or the setup changes again`,
    });
    return { draining, held, halting };
  }

  const azs = [...new Set(candidates.map((r) => r.az))].sort();
  for (const az of azs) {
    // At most one runner of an AZ out of service at a time: one whose setup is still running, that failed,
    // that alarms after its new setup, or that is out for any other reason holds the AZ's rollout back.
    const busy = p.live.find(
      (r) =>
        r.az === az &&
        inService(r) &&
        (ineligibility(p, r) !== undefined || (commandPending(r, now) && r.command?.kind === "setup")),
    );
    const ordered = candidates
      .filter((r) => r.az === az)
      .sort(
        (a, b) =>
          Number(carriesRoutes(p, a)) - Number(carriesRoutes(p, b)) ||
          a.instanceId.localeCompare(b.instanceId),
      );
    const next = ordered[0];
    if (next === undefined) continue;
    const wait = (): void => {
      for (const r of ordered) held.add(r.instanceId);
    };
    if (busy !== undefined) {
      wait();
      continue;
    }
    for (const r of ordered.slice(1)) held.add(r.instanceId);
    const hash = desired.get(next.instanceId)?.hash ?? "";
    if (!changesTunnel(appliedSetup(next, now), hash)) continue;
    // Its tunnel restarts: someone must be able to carry what it carries, now or (if none ever can) never.
    const others = working.filter((r) => r !== next);
    const takers = others.filter(
      (r) => !draining.has(r.instanceId) && (r.az === az || p.lab.crossAzFallback),
    );
    const couldEver = others.some((r) => r.az === az || p.lab.crossAzFallback);
    if (takers.length === 0 && couldEver) {
      held.add(next.instanceId);
      continue;
    }
    if (takers.length === 0) {
      // Nobody could ever take over: it keeps what it carries (draining would only cut it off sooner).
      if (!carriesRoutes(p, next)) continue;
      p.findings.push({
        kind: "rollout-interrupts",
        instanceId: next.instanceId,
        message: `${next.instanceId} is the only runner that can carry its worker subnets${p.lab.crossAzFallback ? "" : " (cross-AZ fallback is off)"}: its new setup restarts the tunnel under them (a few seconds without the lab). Run two runners per AZ to roll out without this`,
      });
      continue;
    }
    draining.set(
      next.instanceId,
      `its tunnel is being replaced by setup ${hash} (rolling out, one runner per AZ at a time)`,
    );
  }
  return { draining, held, halting };
};
