// Getting runners ready to carry traffic: the source/destination check off, the outcome of their last SSM
// command kept on them, and their setup pushed whenever what would be rendered differs from what is applied.
import { renderRunnerSetup } from "../../render/index.ts";
import type { Leases } from "./credentials.ts";
import type { Planning } from "./planning.ts";
import { appliedSetup, commandStatus, inGroup, isServing, isUp } from "./runner.ts";

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

/** Keeps on the instance what SSM reported, so the next reconcile need not ask again. Returns action ids. */
export const recordCommandOutcomes = (p: Planning): Map<string, string> => {
  const ids = new Map<string, string>();
  for (const r of p.live) {
    if (r.command?.status !== "pending" || r.commandOutcome === undefined) continue;
    const succeeded = r.command.kind === "setup" && r.commandOutcome === "success";
    ids.set(
      r.instanceId,
      p.add({
        kind: "record-command",
        id: `record-command:${r.instanceId}`,
        after: [],
        instanceId: r.instanceId,
        record: { ...r.command, status: r.commandOutcome },
        appliedSetup: succeeded ? r.command.hash : undefined,
        reason: `${r.command.kind} command ${r.command.commandId} on ${r.instanceId} finished: ${r.commandOutcome}`,
      }),
    );
    if (r.commandOutcome === "failed") {
      p.findings.push({
        kind: "command-failed",
        instanceId: r.instanceId,
        message: `${r.command.kind} command ${r.command.commandId} failed on ${r.instanceId}; its output is in SSM Run Command history`,
      });
    }
  }
  return ids;
};

/** Pushes the setup where it differs from what is applied. Returns the desired setup hash by runner. */
export const pushSetups = (p: Planning, leases: Leases): Map<string, string> => {
  const workerCidrs = [...new Set(p.world.subnets.map((s) => s.cidr))].sort();
  const desired = new Map<string, string>();
  for (const r of p.live) {
    const parameter = leases.credentialOf.get(r.instanceId);
    if (r.state !== "running" || !isServing(r) || parameter === undefined || r.privateIp === undefined)
      continue;
    const setup = renderRunnerSetup({
      lab: p.lab,
      instanceId: r.instanceId,
      privateIp: r.privateIp,
      credentialParameter: parameter,
      workerCidrs,
    });
    desired.set(r.instanceId, setup.hash);
    const status = commandStatus(r);
    const applied = appliedSetup(r);
    if ((r.command?.kind === "setup" && status === "pending") || applied === setup.hash) continue;
    const sinceFailure = p.world.now - (r.command?.sentAt ?? 0);
    const failedThis = r.command?.kind === "setup" && r.command.hash === setup.hash && status === "failed";
    // A launching runner whose setup failed is abandoned (lifecycle.ts); one in service is retried later.
    if (failedThis && (r.lifecycle === "Pending:Wait" || sinceFailure < SETUP_RETRY_MS)) continue;
    const lease = leases.leaseIds.get(r.instanceId);
    p.add({
      kind: "push-setup",
      id: `push-setup:${r.instanceId}`,
      after: lease ? [lease] : [],
      instanceId: r.instanceId,
      hash: setup.hash,
      script: setup.script,
      reason: failedThis
        ? `retrying setup ${setup.hash} on ${r.instanceId}, which failed ${Math.round(sinceFailure / 60_000)} min ago`
        : applied === undefined
          ? `runner ${r.instanceId} has no setup yet`
          : `setup of ${r.instanceId} changed (${applied} -> ${setup.hash})`,
    });
  }
  return desired;
};
