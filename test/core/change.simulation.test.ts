// Issue #9 over hours of model time (test/support/simulation.ts): what labgate does with launches it cannot
// serve, a flapping tunnel and a configuration change, under fast-check schedules. Each property states a
// bound the README's rules promise: launches held (the launch hook's 30 minutes are the backoff), routes moved
// at most once per failback hold, a rollout that never takes an AZ's last eligible runner.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { LabConfig } from "../../functions/core/config.ts";
import { eligibility, plan } from "../../functions/core/plan.ts";
import { commandStatus } from "../../functions/core/rules/runner.ts";
import type { World } from "../../functions/core/world.ts";
import { convergedWorld, labNamed, subnetId, tableId, withPool } from "../../functions/local/sample-world.ts";
import { HOUR, MINUTE, perHour, type Scripted, simulate } from "../support/simulation.ts";

const A = "eu-central-1a";
const B = "eu-central-1b";
const base = labNamed("foo");
const labOf = (keys: number): LabConfig => ({
  ...withPool(base, keys),
  workerSubnets: { ids: [subnetId(A, 1), subnetId(B, 1)] },
});
const minute = (hours: number) => fc.integer({ min: 0, max: hours * 60 - 1 }).map((m) => m * MINUTE);

describe("launches a lab cannot serve yet are held, not churned", () => {
  const HOURS = 4;
  /**
   * A held launch ends when its hook times out (30 min) and Auto Scaling launches the next about a minute
   * later: two an hour per slot that cannot be served, plus the first. Abandoning at first sight launched
   * about 30 an hour.
   */
  const PER_SLOT_PER_HOUR = 3;

  it(`launches at most ${PER_SLOT_PER_HOUR} an hour per slot with an empty pool or setups that fail (fast-check)`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("empty pool" as const, "setups fail" as const),
        fc.record({ a: fc.integer({ min: 1, max: 3 }), b: fc.integer({ min: 1, max: 3 }) }),
        minute(1),
        // Tunnels of the working runners that fail for a few minutes and come back.
        fc.array(
          fc.record({
            at: minute(HOURS - 1),
            minutes: fc.integer({ min: 1, max: 10 }),
            target: fc.constantFrom({ az: A, pick: 0 }, { az: B, pick: 0 }),
          }),
          { maxLength: 4 },
        ),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        async (cause, desired, at, noise, seed) => {
          // One runner per AZ holds every key of the pool (empty pool), or the pool is large but no launch
          // can be set up (the lab's VPN server refuses them).
          const lab = labOf(cause === "empty pool" ? 2 : 8);
          const world = convergedWorld(lab, { azs: [A, B], runnersPerAz: 1, subnetsPerAz: 1 });
          const initial = new Set(world.runners.map((r) => r.instanceId));
          const happenings: Scripted[] = [
            { at, kind: "capacity", az: A, desired: desired.a },
            { at, kind: "capacity", az: B, desired: desired.b },
            ...noise.flatMap(({ at: down, minutes, target }): Scripted[] => [
              { at: down, kind: "alarm", target, state: "ALARM" },
              { at: down + minutes * MINUTE, kind: "alarm", target, state: "OK" },
            ]),
          ];
          const trace = await simulate({
            lab,
            world,
            hours: HOURS,
            seed,
            happenings,
            setupFails: (id) => cause === "setups fail" && !initial.has(id),
          });
          for (const [az, want] of [
            [A, desired.a],
            [B, desired.b],
          ] as const) {
            const slots = want - 1;
            const hourly = perHour(
              trace,
              trace.launches.filter((l) => l.az === az),
            );
            expect(
              hourly.every((n) => n <= PER_SLOT_PER_HOUR * slots),
              `${cause}: launches per hour in ${az} with ${slots} slot(s) it cannot serve: ${hourly}`,
            ).toBe(true);
          }
          // The runners that work keep the lab reachable: both subnets routed to a working runner.
          const eligible = eligibility(trace.world, lab);
          for (const table of [tableId(A, 1), tableId(B, 1)]) {
            const carrier = Object.values(trace.world.routeTables[table]?.routes ?? {})[0]?.instanceId;
            expect(
              carrier && eligible.get(carrier),
              `${table} carried by an eligible runner`,
            ).toBeUndefined();
            expect(carrier).toBeDefined();
          }
        },
      ),
      { numRuns: 12, seed: 20261128, endOnFailure: true },
    );
  }, 300_000);
});

describe("a flapping tunnel", () => {
  it("moves each route at most once per failback hold, and back once it has been healthy that long (fast-check)", async () => {
    const lab = labOf(6);
    const hold = lab.failbackHoldSeconds * 1000;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(1, 2),
        minute(1),
        // Gaps between flips, each shorter than the hold: the tunnel never stays up long enough to be trusted.
        fc.array(fc.integer({ min: 10, max: lab.failbackHoldSeconds - 10 }), { minLength: 2, maxLength: 40 }),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        async (runnersPerAz, start, gaps, seed) => {
          const world = convergedWorld(lab, { azs: [A, B], runnersPerAz, subnetsPerAz: 1 });
          const table = tableId(B, 1);
          const carrier = Object.values(world.routeTables[table]?.routes ?? {})[0]?.instanceId;
          expect(carrier).toBeDefined();
          const flips: Scripted[] = [];
          let t = start;
          gaps.forEach((gap, i) => {
            flips.push({
              at: t,
              kind: "alarm",
              target: carrier as string,
              state: i % 2 === 0 ? "ALARM" : "OK",
            });
            t += gap * 1000;
          });
          // It settles healthy at the end: from the last flip to OK (an OK after an OK changes nothing).
          const settled = gaps.length % 2 === 0 ? t - (gaps.at(-1) ?? 0) * 1000 : t;
          flips.push({ at: t, kind: "alarm", target: carrier as string, state: "OK" });
          const trace = await simulate({
            lab,
            world,
            hours: (settled + hold) / HOUR + 0.25,
            seed,
            happenings: flips,
          });
          const moves = trace.routeChanges.filter((c) => c.routeTableId === table);
          for (const [i, m] of moves.entries()) {
            const next = moves[i + 1];
            if (next === undefined || next.cidr !== m.cidr) continue;
            expect(
              next.at - m.at,
              `moves of ${m.cidr} at +${(m.at - world.now) / 1000} s and +${(next.at - world.now) / 1000} s`,
            ).toBeGreaterThanOrEqual(hold);
          }
          // The first ALARM moves the route off at once; it comes back to the flapping runner only after it has
          // been healthy for the hold (with one runner per AZ: back from the other AZ).
          expect(moves[0]?.from).toBe(carrier);
          const back = moves.filter((m) => m.to === carrier);
          for (const m of back) expect(m.at - (world.now + settled)).toBeGreaterThanOrEqual(hold);
          if (runnersPerAz === 1) expect(back.length).toBe(lab.intranetCidrs.length);
        },
      ),
      { numRuns: 20, seed: 20261128, endOnFailure: true },
    );
  }, 300_000);
});

describe("a configuration change", () => {
  /** What a deployment may change that restarts every tunnel (every keyfile differs). */
  const changes: Record<string, (lab: LabConfig) => LabConfig> = {
    port: (lab) => ({ ...lab, vpn: { ...lab.vpn, port: lab.vpn.port + 1 } }),
    "DNS servers": (lab) => ({ ...lab, dnsServers: [...lab.dnsServers, "10.200.0.11"] }),
    domains: (lab) => ({ ...lab, intranetDomains: [...lab.intranetDomains, "lab2.foo.example"] }),
  };

  const eligibleByAz = (world: World, lab: LabConfig): Map<string, number> => {
    const counts = new Map<string, number>();
    for (const [id, why] of eligibility(world, lab)) {
      const r = world.runners.find((x) => x.instanceId === id);
      if (r && why === undefined) counts.set(r.az, (counts.get(r.az) ?? 0) + 1);
    }
    return counts;
  };

  it("never leaves an AZ that had two eligible runners without one, rolled out or halted (fast-check)", async () => {
    const lab = labOf(8);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...Object.keys(changes)),
        fc.boolean(),
        minute(1),
        fc.array(
          fc.record({
            kind: fc.constant("event" as const),
            at: minute(2),
            trigger: fc.constantFrom("schedule (late)", "command (delivered again)"),
          }),
          { maxLength: 5 },
        ),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        async (what, bad, at, duplicates, seed) => {
          const world = convergedWorld(lab, { azs: [A, B], runnersPerAz: 2, subnetsPerAz: 1 });
          const working = new Set(world.runners.map((r) => r.appliedSetup));
          const changed = (changes[what] as (l: LabConfig) => LabConfig)(lab);
          const lows: string[] = [];
          const trace = await simulate({
            lab,
            world,
            hours: 2,
            seed,
            happenings: [{ at, kind: "config", lab: changed }, ...duplicates],
            // A bad configuration: every setup of it fails (a typo in a DNS server, a port nothing listens on).
            setupFails: (_id, hash) => bad && !working.has(hash),
            inspect: (w, l) => {
              for (const az of [A, B]) {
                const n = eligibleByAz(w, l).get(az) ?? 0;
                if (n < 1) lows.push(`${az} had no eligible runner at +${(w.now - world.now) / 1000} s`);
              }
            },
          });
          expect(lows, `${what}${bad ? " (bad)" : ""}`).toEqual([]);
          const runners = trace.world.runners.filter((r) => r.state !== "terminated");
          const failed = runners.filter(
            (r) => r.command?.kind === "setup" && commandStatus(r, trace.world.now) === "failed",
          );
          if (bad) {
            // Halted at the first failure: at most one runner per AZ tried it, the others on their working setup.
            for (const az of [A, B]) expect(failed.filter((r) => r.az === az).length).toBeLessThanOrEqual(1);
            expect(failed.length).toBeGreaterThan(0);
            expect(plan(trace.world, changed).findings.map((f) => f.kind)).toContain("rollout-halted");
          } else {
            // Rolled out everywhere: nothing left to push, nothing failed.
            expect(failed).toEqual([]);
            expect(plan(trace.world, changed).actions.filter((x) => x.kind === "push-setup")).toEqual([]);
            expect(runners.every((r) => !working.has(r.appliedSetup))).toBe(true);
          }
        },
      ),
      { numRuns: 16, seed: 20261128, endOnFailure: true },
    );
  }, 300_000);
});
