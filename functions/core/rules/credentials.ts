// Credentials: a static key serves one client at a time, so a lease (the runner's CREDENTIAL_TAG) lives on
// its holder until the holder is terminated or has stopped its VPN, and no key is ever leased twice.
import { CREDENTIAL_TAG } from "../names.ts";
import type { Runner } from "../world.ts";
import type { Planning } from "./planning.ts";
import { isServing, isUp } from "./runner.ts";

export interface Leases {
  /** The credential of every runner that holds one or is leased one by this plan. */
  readonly credentialOf: ReadonlyMap<string, string>;
  /** The lease actions of this plan, by runner. */
  readonly leaseIds: ReadonlyMap<string, string>;
  /** Runners that need a credential and got none. */
  readonly starved: readonly Runner[];
  /** Whether a credential is on its way back to the pool (its holder is terminating). */
  readonly releasing: boolean;
  readonly free: number;
}

export const leaseCredentials = (p: Planning): Leases => {
  const holders = new Map<string, string[]>();
  for (const r of p.live) {
    if (r.credential !== undefined)
      holders.set(r.credential, [...(holders.get(r.credential) ?? []), r.instanceId]);
  }
  for (const [parameter, ids] of holders) {
    if (ids.length > 1) {
      p.findings.push({
        kind: "credential-conflict",
        message: `credential ${parameter} is leased by ${ids.join(" and ")}; fix the ${CREDENTIAL_TAG} tags by hand`,
      });
    }
  }
  const free = p.lab.vpn.credentials.filter((c) => !holders.has(c));
  const credentialOf = new Map<string, string>();
  const leaseIds = new Map<string, string>();
  const starved: Runner[] = [];
  for (const r of p.live) {
    if (r.credential !== undefined) {
      credentialOf.set(r.instanceId, r.credential);
      continue;
    }
    if (!isUp(r) || !isServing(r)) continue;
    const parameter = free.shift();
    if (parameter === undefined) {
      starved.push(r);
      continue;
    }
    credentialOf.set(r.instanceId, parameter);
    leaseIds.set(
      r.instanceId,
      p.add({
        kind: "lease-credential",
        id: `lease-credential:${r.instanceId}`,
        after: [],
        instanceId: r.instanceId,
        parameter,
        reason: `runner ${r.instanceId} needs a VPN credential and ${parameter} is free`,
      }),
    );
  }
  const releasing = p.live.some(
    (r) => r.credential !== undefined && (r.state === "shutting-down" || r.lifecycle === "Terminating:Wait"),
  );
  for (const r of starved) {
    p.findings.push({
      kind: "credential-pool-empty",
      instanceId: r.instanceId,
      message: `no free VPN credential for runner ${r.instanceId}: all ${p.lab.vpn.credentials.length} are leased${releasing ? " (one is being released)" : ""}; add a parameter to vpn.credentials or reduce the group`,
    });
  }
  return { credentialOf, leaseIds, starved, releasing, free: free.length };
};
