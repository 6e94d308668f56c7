// The Auto Scaling lifecycle hooks, and runners that give their key back. A launching runner is let into
// service only once its setup succeeded; a terminating one gives up its routes first, then its VPN, then its
// credential, and only then goes; a runner that must give up its key (retired, or set up without a lease)
// does the same without going; a terminated one's lease and record are cleared.
import { renderStopVpn } from "../../render/index.ts";
import { LAUNCH_HOOK, TERMINATE_HOOK } from "../names.ts";
import type { Runner } from "../world.ts";
import type { Leases } from "./credentials.ts";
import type { Planning } from "./planning.ts";
import type { DesiredSetup } from "./rollout.ts";
import { appliedSetup, carriedRoutes, commandPending, commandStatus, isUp, mustSurrender } from "./runner.ts";
import { SETUP_RETRY_MS } from "./setup.ts";

const complete = (
  p: Planning,
  r: Runner,
  hook: string,
  result: "CONTINUE" | "ABANDON",
  reason: string,
  after: readonly string[],
): void => {
  p.add({
    kind: "complete-lifecycle",
    id: `complete-lifecycle:${r.instanceId}`,
    after,
    instanceId: r.instanceId,
    hook,
    result,
    reason,
  });
};

export interface LaunchInputs {
  readonly leases: Leases;
  readonly desired: ReadonlyMap<string, DesiredSetup>;
  readonly recordIds: ReadonlyMap<string, string>;
  readonly sourceDestIds: ReadonlyMap<string, string>;
}

/**
 * Pending:Wait: CONTINUE once the current setup succeeded. A launching runner that cannot be set up yet (no
 * key free, its setup failed, its agent not registered) is held, not abandoned: its setup is retried and a
 * key given back is leased to it, and the hook's own timeout (30 minutes, ABANDON) is the backoff, so an
 * empty pool or a lab whose VPN server is down costs at most two launches an hour per missing runner.
 * Warmed:Pending:Wait (a warm pool being filled): CONTINUE at once, without a key or a VPN; the runner is
 * set up when it leaves the pool (Pending:Wait again).
 */
export const completeLaunches = (p: Planning, inputs: LaunchInputs): void => {
  for (const r of p.live.filter((x) => x.lifecycle === "Warmed:Pending:Wait")) {
    complete(
      p,
      r,
      LAUNCH_HOOK,
      "CONTINUE",
      `${r.instanceId} enters the warm pool: it holds no key and runs no VPN until it enters service`,
      [],
    );
  }
  if (!p.known("store")) return;
  const now = p.world.now;
  for (const r of p.live.filter((x) => x.lifecycle === "Pending:Wait")) {
    const desired = inputs.desired.get(r.instanceId)?.hash;
    if (!isUp(r)) {
      complete(p, r, LAUNCH_HOOK, "ABANDON", `launching runner ${r.instanceId} is ${r.state}`, []);
    } else if (desired !== undefined && appliedSetup(r, now) === desired) {
      const after = [inputs.recordIds.get(r.instanceId), inputs.sourceDestIds.get(r.instanceId)].filter(
        (id) => id !== undefined,
      );
      complete(
        p,
        r,
        LAUNCH_HOOK,
        "CONTINUE",
        `setup ${desired} succeeded on launching runner ${r.instanceId}`,
        after,
      );
    }
  }
};

/**
 * The stop-vpn command for a runner, once the routes it carried have moved and the outcome of its last
 * command is recorded (both write the runner's command record: the stop goes second).
 */
const stopVpn = (
  p: Planning,
  r: Runner,
  after: readonly string[],
  recordIds: ReadonlyMap<string, string>,
  reason: string,
): void => {
  const stop = renderStopVpn(p.lab);
  const record = recordIds.get(r.instanceId);
  p.add({
    kind: "stop-vpn",
    id: `stop-vpn:${r.instanceId}`,
    after: record === undefined ? after : [...after, record],
    instanceId: r.instanceId,
    hash: stop.hash,
    expected: { commandId: r.command?.commandId },
    script: stop.script,
    reason,
  });
};

const release = (
  p: Planning,
  r: Runner,
  parameter: string,
  after: readonly string[],
  reason: string,
): string =>
  p.add({
    kind: "release-credential",
    id: `release-credential:${r.instanceId}`,
    after,
    instanceId: r.instanceId,
    parameter,
    reason,
  });

/**
 * Terminating:Wait: stop the VPN once the routes moved, release the key once stopped, then CONTINUE. Held
 * (the hook's timeout is the limit) while the route tables or the store cannot be read, while a command
 * is still running on the runner (a setup that ends after the stop would bring the VPN back), or while it
 * carries routes no other runner can take (the last runner of an AZ without cross-AZ fallback).
 */
export const retireTerminating = (
  p: Planning,
  routesMovedOff: (instanceId: string) => string[],
  recordIds: ReadonlyMap<string, string>,
): void => {
  if (!p.known("store") || !p.known("route-tables")) return;
  const now = p.world.now;
  for (const r of p.live.filter((x) => x.lifecycle === "Terminating:Wait")) {
    const movedOff = routesMovedOff(r.instanceId);
    const status = r.command?.kind === "stop-vpn" ? commandStatus(r, now) : undefined;
    if (r.state !== "running" || r.credential === undefined) {
      complete(
        p,
        r,
        TERMINATE_HOOK,
        "CONTINUE",
        `terminating runner ${r.instanceId} has no running VPN to stop`,
        movedOff,
      );
    } else if (status === "success") {
      const after = [recordIds.get(r.instanceId)].filter((id): id is string => id !== undefined);
      const released = release(
        p,
        r,
        r.credential,
        after,
        `terminating runner ${r.instanceId} stopped its VPN; ${r.credential} is free again`,
      );
      complete(
        p,
        r,
        TERMINATE_HOOK,
        "CONTINUE",
        `terminating runner ${r.instanceId} has stopped its VPN and released its credential`,
        [released],
      );
    } else if (status === "failed") {
      complete(
        p,
        r,
        TERMINATE_HOOK,
        "CONTINUE",
        `stopping the VPN of ${r.instanceId} failed; it terminates anyway and ${r.credential} is free once it is gone`,
        movedOff,
      );
    } else if (status === undefined && !commandPending(r, now)) {
      if (movedOff.length < carriedRoutes(p, r)) {
        // Stopping now would cut its subnets off until a replacement is up: it keeps carrying them, and the
        // hook's timeout (10 minutes, CONTINUE) is the limit. Its key stays leased until it is gone.
        p.findings.push({
          kind: "termination-held",
          instanceId: r.instanceId,
          message: `terminating runner ${r.instanceId} keeps its VPN and its routes: no other runner can carry them yet${p.lab.crossAzFallback ? "" : " (cross-AZ fallback is off)"}; it stops once one can, or goes when its terminate hook times out`,
        });
        continue;
      }
      stopVpn(
        p,
        r,
        movedOff,
        recordIds,
        `runner ${r.instanceId} is terminating: stop its VPN so that ${r.credential} can be leased again`,
      );
    }
  }
};

/**
 * In service, but must give up its key: its routes move first (for a retired key, only when another runner
 * can take them, so that a rotation never cuts a subnet off), then its VPN stops, then the key goes back;
 * the next reconcile (asked for at once: Plan.followUp) leases it another and sets it up again.
 */
export const surrenderKeys = (
  p: Planning,
  routesMovedOff: (instanceId: string) => string[],
  recordIds: ReadonlyMap<string, string>,
): void => {
  if (!p.known("store") || !p.known("route-tables")) return;
  const now = p.world.now;
  for (const r of p.live.filter((x) => x.state === "running" && x.lifecycle !== "Terminating:Wait")) {
    const why = mustSurrender(p, r);
    if (why === undefined || commandPending(r, now)) continue;
    const stopped = r.command?.kind === "stop-vpn" ? commandStatus(r, now) : undefined;
    const retired = r.credential !== undefined;
    if (stopped === "success" && appliedSetup(r, now) === undefined) {
      if (r.credential === undefined) continue;
      const after = [recordIds.get(r.instanceId)].filter((id): id is string => id !== undefined);
      release(
        p,
        r,
        r.credential,
        after,
        `${r.instanceId} stopped its VPN: ${r.credential} goes back (${why})`,
      );
      p.followUp.push(`${r.instanceId} gave its key back: lease it another and set it up again`);
      continue;
    }
    if (stopped === "failed" && now - (r.command?.sentAt ?? 0) < SETUP_RETRY_MS) continue;
    const movedOff = routesMovedOff(r.instanceId);
    if (retired && movedOff.length < carriedRoutes(p, r)) {
      p.findings.push({
        kind: "credential-retired",
        instanceId: r.instanceId,
        message: `${r.instanceId} must give up ${r.credential} (${why}) but no other runner can take its routes yet; it keeps carrying them`,
      });
      continue;
    }
    stopVpn(p, r, movedOff, recordIds, `${r.instanceId} must give up its VPN: ${why}`);
  }
};

/** Terminated runners: their lease goes back (nothing can use it any more) and their record is forgotten. */
export const forgetTerminated = (p: Planning): void => {
  if (!p.known("store")) return;
  for (const r of p.world.runners.filter((x) => x.state === "terminated" && x.recorded)) {
    const after: string[] = [];
    if (r.credential !== undefined) {
      after.push(
        release(p, r, r.credential, [], `${r.instanceId} is terminated: ${r.credential} is free again`),
      );
    }
    p.add({
      kind: "forget-runner",
      id: `forget-runner:${r.instanceId}`,
      after,
      instanceId: r.instanceId,
      reason: `${r.instanceId} is terminated: labgate forgets its record`,
    });
  }
};
