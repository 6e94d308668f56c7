// plan() is total: over arbitrary worlds (arbitrary tag and store values, keys outside the pool, missing and
// empty subnet sets, duplicate holders, any read unknown) it never throws, and it still moves every route
// off a runner that is dead whenever a runner that clearly may carry it exists.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { LabConfig } from "../../functions/core/config.ts";
import { plan } from "../../functions/core/plan.ts";
import {
  type AlarmState,
  type CommandRecord,
  type InstanceState,
  READS,
  type Route,
  type Runner,
  type World,
} from "../../functions/core/world.ts";
import { labNamed, NOW, withPool } from "../../functions/local/sample-world.ts";

const AZS = ["eu-central-1a", "eu-central-1b", "eu-central-1c"];
const lab: LabConfig = { ...withPool(labNamed("foo"), 4), intranetCidrs: ["10.200.0.0/16", "10.210.0.0/24"] };
const POOL = lab.vpn.credentials;
const STATES: InstanceState[] = ["pending", "running", "stopping", "stopped", "shutting-down", "terminated"];
const ALARMS: (AlarmState | undefined)[] = ["OK", "ALARM", "INSUFFICIENT_DATA", undefined];

const hex = (n: number) =>
  fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: n, maxLength: n });
/** Mostly well-formed values, sometimes anything at all (a hand-edited tag, a corrupted item). */
const sometimes = <T>(good: fc.Arbitrary<T>) =>
  fc.oneof({ arbitrary: good, weight: 4 }, { arbitrary: fc.string(), weight: 1 });
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });

const commandArb: fc.Arbitrary<CommandRecord> = fc.record({
  kind: fc.constantFrom("setup" as const, "stop-vpn" as const),
  hash: sometimes(hex(16)),
  commandId: maybe(fc.uuid()),
  status: fc.constantFrom("pending" as const, "success" as const, "failed" as const),
  sentAt: fc.integer({ min: NOW - 3_600_000, max: NOW }),
});

const runnerArb = (i: number): fc.Arbitrary<Runner> =>
  fc.record({
    instanceId: fc.oneof(
      { arbitrary: hex(17).map((h) => `i-${h}`), weight: 9 },
      { arbitrary: fc.constant(`bad-${i}`), weight: 1 },
    ),
    az: fc.constantFrom(...AZS),
    state: fc.constantFrom(...STATES),
    lifecycle: fc.constantFrom(
      undefined,
      "Pending:Wait",
      "InService",
      "Terminating:Wait",
      "Standby",
      "Warmed:Pending:Wait",
    ),
    privateIp: maybe(sometimes(fc.ipV4())),
    eniId: maybe(hex(17).map((h) => `eni-${h}`)),
    sourceDestCheck: fc.boolean(),
    imdsLocked: maybe(fc.boolean()),
    recorded: fc.boolean(),
    credential: maybe(
      fc.oneof(fc.constantFrom(...POOL), fc.constant("/labgate/foo/vpn/retired-1"), fc.string()),
    ),
    appliedSetup: maybe(sometimes(hex(16))),
    command: maybe(commandArb),
    recordedHealth: fc.constantFrom(...ALARMS),
    mirror: fc.record({
      credential: maybe(fc.oneof(fc.constantFrom(...POOL), fc.string())),
      appliedSetup: maybe(fc.string()),
      command: maybe(fc.string()),
    }),
    commandOutcome: fc.constantFrom(undefined, "success" as const, "failed" as const),
    healthAlarm: fc.constantFrom(...ALARMS),
  });

/** A runner set up and healthy, as labgate leaves it: the kind that can take a dead runner's routes. */
const readyArb = (credential: string, states: readonly InstanceState[]): fc.Arbitrary<Runner> =>
  fc
    .record({ id: hex(17), az: fc.constantFrom(...AZS), state: fc.constantFrom(...states), hash: hex(16) })
    .map(({ id, az, state, hash }): Runner => {
      const command: CommandRecord = {
        kind: "setup",
        hash,
        commandId: "00000000-0000-4000-8000-000000000001",
        status: "success",
        sentAt: NOW - 3_600_000,
      };
      return {
        instanceId: `i-${id}`,
        az,
        state,
        lifecycle: state === "terminated" ? undefined : "InService",
        privateIp: "10.0.100.10",
        eniId: `eni-${id}`,
        sourceDestCheck: false,
        recorded: true,
        credential,
        appliedSetup: hash,
        command,
        recordedHealth: "OK",
        mirror: { credential, appliedSetup: hash, command: undefined },
        commandOutcome: undefined,
        healthAlarm: "OK",
      };
    });

const runnersArb: fc.Arbitrary<Runner[]> = fc
  .tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 0, max: 3 }))
  .chain(([ready, dead, junk]) =>
    fc.tuple(
      ...POOL.slice(0, ready).map((c) => readyArb(c, ["running"])),
      ...POOL.slice(ready, ready + dead).map((c) =>
        readyArb(c, ["stopping", "stopped", "shutting-down", "terminated"]),
      ),
      ...Array.from({ length: junk }, (_, i) => runnerArb(i)),
    ),
  );

const worldArb: fc.Arbitrary<World> = runnersArb.chain((runners) => {
  const targets = runners.flatMap((r) => [r.eniId, r.instanceId]).filter((x): x is string => x !== undefined);
  const routeArb: fc.Arbitrary<Route> =
    runners.length === 0
      ? fc.record({ instanceId: fc.constant(undefined), eniId: maybe(fc.string()), blackhole: fc.boolean() })
      : fc.oneof(
          // Mostly what EC2 shows for a route to a runner: its interface and instance.
          fc
            .constantFrom(...runners)
            .map((r): Route => ({ instanceId: r.instanceId, eniId: r.eniId, blackhole: false })),
          fc.record({
            instanceId: maybe(fc.constantFrom(...runners.map((r) => r.instanceId))),
            eniId: maybe(fc.oneof(fc.constantFrom(...targets), fc.string())),
            blackhole: fc.boolean(),
            other: maybe(fc.constantFrom("NAT gateway nat-0123", "transit gateway tgw-0123")),
          }),
        );
  const tableIds = ["rtb-a", "rtb-b", "rtb-c"];
  return fc.record({
    lab: fc.constant("foo"),
    now: fc.integer({ min: NOW, max: NOW + 86_400_000 }),
    runners: fc.constant(runners),
    subnets: fc.array(
      fc.record({
        subnetId: fc.oneof(
          hex(17).map((h) => `subnet-${h}`),
          fc.string(),
        ),
        az: fc.constantFrom(...AZS),
        cidr: sometimes(fc.constantFrom("10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24")),
        routeTableId: maybe(fc.constantFrom(...tableIds, "rtb-gone")),
      }),
      { maxLength: 5 },
    ),
    routeTables: fc
      .subarray(tableIds)
      .chain((ids) =>
        fc.tuple(
          ...ids.map((id) =>
            fc
              .dictionary(fc.constantFrom(...lab.intranetCidrs), routeArb)
              .map((routes) => [id, { routeTableId: id, routes }] as const),
          ),
        ),
      )
      .map((entries) => Object.fromEntries(entries)),
    healthAlarms: fc.array(fc.record({ name: fc.string(), instanceId: fc.string() }), { maxLength: 3 }),
    orphanLeases: fc.array(
      fc.record({
        credential: fc.oneof(fc.constantFrom(...POOL), fc.string()),
        holder: fc.string(),
        since: fc.integer({ min: 0, max: NOW }),
      }),
      { maxLength: 2 },
    ),
    // Mostly one or two reads unknown at a time, as when one service is throttled or down.
    unknown: fc
      .uniqueArray(fc.constantFrom(...READS), { maxLength: 2 })
      .map((reads) => reads.map((read) => ({ read, error: "SimulatedError: injected" }))),
  });
});

const dead = (r: Runner) => ["stopping", "stopped", "shutting-down", "terminated"].includes(r.state);

/** A runner that may clearly carry traffic, restated from the README's rules rather than imported. */
const clearlyEligible = (w: World, r: Runner, known: (read: string) => boolean): boolean => {
  const health = known("alarms") ? r.healthAlarm : r.recordedHealth;
  const holders = w.runners.filter((x) => x.credential === r.credential).length;
  return (
    r.state === "running" &&
    (!known("group") || r.lifecycle === "InService") &&
    !r.sourceDestCheck &&
    r.eniId !== undefined &&
    r.credential !== undefined &&
    POOL.includes(r.credential) &&
    holders === 1 &&
    r.appliedSetup !== undefined &&
    r.command?.kind === "setup" &&
    r.command.status === "success" &&
    (health === "OK" || health === "INSUFFICIENT_DATA" || (known("alarms") && health === undefined)) &&
    !w.orphanLeases.some((l) => l.credential === r.credential)
  );
};

describe("plan over arbitrary worlds", { timeout: 300_000 }, () => {
  it("never throws, and moves every route off a dead runner when a runner of the table's AZ clearly may carry it", () => {
    fc.assert(
      fc.property(worldArb, fc.boolean(), (world, crossAzFallback) => {
        const config = { ...lab, crossAzFallback };
        const result = plan(world, config);
        expect(result.actions).toBeInstanceOf(Array);
        const known = (read: string) => !world.unknown.some((u) => u.read === read);
        if (!known("route-tables") || !known("store")) return;
        const ids = new Set(world.runners.map((r) => r.instanceId));
        if (ids.size !== world.runners.length) return; // duplicate instance ids are no EC2 world
        for (const [tableId, table] of Object.entries(world.routeTables)) {
          const subnets = [...world.subnets]
            .sort((a, b) => a.subnetId.localeCompare(b.subnetId))
            .filter((s) => s.routeTableId === tableId);
          for (const [cidr, route] of Object.entries(table.routes)) {
            if (route.blackhole) continue;
            const carrier = world.runners.find(
              (r) =>
                (route.eniId !== undefined && route.eniId === r.eniId) ||
                (route.instanceId !== undefined && route.instanceId === r.instanceId),
            );
            if (carrier === undefined || !dead(carrier)) continue;
            // The table's AZ: its first subnet's; without subnets, that of the runner its first CIDR points at.
            const firstCarrier = lab.intranetCidrs
              .map((c) => table.routes[c])
              .map((x) =>
                world.runners.find(
                  (r) =>
                    // A blackhole points at no interface any more (only its instance id may still name one).
                    (x?.eniId !== undefined && !x.blackhole && x.eniId === r.eniId) ||
                    (x?.instanceId !== undefined && x.instanceId === r.instanceId),
                ),
              )
              .find((r) => r !== undefined);
            const az = known("subnets") ? subnets[0]?.az : firstCarrier?.az;
            if (az === undefined) continue;
            const rescuer = world.runners.find((r) => r.az === az && clearlyEligible(world, r, known));
            if (rescuer === undefined) continue;
            const moved = result.actions.find(
              (a) =>
                (a.kind === "replace-route" || a.kind === "create-route") &&
                a.routeTableId === tableId &&
                a.cidr === cidr,
            );
            expect(
              moved,
              `${cidr} in ${tableId} stays on dead ${carrier.instanceId} though ${rescuer.instanceId} may carry it`,
            ).toBeDefined();
            if (moved && "target" in moved) expect(moved.target.instanceId).not.toBe(carrier.instanceId);
          }
        }
      }),
      { numRuns: 1_000 },
    );
  });
});
