// A static key serves one client at a time: never two holders. Two reconcilers (two Lambda containers)
// interleave their observes and applies; each sees the store as it was when it observed (strongly
// consistent), and EC2 as it was some time before (eventually consistent: a view that misses the latest
// changes, labgate's own writes included). Instance ids are random, not increasing. The model of the store
// applies the adapters' conditional writes; whatever the interleaving, no key is ever leased to two
// runners, and no two live runners ever run a tunnel with the same key.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Action } from "../../functions/core/actions.ts";
import type { LabConfig } from "../../functions/core/config.ts";
import { plan } from "../../functions/core/plan.ts";
import type { Runner, World } from "../../functions/core/world.ts";
import { applyToModel, type Happening, happen, launchingRunner } from "../../functions/local/model.ts";
import { convergedWorld, labNamed, withPool } from "../../functions/local/sample-world.ts";
import { StoreConflict } from "../../functions/reconcile/store.ts";

const AZS = ["eu-central-1a", "eu-central-1b", "eu-central-1c"];
const hex17 = fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: 17, maxLength: 17 });

type Container = "A" | "B";
type Step =
  | { readonly kind: "happen"; readonly what: Happening }
  | { readonly kind: "launch"; readonly az: string; readonly id: string }
  /** A container observes: the store as it is now, EC2 as it was `lag` changes ago. */
  | { readonly kind: "observe"; readonly by: Container; readonly lag: number }
  /** A container applies the plan of its last observe (once). */
  | { readonly kind: "apply"; readonly by: Container };

const happening: fc.Arbitrary<Happening> = fc.oneof(
  fc.record({ kind: fc.constant("scale-in" as const), pick: fc.nat(20) }),
  fc.record({ kind: fc.constant("kill" as const), pick: fc.nat(20) }),
  fc.record({ kind: fc.constant("stop" as const), pick: fc.nat(20) }),
  fc.record({ kind: fc.constant("start" as const), pick: fc.nat(20) }),
  fc.record({
    kind: fc.constant("alarm" as const),
    pick: fc.nat(20),
    state: fc.constantFrom("OK" as const, "ALARM" as const),
  }),
  fc.record({ kind: fc.constant("command-finishes" as const), pick: fc.nat(20), ok: fc.boolean() }),
  fc.record({ kind: fc.constant("time-passes" as const), ms: fc.integer({ min: 1_000, max: 900_000 }) }),
);

const step: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant("happen" as const), what: happening }), weight: 3 },
  {
    arbitrary: fc.record({ kind: fc.constant("launch" as const), az: fc.constantFrom(...AZS), id: hex17 }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("observe" as const),
      by: fc.constantFrom<Container>("A", "B"),
      lag: fc.integer({ min: 0, max: 3 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ kind: fc.constant("apply" as const), by: fc.constantFrom<Container>("A", "B") }),
    weight: 2,
  },
);

const scenario = fc.record({
  azs: fc.integer({ min: 1, max: 3 }),
  runnersPerAz: fc.integer({ min: 0, max: 2 }),
  spare: fc.integer({ min: 0, max: 2 }),
  ids: fc.uniqueArray(hex17, { minLength: 6, maxLength: 6 }),
  steps: fc.array(step, { maxLength: 30 }),
});

/** The converged world with random instance ids in place of the sample's increasing ones. */
const withRandomIds = (world: World, ids: readonly string[]): World => {
  const rename = new Map(world.runners.map((r, i) => [r.instanceId, `i-${ids[i]}`]));
  const id = (x: string | undefined) => (x === undefined ? x : (rename.get(x) ?? x));
  const eni = (x: string | undefined) =>
    x === undefined ? x : `eni-${(id(`i-${x.slice(4)}`) ?? "").slice(2)}`;
  return {
    ...world,
    runners: world.runners.map((r) => ({
      ...r,
      instanceId: id(r.instanceId) as string,
      eniId: eni(r.eniId),
    })),
    routeTables: Object.fromEntries(
      Object.entries(world.routeTables).map(([k, t]) => [
        k,
        {
          ...t,
          routes: Object.fromEntries(
            Object.entries(t.routes).map(([c, r]) => [
              c,
              { ...r, instanceId: id(r.instanceId), eniId: eni(r.eniId) },
            ]),
          ),
        },
      ]),
    ),
    healthAlarms: world.healthAlarms.map((a) => {
      const instanceId = id(a.instanceId) as string;
      return { name: `labgate-foo-tunnel-${instanceId}`, instanceId };
    }),
  };
};

const STORE_FIELDS = ["recorded", "credential", "appliedSetup", "command", "recordedHealth"] as const;

/**
 * What a container observes: EC2 as it was (`ec2`), labgate's store as it is (`now`). An instance EC2 does
 * not list yet has its lease among the orphans, as the store adapter reports it.
 */
const viewOf = (ec2: World, now: World): World => {
  const current = new Map(now.runners.map((r) => [r.instanceId, r]));
  const runners = ec2.runners.map((r) => {
    const fresh = current.get(r.instanceId);
    if (fresh === undefined) return r;
    const store = Object.fromEntries(STORE_FIELDS.map((f) => [f, fresh[f]]));
    return { ...r, ...store, commandOutcome: fresh.commandOutcome } as Runner;
  });
  const seen = new Set(runners.map((r) => r.instanceId));
  const unseen = now.runners
    .filter((r) => !seen.has(r.instanceId) && r.credential !== undefined)
    .map((r) => ({ credential: r.credential as string, holder: r.instanceId, since: now.now }));
  return { ...ec2, now: now.now, runners, orphanLeases: [...now.orphanLeases, ...unseen] };
};

/** Applies a plan as the executor does: an action runs once what it waits on is done; a lost condition skips it. */
const applyPlan = (
  world: World,
  actions: readonly Action[],
  seq: { n: number },
): { world: World; pushed: Action[] } => {
  const done = new Set<string>();
  const pushed: Action[] = [];
  let w = world;
  for (const a of actions) {
    if (!a.after.every((id) => done.has(id))) continue;
    if (
      "target" in a &&
      !w.runners.some((r) => r.instanceId === a.target.instanceId && r.state !== "terminated")
    )
      continue;
    try {
      w = applyToModel(w, a, seq.n++);
    } catch (error) {
      if (error instanceof StoreConflict) continue;
      throw error;
    }
    done.add(a.id);
    if (a.kind === "push-setup") pushed.push(a);
  }
  return { world: w, pushed };
};

/** Keys in use by tunnels: set when a setup with a key is sent, gone when a stop succeeded or the runner died. */
const track = (using: Map<string, string>, w: World, pushed: readonly Action[]): void => {
  for (const a of pushed) if (a.kind === "push-setup") using.set(a.instanceId, a.credential);
  for (const r of w.runners) {
    const stopped =
      r.command?.kind === "stop-vpn" && (r.command.status === "success" || r.commandOutcome === "success");
    if (r.state === "terminated" || stopped) using.delete(r.instanceId);
  }
};

const checkNeverTwoHolders = (w: World, using: ReadonlyMap<string, string>, lab: LabConfig): void => {
  const holders = new Map<string, string>();
  const hold = (key: string, who: string) => {
    expect(holders.get(key), `${key} held by ${holders.get(key)} and ${who} in the store`).toBeUndefined();
    holders.set(key, who);
  };
  for (const r of w.runners) if (r.credential !== undefined) hold(r.credential, r.instanceId);
  for (const l of w.orphanLeases) hold(l.credential, l.holder);
  const users = new Map<string, string>();
  for (const [runner, key] of using) {
    expect(lab.vpn.credentials).toContain(key);
    expect(users.get(key), `${key} used by the tunnels of ${users.get(key)} and ${runner}`).toBeUndefined();
    users.set(key, runner);
  }
};

describe("leases, with two reconcilers interleaving on stale views", { timeout: 600_000 }, () => {
  it("never give one key to two runners, in the store or in their tunnels", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const lab = withPool(labNamed("foo"), s.azs * s.runnersPerAz + s.spare);
        let world = withRandomIds(
          convergedWorld(lab, { azs: AZS.slice(0, s.azs), runnersPerAz: s.runnersPerAz, subnetsPerAz: 1 }),
          s.ids,
        );
        const using = new Map(world.runners.map((r) => [r.instanceId, r.credential as string]));
        const history: World[] = [world];
        const plans = new Map<Container, readonly Action[]>();
        const seq = { n: 1 };
        for (const st of s.steps) {
          if (st.kind === "happen" || st.kind === "launch") {
            world =
              st.kind === "happen"
                ? happen(world, st.what, seq.n++)
                : {
                    ...world,
                    runners: [
                      ...world.runners,
                      launchingRunner(`i-${st.id}`, st.az, `10.0.200.${seq.n++ % 250}`),
                    ],
                  };
            track(using, world, []);
            history.push(world);
          } else if (st.kind === "observe") {
            const ec2 = history[Math.max(0, history.length - 1 - st.lag)] as World;
            plans.set(st.by, plan(viewOf(ec2, world), lab).actions);
          } else {
            const actions = plans.get(st.by);
            if (actions === undefined) continue;
            plans.delete(st.by);
            const applied = applyPlan(world, actions, seq);
            world = applied.world;
            track(using, world, applied.pushed);
            history.push(world);
            checkNeverTwoHolders(world, using, lab);
          }
        }
      }),
      { numRuns: 1_000 },
    );
  });
});
