// The Auto Scaling lifecycle hooks. A launching runner is let into service only once its setup succeeded;
// a terminating one gives up its routes first, then its VPN, then its credential, and only then goes.
import { renderStopVpn } from "../../render/index.ts";
import { LAUNCH_HOOK, TERMINATE_HOOK } from "../names.ts";
import type { Runner } from "../world.ts";
import type { Leases } from "./credentials.ts";
import type { Planning } from "./planning.ts";
import { appliedSetup, commandStatus, isUp, setupFailed } from "./runner.ts";

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
  readonly desiredSetup: ReadonlyMap<string, string>;
  readonly recordIds: ReadonlyMap<string, string>;
  readonly sourceDestIds: ReadonlyMap<string, string>;
}

/** Pending:Wait: CONTINUE once the current setup succeeded; ABANDON when it failed or no key will be free. */
export const completeLaunches = (p: Planning, inputs: LaunchInputs): void => {
  for (const r of p.live.filter((x) => x.lifecycle === "Pending:Wait")) {
    const desired = inputs.desiredSetup.get(r.instanceId);
    if (!isUp(r)) {
      complete(p, r, LAUNCH_HOOK, "ABANDON", `launching runner ${r.instanceId} is ${r.state}`, []);
    } else if (inputs.leases.starved.includes(r) && !inputs.leases.releasing) {
      complete(
        p,
        r,
        LAUNCH_HOOK,
        "ABANDON",
        `no VPN credential is free for launching runner ${r.instanceId}`,
        [],
      );
    } else if (desired !== undefined && setupFailed(r) && r.command?.hash === desired) {
      complete(
        p,
        r,
        LAUNCH_HOOK,
        "ABANDON",
        `setup ${desired} failed on launching runner ${r.instanceId}`,
        [],
      );
    } else if (desired !== undefined && appliedSetup(r) === desired) {
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

/** Terminating:Wait: stop the VPN once the routes moved, release the key once stopped, then CONTINUE. */
export const retireTerminating = (p: Planning, routesMovedOff: (instanceId: string) => string[]): void => {
  for (const r of p.live.filter((x) => x.lifecycle === "Terminating:Wait")) {
    const movedOff = routesMovedOff(r.instanceId);
    const status = r.command?.kind === "stop-vpn" ? commandStatus(r) : undefined;
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
      const release = p.add({
        kind: "release-credential",
        id: `release-credential:${r.instanceId}`,
        after: [],
        instanceId: r.instanceId,
        parameter: r.credential,
        reason: `terminating runner ${r.instanceId} stopped its VPN; ${r.credential} is free again`,
      });
      const reason = `terminating runner ${r.instanceId} has stopped its VPN and released its credential`;
      complete(p, r, TERMINATE_HOOK, "CONTINUE", reason, [release]);
    } else if (status === "failed") {
      const reason = `stopping the VPN of ${r.instanceId} failed; it terminates anyway and ${r.credential} is free once it is gone`;
      complete(p, r, TERMINATE_HOOK, "CONTINUE", reason, movedOff);
    } else if (status === undefined) {
      const stop = renderStopVpn(p.lab);
      p.add({
        kind: "stop-vpn",
        id: `stop-vpn:${r.instanceId}`,
        after: movedOff,
        instanceId: r.instanceId,
        hash: stop.hash,
        script: stop.script,
        reason: `runner ${r.instanceId} is terminating: stop its VPN so that ${r.credential} can be leased again`,
      });
    }
  }
};
