// Upgrading from a version that kept labgate's state in instance tags: when the store knows nothing of the
// lab yet while its runners carry labgate's tags, that state moves into the store, once. From then on the
// tags are only a mirror, and a tag nobody but labgate should write is never trusted again. A key that the
// tags give to two runners (the old overlay lived in one container's memory) stays with one of them, the
// one carrying routes if any; the other one adopts no key, so it stops its VPN and is given another key.
import { parseCommandTag } from "../command-tag.ts";
import type { Runner, World } from "../world.ts";
import type { Planning } from "./planning.ts";
import { carriesRoutes } from "./runner.ts";

export const adoptTaggedState = (p: Planning): World => {
  const { world } = p;
  if (!p.known("store") || !p.known("instances")) return world;
  const storeEmpty = world.runners.every((r) => !r.recorded) && world.orphanLeases.length === 0;
  const tagged = p.live.filter(
    (r) =>
      r.mirror.credential !== undefined ||
      r.mirror.appliedSetup !== undefined ||
      r.mirror.command !== undefined,
  );
  if (!storeEmpty || tagged.length === 0) return world;

  const order = [...tagged].sort(
    (a, b) =>
      Number(carriesRoutes(p, b)) - Number(carriesRoutes(p, a)) || a.instanceId.localeCompare(b.instanceId),
  );
  const taken = new Map<string, string>();
  const adopted = new Map<string, Partial<Runner>>();
  for (const r of order) {
    const key = r.mirror.credential;
    const ownKey =
      key !== undefined && p.lab.vpn.credentials.includes(key) && !taken.has(key) ? key : undefined;
    if (ownKey !== undefined) taken.set(ownKey, r.instanceId);
    else if (key !== undefined && taken.has(key)) {
      p.findings.push({
        kind: "credential-conflict",
        instanceId: r.instanceId,
        message: `the tags of ${r.instanceId} and ${taken.get(key)} both name ${key}; ${taken.get(key)} keeps it, ${r.instanceId} stops its VPN and gets another key`,
      });
    }
    const command = r.mirror.command === undefined ? undefined : parseCommandTag(r.mirror.command);
    const state = { credential: ownKey, appliedSetup: r.mirror.appliedSetup, command };
    p.add({
      kind: "adopt-runner",
      id: `adopt-runner:${r.instanceId}`,
      after: [],
      instanceId: r.instanceId,
      ...state,
      reason: `labgate's store has no record of lab ${p.lab.name} yet: ${r.instanceId}'s state moves from its tags into it (credential ${ownKey ?? "none"}, setup ${state.appliedSetup ?? "none"})`,
    });
    adopted.set(r.instanceId, { ...state, recorded: true });
  }
  return {
    ...world,
    runners: world.runners.map((r) => {
      const change = adopted.get(r.instanceId);
      return change === undefined ? r : { ...r, ...change };
    }),
  };
};
