// Credentials: a static key serves one client at a time. Leases live in the lab's store, which takes a lease
// only with a conditional write (the key free, or already this runner's; the runner holding no other key)
// and releases it only for its holder, so no key is ever leased twice, whatever the views of concurrent
// reconciles. A lease lives until its holder is terminated or has stopped its VPN.
import { CREDENTIAL_TAG } from "../names.ts";
import type { Runner } from "../world.ts";
import type { Planning } from "./planning.ts";
import { isServing, isUp, mustSurrender } from "./runner.ts";

/**
 * A lease held by an instance no observe lists any more is released after this long: EC2 lists a
 * terminated instance for about an hour, so its holder is surely gone, and a lease just taken for an
 * instance that EC2 does not list yet (eventual consistency) is not mistaken for one.
 */
export const ORPHAN_LEASE_MS = 3 * 60 * 60_000;

export interface Leases {
  /** The credential of every runner that holds one or is leased one by this plan. */
  readonly credentialOf: ReadonlyMap<string, string>;
  /** The lease actions of this plan, by runner. */
  readonly leaseIds: ReadonlyMap<string, string>;
  /** Runners that need a credential and got none. */
  readonly starved: readonly Runner[];
  /** Whether a credential is on its way back to the pool (its holder is terminating or draining). */
  readonly releasing: boolean;
  readonly free: number;
}

const NO_LEASES: Leases = {
  credentialOf: new Map(),
  leaseIds: new Map(),
  starved: [],
  releasing: false,
  free: 0,
};

export const leaseCredentials = (p: Planning): Leases => {
  // Without the store nothing is known of who holds what: no key moves.
  if (!p.known("store")) return NO_LEASES;
  // Terminated runners still hold their leases until labgate releases them (lifecycle.ts): not free yet.
  const holders = new Map<string, string[]>();
  for (const r of p.world.runners) {
    if (r.credential !== undefined)
      holders.set(r.credential, [...(holders.get(r.credential) ?? []), r.instanceId]);
  }
  for (const [parameter, ids] of holders) {
    // The store's conditional writes make this impossible; say so loudly if it ever happens.
    if (ids.length > 1) {
      p.findings.push({
        kind: "credential-conflict",
        message: `the store says credential ${parameter} is leased by ${ids.join(" and ")}; it refuses such writes, so check the table by hand`,
      });
    }
  }
  releaseOrphans(p);
  const orphaned = new Set(p.world.orphanLeases.map((l) => l.credential));
  const free = p.lab.vpn.credentials.filter((c) => !holders.has(c) && !orphaned.has(c));
  const credentialOf = new Map<string, string>();
  const leaseIds = new Map<string, string>();
  const starved: Runner[] = [];
  for (const r of p.live) {
    if (r.credential !== undefined) {
      credentialOf.set(r.instanceId, r.credential);
      continue;
    }
    // A runner that may still run a VPN with a key it does not hold stops it before it gets one.
    if (!isUp(r) || !isServing(r) || !p.known("group") || mustSurrender(p, r) !== undefined) continue;
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
    (r) =>
      r.credential !== undefined &&
      (r.state === "shutting-down" ||
        r.lifecycle === "Terminating:Wait" ||
        mustSurrender(p, r) !== undefined),
  );
  for (const r of starved) {
    p.findings.push({
      kind: "credential-pool-empty",
      instanceId: r.instanceId,
      message: `no free VPN credential for runner ${r.instanceId}: all ${p.lab.vpn.credentials.length} are leased${releasing ? " (one is being released)" : ""}; add a parameter to vpn.credentials or reduce the group`,
    });
  }
  for (const r of p.live) {
    if (r.mirror.credential !== undefined && r.mirror.credential !== r.credential && r.recorded) {
      p.findings.push({
        kind: "credential-conflict",
        instanceId: r.instanceId,
        message: `the ${CREDENTIAL_TAG} tag of ${r.instanceId} says ${r.mirror.credential} but labgate's store says ${r.credential ?? "none"}: the tag is only a mirror (edited by hand?) and is rewritten; labgate never pushed that key to it`,
      });
    }
  }
  return { credentialOf, leaseIds, starved, releasing, free: free.length };
};

/** Releases the leases of instances that are gone for good; the key is free again. */
const releaseOrphans = (p: Planning): void => {
  if (!p.known("instances")) return;
  for (const lease of p.world.orphanLeases) {
    if (p.world.now - lease.since < ORPHAN_LEASE_MS) continue;
    p.add({
      kind: "release-orphan-lease",
      id: `release-orphan-lease:${lease.credential}`,
      after: [],
      parameter: lease.credential,
      holder: lease.holder,
      reason: `${lease.credential} is leased to ${lease.holder}, which is no instance of the lab's group any more (leased ${Math.round((p.world.now - lease.since) / 3_600_000)} h ago)`,
    });
  }
};
