// Getting runners ready to carry traffic: the source/destination check off, the outcome of their last SSM
// command recorded in the store, and their setup pushed whenever what would be rendered differs from what is
// applied, rolled out one runner per AZ at a time (rollout.ts). One command at a time per runner: nothing is
// sent while the last one may still be running, and nothing before the last one's outcome is recorded.
import { renderRunnerSetup } from "../../render/index.ts";
import type { Leases } from "./credentials.ts";
import type { Planning } from "./planning.ts";
import type { DesiredSetup, Rollout } from "./rollout.ts";
import {
  appliedSetup,
  changesTunnel,
  commandPending,
  commandStatus,
  inGroup,
  isServing,
  isUp,
  mustSurrender,
} from "./runner.ts";

/** A setup that failed on an in-service runner is tried again after this long. */
export const SETUP_RETRY_MS = 10 * 60_000;

/** EC2 drops packets a runner forwards while its source/destination check is on. Returns action ids by runner. */
export const disableSourceDestChecks = (p: Planning): Map<string, string> => {
  const ids = new Map<string, string>();
  for (const r of p.live.filter((x) => isUp(x) && inGroup(x) && x.sourceDestCheck)) {
    ids.set(
      r.instanceId,
      p.add({
        kind: "disable-source-dest-check",
        id: `disable-source-dest-check:${r.instanceId}`,
        after: [],
        instanceId: r.instanceId,
        reason: `runner ${r.instanceId} forwards worker traffic but its source/destination check is on`,
      }),
    );
  }
  return ids;
};

/** Keeps in the store what SSM reported, so the next reconcile need not ask again. Returns action ids. */
export const recordCommandOutcomes = (p: Planning): Map<string, string> => {
  const ids = new Map<string, string>();
  if (!p.known("store")) return ids;
  const now = p.world.now;
  for (const r of p.live) {
    const c = r.command;
    if (c?.status !== "pending") continue;
    const outcome = commandStatus(r, now);
    if (outcome === "pending" || outcome === undefined) continue;
    const succeeded = outcome === "success";
    ids.set(
      r.instanceId,
      p.add({
        kind: "record-command",
        id: `record-command:${r.instanceId}`,
        after: [],
        instanceId: r.instanceId,
        record: { ...c, status: outcome },
        appliedSetup: !succeeded ? undefined : c.kind === "setup" ? c.hash : null,
        reason:
          c.commandId === undefined
            ? `the ${c.kind} command of ${r.instanceId} was never recorded as sent (a reconcile stopped between the two writes): taken as failed`
            : `${c.kind} command ${c.commandId} on ${r.instanceId} finished: ${outcome}`,
      }),
    );
    if (outcome === "failed") {
      p.findings.push({
        kind: "command-failed",
        instanceId: r.instanceId,
        message: `${c.kind} command ${c.commandId ?? "(never sent)"} failed on ${r.instanceId}; its output is in SSM Run Command history`,
      });
    }
  }
  return ids;
};

/**
 * What each runner that should hold a tunnel would be set up with now. A runner whose setup cannot be
 * rendered is a finding about that runner, never a failure of the plan.
 */
export const desiredSetups = (p: Planning, leases: Leases): Map<string, DesiredSetup> => {
  const desired = new Map<string, DesiredSetup>();
  // The setup depends on labgate's state (the lease) and on every worker subnet's CIDR: unknown, no setup.
  if (!p.known("store") || !p.known("subnets")) return desired;
  const workerCidrs = [...new Set(p.world.subnets.map((s) => s.cidr))].sort();
  for (const r of p.live) {
    const credential = leases.credentialOf.get(r.instanceId);
    if (
      r.state !== "running" ||
      !isServing(r) ||
      credential === undefined ||
      mustSurrender(p, r) !== undefined
    )
      continue;
    try {
      if (r.privateIp === undefined) throw new Error("it has no private IPv4 address");
      const { hash, script } = renderRunnerSetup({
        lab: p.lab,
        instanceId: r.instanceId,
        privateIp: r.privateIp,
        credentialParameter: credential,
        workerCidrs,
      });
      desired.set(r.instanceId, { hash, script, credential });
    } catch (error) {
      p.findings.push({
        kind: "runner-unrenderable",
        instanceId: r.instanceId,
        message: `the setup of ${r.instanceId} cannot be rendered, so it is not set up: ${error instanceof Error ? error.message : String(error)}`,
      });
    }
  }
  return desired;
};

export interface PushInputs {
  readonly leases: Leases;
  readonly recordIds: ReadonlyMap<string, string>;
  readonly desired: ReadonlyMap<string, DesiredSetup>;
  readonly rollout: Rollout;
  /** The route actions moving routes off a runner: a push that restarts its tunnel waits for them. */
  readonly movedOff: (instanceId: string) => string[];
}

/**
 * Pushes the setup where it differs from what is applied, in the rollout's order (rollout.ts). One command
 * at a time per runner; a failed setup is tried again after SETUP_RETRY_MS, launching or not.
 */
export const pushSetups = (p: Planning, inputs: PushInputs): void => {
  const { leases, recordIds, desired, rollout, movedOff } = inputs;
  const now = p.world.now;
  for (const r of p.live) {
    const setup = desired.get(r.instanceId);
    if (setup === undefined || rollout.held.has(r.instanceId)) continue;
    const applied = appliedSetup(r, now);
    if (commandPending(r, now) || applied === setup.hash) continue;
    const sinceFailure = now - (r.command?.sentAt ?? 0);
    const failedThis =
      r.command?.kind === "setup" && r.command.hash === setup.hash && commandStatus(r, now) === "failed";
    if (failedThis && sinceFailure < SETUP_RETRY_MS) continue;
    const restarts = changesTunnel(applied, setup.hash);
    const after = [
      leases.leaseIds.get(r.instanceId),
      recordIds.get(r.instanceId),
      ...(restarts ? movedOff(r.instanceId) : []),
    ].filter((id): id is string => id !== undefined);
    const rolling = rollout.draining.has(r.instanceId)
      ? "; its routes move first"
      : applied !== undefined && !restarts
        ? "; the tunnel is left as it is"
        : "";
    p.add({
      kind: "push-setup",
      id: `push-setup:${r.instanceId}`,
      after,
      instanceId: r.instanceId,
      hash: setup.hash,
      credential: setup.credential,
      expected: { commandId: r.command?.commandId },
      script: setup.script,
      reason: failedThis
        ? `retrying setup ${setup.hash} on ${r.instanceId}, which failed ${Math.round(sinceFailure / 60_000)} min ago`
        : applied === undefined
          ? r.command?.kind === "setup" && commandStatus(r, now) === "failed"
            ? `setup ${r.command.hash} failed on ${r.instanceId}, so nothing is known to be in place: setup ${setup.hash} replaces it`
            : `runner ${r.instanceId} has no setup yet`
          : `setup of ${r.instanceId} changed (${applied} -> ${setup.hash}${restarts ? ", a new tunnel" : ""})${rolling}`,
    });
  }
};
