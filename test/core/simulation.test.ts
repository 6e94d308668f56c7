// The simulation harness itself (test/support/simulation.ts), on cases whose outcome the README states: what
// it plays must be what AWS and labgate do, or the properties built on it prove nothing.
import { describe, expect, it } from "vitest";
import {
  convergedWorld,
  labNamed,
  runnerId,
  subnetId,
  withPool,
} from "../../functions/local/sample-world.ts";
import { HOUR, MINUTE, perHour, simulate } from "../support/simulation.ts";

const A = "eu-central-1a";
const B = "eu-central-1b";
const lab = { ...withPool(labNamed("foo"), 6), workerSubnets: { ids: [subnetId(A, 1), subnetId(B, 1)] } };
const world = convergedWorld(lab, { azs: [A, B], runnersPerAz: 1, subnetsPerAz: 1 });
const A1 = runnerId(A, 1);
const B1 = runnerId(B, 1);
const TABLE_B = "rtb-0f0000000000b0001";

describe("the simulation harness", () => {
  it("plays a converged lab as the schedule alone: 12 reconciles an hour, no action, no requeue", async () => {
    const trace = await simulate({ lab, world, hours: 2 });
    expect(perHour(trace, trace.invocations)).toEqual([12, 12]);
    expect(trace.invocations.every((i) => i.source === "schedule" && i.requeue === "none")).toBe(true);
    expect(trace.actions).toEqual([]);
    expect(trace.launches).toEqual([]);
    expect(trace.world.runners).toEqual(world.runners);
  });

  it("replaces a lost runner: the route fails over to the other AZ, then back to the replacement, set up", async () => {
    const trace = await simulate({
      lab,
      world,
      hours: 1,
      happenings: [{ at: 10 * MINUTE, kind: "kill", target: B1 }],
    });
    const [replacement] = trace.launches;
    expect(trace.launches).toHaveLength(1);
    expect(replacement?.az).toBe(B);
    expect((replacement?.at ?? 0) - trace.start).toBeGreaterThan(10 * MINUTE);
    expect(trace.routeChanges.map((c) => [c.routeTableId, c.from, c.to])).toEqual([
      [TABLE_B, B1, A1],
      [TABLE_B, A1, replacement?.instanceId],
    ]);
    // Back once its setup ran (about a minute), its hook completed and its tunnel has been healthy for the
    // failback hold; the requeue that waits out the hold brings it back, not the 5-minute schedule.
    const back = (trace.routeChanges[1]?.at ?? 0) - (replacement?.at ?? 0);
    const hold = lab.failbackHoldSeconds * 1000;
    expect(back).toBeGreaterThan(hold);
    expect(back).toBeLessThan(hold + 3 * MINUTE);
    const r = trace.world.runners.find((x) => x.instanceId === replacement?.instanceId);
    expect(r).toMatchObject({ lifecycle: "InService", state: "running", healthAlarm: "OK" });
    // AWS told labgate: the lifecycle hook, EC2's state changes, the command's end, the alarm's first state.
    const events = trace.invocations.filter((i) => i.source === "event").map((i) => i.trigger);
    expect(events).toEqual(
      expect.arrayContaining([
        `instance ${B1} terminated`,
        `lifecycle launch ${replacement?.instanceId}`,
        expect.stringMatching(/^command [0-9a-f-]+ Success$/),
        `group activity launch of ${replacement?.instanceId} successful`,
        `alarm labgate-foo-tunnel-${replacement?.instanceId} OK`,
      ]),
    );
  });

  it("abandons a launch whose agent never registers when its hook times out, and launches another", async () => {
    const trace = await simulate({
      lab,
      world,
      hours: 1.5,
      happenings: [{ at: 0, kind: "kill", target: A1 }],
      agentNeverRegisters: (r) => r.az === A && r.instanceId !== A1,
    });
    const inA = trace.launches.filter((l) => l.az === A);
    expect(inA).toHaveLength(3);
    // The launch hook's 30 minutes, then about a minute for Auto Scaling to launch the next.
    const gaps = inA.slice(1).map((l, i) => (l.at - (inA[i]?.at ?? 0)) / MINUTE);
    for (const gap of gaps) expect(gap).toBeGreaterThan(30);
    for (const gap of gaps) expect(gap).toBeLessThan(33);
    expect(trace.invocations.map((i) => i.trigger)).toContain(
      `lifecycle terminate ${inA[0]?.instanceId} (launch abandoned)`,
    );
    // Its key went back once it was terminated (the terminate hook's 10 minutes).
    const first = trace.world.runners.find((r) => r.instanceId === inA[0]?.instanceId);
    expect(first).toMatchObject({ state: "terminated", credential: undefined });
  });

  it("leaves a launch whose setup fails out of service, and AZ a is served again within the hour", async () => {
    const trace = await simulate({
      lab,
      world,
      hours: 1,
      happenings: [{ at: 0, kind: "kill", target: A1 }],
      setupFails: (instanceId) => instanceId === "i-0e000000000000001",
    });
    expect(trace.launches[0]?.instanceId).toBe("i-0e000000000000001");
    const served = trace.routeChanges.filter((c) => c.routeTableId === "rtb-0f0000000000a0001").at(-1);
    expect(served?.to).not.toBe("i-0e000000000000001");
    expect(trace.world.runners.find((r) => r.instanceId === served?.to)).toMatchObject({
      az: A,
      lifecycle: "InService",
    });
    expect((served?.at ?? Number.POSITIVE_INFINITY) - trace.start).toBeLessThan(HOUR);
  });

  it("follows Auto Scaling's desired capacity: a scale-out launches, a scale-in terminates the newest", async () => {
    const trace = await simulate({
      lab,
      world,
      hours: 1,
      happenings: [
        { at: 5 * MINUTE, kind: "capacity", az: B, desired: 2 },
        { at: 30 * MINUTE, kind: "capacity", az: B, desired: 1 },
      ],
    });
    expect(trace.launches.map((l) => l.az)).toEqual([B]);
    const added = trace.world.runners.find((r) => r.instanceId === trace.launches[0]?.instanceId);
    expect(added?.state).toBe("terminated");
    expect(trace.world.runners.find((r) => r.instanceId === B1)).toMatchObject({ lifecycle: "InService" });
    expect(trace.invocations.map((i) => i.trigger)).toContain(`lifecycle terminate ${added?.instanceId}`);
  });
});
