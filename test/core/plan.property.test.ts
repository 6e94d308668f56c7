// Property tests of the core: random labs, random things happening to them, reconciles at random moments
// (duplicated, on a view that misses the latest change, or late), against a model of AWS.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Action } from "../../functions/core/actions.ts";
import type { LabConfig } from "../../functions/core/config.ts";
import { plan, SETUP_RETRY_MS } from "../../functions/core/plan.ts";
import type { Runner, World } from "../../functions/core/world.ts";
import { applyToModel, type Happening, happen, ModelViolation } from "../../functions/local/model.ts";
import { convergedWorld, labNamed, withPool } from "../../functions/local/sample-world.ts";

const AZS = ["eu-central-1a", "eu-central-1b", "eu-central-1c"];

type Step =
  | { readonly kind: "happen"; readonly what: Happening }
  /** A reconcile; `stale` ones observe the world as it was before the latest happening (a late view). */
  | { readonly kind: "reconcile"; readonly stale: boolean; readonly times: number };

const happening: fc.Arbitrary<Happening> = fc.oneof(
  fc.record({ kind: fc.constant("launch" as const), az: fc.constantFrom(...AZS) }),
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
    arbitrary: fc.record({
      kind: fc.constant("reconcile" as const),
      stale: fc.boolean(),
      times: fc.integer({ min: 1, max: 2 }),
    }),
    weight: 2,
  },
);

const scenario = fc.record({
  azs: fc.integer({ min: 1, max: 3 }),
  runnersPerAz: fc.integer({ min: 0, max: 2 }),
  subnetsPerAz: fc.integer({ min: 1, max: 3 }),
  spare: fc.integer({ min: 0, max: 3 }),
  crossAzFallback: fc.boolean(),
  steps: fc.array(step, { maxLength: 40 }),
});

/** Applies a plan to the model the way the executor does: an action runs once everything it waits on succeeded. */
const applyPlan = (world: World, actions: readonly Action[], seq: { n: number }): World => {
  const done = new Set<string>();
  let w = world;
  for (const a of actions) {
    if (!a.after.every((id) => done.has(id))) continue;
    if ((a.kind === "replace-route" || a.kind === "create-route") && !isLiveTarget(w, a.target.instanceId))
      continue;
    checkAction(w, a);
    w = applyToModel(w, a, seq.n++);
    done.add(a.id);
  }
  return w;
};

/** EC2 refuses a route to the interface of a terminated instance: the action fails and its dependents wait. */
const isLiveTarget = (w: World, instanceId: string): boolean =>
  w.runners.some((r) => r.instanceId === instanceId && r.state !== "terminated");

/** Rules an action must keep whatever the world looked like when it was planned. */
const checkAction = (w: World, a: Action): void => {
  if (a.kind === "complete-lifecycle" && a.result === "CONTINUE" && a.hook === "labgate-launch") {
    const r = w.runners.find((x) => x.instanceId === a.instanceId);
    const ok =
      r?.command?.kind === "setup" && (r.command.status === "success" || r.commandOutcome === "success");
    if (r?.lifecycle === "Pending:Wait" && !ok) {
      throw new ModelViolation(`${a.id}: CONTINUE before the setup of ${a.instanceId} succeeded`);
    }
  }
};

/** Safety invariants that hold after every reconcile, converged or not. */
const checkSafety = (w: World, lab: LabConfig): void => {
  const held = new Map<string, string>();
  for (const r of w.runners.filter((x) => x.state !== "terminated" && x.credential !== undefined)) {
    const cred = r.credential as string;
    expect(lab.vpn.credentials).toContain(cred);
    expect(held.get(cred), `${cred} held by ${held.get(cred)} and ${r.instanceId}`).toBeUndefined();
    held.set(cred, r.instanceId);
  }
};

/** The lab's own resources: no action names anything else. */
const checkIsolation = (w: World, actions: readonly Action[], lab: LabConfig): void => {
  const ids = new Set(w.runners.map((r) => r.instanceId));
  for (const a of actions) {
    if ("instanceId" in a) expect(ids.has(a.instanceId), a.id).toBe(true);
    if ("routeTableId" in a) expect(Object.keys(w.routeTables)).toContain(a.routeTableId);
    if ("alarmName" in a) expect(a.alarmName.startsWith(`labgate-${lab.name}-tunnel-`)).toBe(true);
    if (a.kind === "delete-health-alarms") {
      for (const n of a.alarmNames) expect(n.startsWith(`labgate-${lab.name}-tunnel-`)).toBe(true);
    }
  }
};

/** The eligibility rule, restated from the specification rather than imported from the code under test. */
const eligibleBySpec = (r: Runner): boolean =>
  r.state === "running" &&
  r.lifecycle === "InService" &&
  !r.sourceDestCheck &&
  r.credential !== undefined &&
  r.healthAlarm !== "ALARM" &&
  r.appliedSetup !== undefined &&
  !(r.command?.kind === "setup" && r.command.status === "failed");

/** CloudWatch's first evaluations of a new alarm whose runner reports a healthy tunnel. */
const firstReports = (w: World): World => ({
  ...w,
  runners: w.runners.map((r) =>
    r.healthAlarm === "INSUFFICIENT_DATA" && r.appliedSetup !== undefined && r.state === "running"
      ? { ...r, healthAlarm: "OK", healthSince: w.now }
      : r,
  ),
});

/**
 * A hook nobody completed times out and Auto Scaling takes its default result: a launch is abandoned, a
 * termination goes on (the instance is gone, and routes to it become blackholes).
 */
const hookTimesOut = (w: World, instanceId: string, seq: { n: number }): World => {
  const live = w.runners.filter((r) => r.state !== "terminated");
  const r = live.find((x) => x.instanceId === instanceId);
  if (r?.lifecycle === "Terminating:Wait") return happen(w, { kind: "kill", pick: live.indexOf(r) }, seq.n++);
  return applyToModel(
    w,
    {
      kind: "complete-lifecycle",
      id: `timeout:${instanceId}`,
      after: [],
      instanceId,
      hook: "labgate-launch",
      result: "ABANDON",
      reason: "the hook timed out",
    },
    seq.n++,
  );
};

/** What a converged lab looks like. */
const checkConverged = (w: World, lab: LabConfig): void => {
  const live = w.runners.filter((r) => r.state !== "terminated");
  const eligible = live.filter(eligibleBySpec);
  for (const r of live) expect(["Pending:Wait", "Terminating:Wait"]).not.toContain(r.lifecycle);
  for (const s of w.subnets) {
    const inAz = eligible.filter((r) => r.az === s.az);
    const pool = inAz.length > 0 || !lab.crossAzFallback ? inAz : eligible;
    const table = w.routeTables[s.routeTableId as string];
    if (!lab.crossAzFallback) {
      for (const route of Object.values(table?.routes ?? {})) {
        const carrier = w.runners.find((r) => r.eniId === route.eniId);
        expect(carrier?.az ?? s.az, `no cross-AZ route for ${s.subnetId} when fallback is off`).toBe(s.az);
      }
    }
    if (pool.length === 0) continue;
    for (const cidr of lab.intranetCidrs) {
      const route = table?.routes[cidr];
      const carrier = pool.find((r) => r.eniId === route?.eniId && !route?.blackhole);
      expect(
        carrier,
        `${cidr} of ${s.subnetId} must be on an eligible runner of ${pool.map((r) => r.az)}`,
      ).toBeDefined();
    }
  }
  const needing = live.filter((r) => r.state === "running" && r.lifecycle === "InService" && !r.credential);
  const free = lab.vpn.credentials.filter((c) => !live.some((r) => r.credential === c));
  if (needing.length > 0) expect(free).toEqual([]);
};

describe("plan, under random events", () => {
  it("keeps every invariant after every reconcile and converges once things settle", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const base = labNamed("foo");
        const shape = {
          azs: AZS.slice(0, s.azs),
          runnersPerAz: s.runnersPerAz,
          subnetsPerAz: s.subnetsPerAz,
        };
        const lab = {
          ...withPool(base, s.azs * s.runnersPerAz + s.spare),
          crossAzFallback: s.crossAzFallback,
        };
        let world = convergedWorld(lab, shape);
        let previous = world;
        const seq = { n: 1 };
        for (const st of s.steps) {
          if (st.kind === "happen") {
            previous = world;
            world = happen(world, st.what, seq.n++);
            continue;
          }
          for (let i = 0; i < st.times; i++) {
            const seen = st.stale ? { ...previous, now: world.now } : world;
            const p = plan(seen, lab);
            checkIsolation(seen, p.actions, lab);
            world = applyPlan(world, p.actions, seq);
            previous = world;
            checkSafety(world, lab);
          }
        }
        // Things settle: every command finishes, a set-up runner's new alarm gets its first reports (OK), time
        // passes, and labgate reconciles until nothing is left. A launch labgate holds (no key, a failed
        // setup) ends as Auto Scaling ends it: its hook times out (ABANDON).
        let rounds = 0;
        let quiet = 0;
        for (; rounds < 20; rounds++) {
          for (let pick = 0; pick < world.runners.length; pick++) {
            world = happen(world, { kind: "command-finishes", pick, ok: true }, seq.n++);
          }
          world = firstReports(world);
          world = { ...world, now: world.now + (quiet > 0 ? SETUP_RETRY_MS : 60_000) };
          const p = plan(world, lab);
          if (p.actions.length > 0) {
            quiet = 0;
            world = applyPlan(world, p.actions, seq);
            checkSafety(world, lab);
            continue;
          }
          quiet++;
          const held = world.runners.filter(
            (r) => r.lifecycle === "Pending:Wait" || r.lifecycle === "Terminating:Wait",
          );
          if (quiet < 2) continue;
          if (held.length === 0) break;
          for (const r of held) world = hookTimesOut(world, r.instanceId, seq);
        }
        expect(rounds, "reconciles needed to converge").toBeLessThan(20);
        checkConverged(world, lab);
        expect(plan(world, lab).actions).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it("plans the same actions for the same world (deterministic)", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const lab = withPool(labNamed("foo"), s.azs * s.runnersPerAz + s.spare);
        let world = convergedWorld(lab, {
          azs: AZS.slice(0, s.azs),
          runnersPerAz: s.runnersPerAz,
          subnetsPerAz: s.subnetsPerAz,
        });
        s.steps.forEach((st, i) => {
          if (st.kind === "happen") world = happen(world, st.what, i + 1);
        });
        expect(plan(world, lab)).toEqual(plan(structuredClone(world), lab));
      }),
      { numRuns: 100 },
    );
  });
});
