// Issue #9, "bounded retries", over hours of model time (test/support/simulation.ts): a runner whose SSM agent
// never registers (nor does any replacement in its AZ), with fast-check schedules of what else happens to the
// lab: alarms flapping and a runner lost in the other AZ, events delivered again, AWS calls failing for a
// while (Lambda then retries the failed invocations). labgate's own invocations, the requeues, stay within
// 12 an hour; main's rule (one delayed message from every reconcile that asked for one) does not.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Action } from "../../functions/core/actions.ts";
import {
  convergedWorld,
  labNamed,
  runnerId,
  subnetId,
  withPool,
} from "../../functions/local/sample-world.ts";
import {
  type Invocation,
  MINUTE,
  perHour,
  type Scenario,
  type Scripted,
  simulate,
} from "../support/simulation.ts";

const A = "eu-central-1a";
const B = "eu-central-1b";
const lab = { ...withPool(labNamed("foo"), 6), workerSubnets: { ids: [subnetId(A, 1), subnetId(B, 1)] } };
const world = convergedWorld(lab, { azs: [A, B], runnersPerAz: 1, subnetsPerAz: 1 });
const A1 = runnerId(A, 1);
const HOURS = 3;
/** What "bounded" means here: at most 12 requeues an hour, as many as the schedule's own invocations. */
const REQUEUES_PER_HOUR = 12;

/** AZ a's runner is lost at once; Auto Scaling replaces it, and neither it nor any later one registers. */
const brokenAzA: Scenario = {
  lab,
  world,
  hours: HOURS,
  happenings: [{ at: 0, kind: "kill", target: A1 }],
  agentNeverRegisters: (r) => r.az === A && r.instanceId !== A1,
};

const of = (invocations: readonly Invocation[], source: Invocation["source"]) =>
  invocations.filter((i) => i.source === source);

const minute = (hours: number) => fc.integer({ min: 0, max: hours * 60 - 1 }).map((m) => m * MINUTE);

/** What else happens, in the other AZ or to no runner: alarms, a runner lost, events delivered again. */
const noise: fc.Arbitrary<Scripted> = fc.oneof(
  fc.record({
    kind: fc.constant("alarm" as const),
    at: minute(HOURS),
    target: fc.constant({ az: B, pick: 0 }),
    state: fc.constantFrom("OK" as const, "ALARM" as const),
  }),
  fc.record({
    kind: fc.constant("kill" as const),
    at: minute(HOURS),
    target: fc.constant({ az: B, pick: 0 }),
  }),
  fc.record({
    kind: fc.constant("event" as const),
    at: minute(HOURS),
    trigger: fc.constantFrom(
      "lifecycle launch (delivered again)",
      "schedule (late)",
      "alarm (delivered again)",
    ),
  }),
);

/**
 * Windows in which AWS calls of one kind fail (throttled past the SDK's retries, say): the invocation fails
 * and Lambda retries it; a failed lease also makes the deferred setup go away and come back (a new episode).
 */
const failures = fc.array(
  fc.record({
    from: minute(HOURS),
    minutes: fc.integer({ min: 1, max: 15 }),
    kind: fc.constantFrom<Action["kind"]>(
      "replace-route",
      "create-route",
      "record-health",
      "put-health-alarm",
      "lease-credential",
      "disable-source-dest-check",
      "mirror-tags",
      "release-credential",
      "forget-runner",
    ),
  }),
  { maxLength: 3 },
);

describe("requeues over hours of model time, with a runner whose SSM agent never registers", () => {
  it(`stay within ${REQUEUES_PER_HOUR} an hour, one pending at most, whatever else happens (fast-check)`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(noise, { maxLength: 12 }),
        failures,
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        async (happenings, windows, seed) => {
          const trace = await simulate({
            ...brokenAzA,
            seed,
            happenings: [...(brokenAzA.happenings ?? []), ...happenings],
            actionFails: (action, at) =>
              windows.some(
                (w) =>
                  action.kind === w.kind &&
                  at >= world.now + w.from &&
                  at < world.now + w.from + w.minutes * MINUTE,
              ),
          });
          const requeues = perHour(trace, of(trace.invocations, "requeue"));
          expect(
            requeues.every((n) => n <= REQUEUES_PER_HOUR),
            `requeues per hour: ${requeues}`,
          ).toBe(true);
          expect(trace.maxPending).toBe(1);
          // The broken AZ keeps being replaced (the harness models Auto Scaling, not a stub).
          expect(trace.launches.filter((l) => l.az === A).length).toBeGreaterThanOrEqual(HOURS * 2 - 1);
        },
      ),
      { numRuns: 25, seed: 20261126, endOnFailure: true },
    );
  }, 120_000);

  it("the same lab under main's rule (a delayed message from every reconcile that asks) breaks the bound", async () => {
    // One hour is enough to see it; the figures below are printed for the record.
    const ours = await simulate({ ...brokenAzA, hours: 1 });
    const mains = await simulate({ ...brokenAzA, hours: 1, requeue: "every-time" });
    const count = (t: typeof ours) => perHour(t, of(t.invocations, "requeue"))[0] ?? 0;
    console.info(
      `requeues in the first hour: labgate ${count(ours)} (of ${ours.invocations.length} invocations), main's rule ${count(mains)} (of ${mains.invocations.length}), ${mains.maxPending} pending at once`,
    );
    expect(count(ours)).toBeLessThanOrEqual(REQUEUES_PER_HOUR);
    expect(count(mains)).toBeGreaterThan(REQUEUES_PER_HOUR);
    expect(mains.maxPending).toBeGreaterThan(1);
  }, 60_000);

  it("backs off 30 s, 60 s, 120 s for one cause, then leaves it to the schedule", async () => {
    const trace = await simulate({ ...brokenAzA, hours: 0.5, seed: 7 });
    const first = trace.launches[0];
    const requeues = of(trace.invocations, "requeue").filter((i) => i.at < (first?.at ?? 0) + 20 * MINUTE);
    expect(requeues.map((r) => r.attempt)).toEqual([1, 2, 3]);
    // Each comes within the scheduler's minute of its due time: 30 s, then 60 s and 120 s after the one before.
    const gaps = requeues.slice(1).map((r, i) => (r.at - (requeues[i]?.startedAt ?? 0)) / 1000);
    expect(gaps[0]).toBeGreaterThanOrEqual(0);
    expect(gaps[0]).toBeLessThanOrEqual(120);
    expect(gaps[1]).toBeGreaterThanOrEqual(60);
    expect(gaps[1]).toBeLessThanOrEqual(180);
    const after = trace.invocations.filter(
      (i) => i.at > (requeues[2]?.startedAt ?? 0) && i.source === "schedule",
    );
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((i) => i.requeue === "spent")).toBe(true);
  }, 60_000);
});
