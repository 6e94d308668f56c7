// Rolling setups out (core/rules/rollout.ts): one runner per AZ at a time, routes moved off a runner before
// its tunnel restarts, the next one only once the last one works, a halt at the first failure.
import { describe, expect, it } from "vitest";
import type { Action, RouteAction } from "../../functions/core/actions.ts";
import type { LabConfig } from "../../functions/core/config.ts";
import { plan, SETUP_RETRY_MS } from "../../functions/core/plan.ts";
import { targets } from "../../functions/core/rules/runner.ts";
import type { Runner, World } from "../../functions/core/world.ts";
import { applyToModel } from "../../functions/local/model.ts";
import { convergedWorld, labNamed, runnerId, withPool } from "../../functions/local/sample-world.ts";
import { tunnelOf } from "../../functions/render/index.ts";

const AZS = ["eu-central-1a", "eu-central-1b", "eu-central-1c"];
const lab = withPool(labNamed("foo"), 8);
const world = convergedWorld(lab, { azs: AZS, runnersPerAz: 2, subnetsPerAz: 3 });
/** Changes every runner's keyfile: every tunnel must restart. */
const newDns: LabConfig = { ...lab, dnsServers: [...lab.dnsServers, "10.200.0.54"] };

const pushes = (actions: readonly Action[]) => actions.filter((a) => a.kind === "push-setup");
const routeActions = (actions: readonly Action[]): RouteAction[] =>
  actions.filter((a): a is RouteAction => a.kind === "replace-route" || a.kind === "create-route");
const runner = (w: World, id: string): Runner => {
  const r = w.runners.find((x) => x.instanceId === id);
  if (!r) throw new Error(`no ${id}`);
  return r;
};
/** Runners each table's routes point at. */
const carriers = (w: World): Set<string> =>
  new Set(
    Object.values(w.routeTables).flatMap((t) =>
      Object.values(t.routes).flatMap((route) =>
        w.runners.filter((r) => targets(route, r)).map((r) => r.instanceId),
      ),
    ),
  );

let sequence = 1;
/** Runs a plan's actions in the model, in order, each once what it waits on ran. */
const apply = (w: World, actions: readonly Action[]): World => {
  const done = new Set<string>();
  let next = w;
  for (const a of actions) {
    if (!a.after.every((id) => done.has(id))) continue;
    next = applyToModel(next, a, sequence++);
    done.add(a.id);
  }
  return next;
};
/** Every pending command ends: ok, or as `outcome` says. */
const finish = (w: World, outcome: (id: string) => boolean = () => true): World => ({
  ...w,
  runners: w.runners.map((r) =>
    r.command?.status === "pending" && r.commandOutcome === undefined
      ? { ...r, commandOutcome: outcome(r.instanceId) ? "success" : "failed" }
      : r,
  ),
});
const later = (w: World, ms: number): World => ({ ...w, now: w.now + ms });

describe("a configuration change that restarts every tunnel", () => {
  it("is rolled out one runner per AZ at a time, each drained first, never leaving an AZ without a runner", () => {
    let w = world;
    const rolled: string[][] = [];
    for (let round = 0; round < 6; round++) {
      const p = plan(w, newDns);
      const sent = pushes(p.actions);
      if (sent.length === 0) break;
      rolled.push(sent.map((a) => a.instanceId).sort());
      // One per AZ.
      const azs = sent.map((a) => runner(w, a.instanceId).az);
      expect(new Set(azs).size).toBe(azs.length);
      for (const push of sent) {
        const moved = routeActions(p.actions).filter((a) => a.previous === push.instanceId);
        // Its routes go to the other runner of its AZ, and the push waits for them.
        for (const m of moved) {
          expect(runner(w, m.target.instanceId).az).toBe(runner(w, push.instanceId).az);
          expect(push.after).toContain(m.id);
        }
        expect(push.reason).toContain("a new tunnel");
      }
      w = apply(w, p.actions);
      // While the setups run, no route points at a runner whose tunnel restarts, and every AZ is served.
      for (const push of sent) expect(carriers(w).has(push.instanceId)).toBe(false);
      expect(plan(w, newDns).eligibleByAz).toEqual(Object.fromEntries(AZS.map((az) => [az, 1])));
      // Nothing more is sent while a setup runs in the AZ.
      expect(pushes(plan(w, newDns).actions)).toEqual([]);
      w = apply(
        finish(w),
        plan(finish(w), newDns).actions.filter((a) => a.kind === "record-command"),
      );
    }
    expect(rolled).toEqual([
      [runnerId(AZS[0] ?? "", 1), runnerId(AZS[1] ?? "", 1), runnerId(AZS[2] ?? "", 1)],
      [runnerId(AZS[0] ?? "", 2), runnerId(AZS[1] ?? "", 2), runnerId(AZS[2] ?? "", 2)],
    ]);
    const done = plan(w, newDns);
    expect(pushes(done.actions)).toEqual([]);
    expect(done.eligibleByAz).toEqual(Object.fromEntries(AZS.map((az) => [az, 2])));
  });

  it("goes to a runner that carries no route before one that does", () => {
    // In AZ a, A1 carries everything.
    const a1 = runner(world, runnerId(AZS[0] ?? "", 1));
    const w: World = {
      ...world,
      routeTables: Object.fromEntries(
        Object.entries(world.routeTables).map(([id, t]) => [
          id,
          world.subnets.some((s) => s.routeTableId === id && s.az === AZS[0])
            ? {
                ...t,
                routes: Object.fromEntries(
                  Object.keys(t.routes).map((c) => [
                    c,
                    { instanceId: a1.instanceId, eniId: a1.eniId, blackhole: false },
                  ]),
                ),
              }
            : t,
        ]),
      ),
    };
    const p = plan(w, newDns);
    const inA = pushes(p.actions).filter((a) => runner(w, a.instanceId).az === AZS[0]);
    expect(inA.map((a) => a.instanceId)).toEqual([runnerId(AZS[0] ?? "", 2)]);
    // Nothing to drain: no route moves in AZ a.
    expect(routeActions(p.actions).filter((a) => a.previous === a1.instanceId)).toEqual([]);
  });

  it("with one runner per AZ, drains across AZs where allowed, one AZ at a time", () => {
    const single = convergedWorld(lab, { azs: AZS.slice(0, 2), runnersPerAz: 1, subnetsPerAz: 2 });
    const p = plan(single, newDns);
    const sent = pushes(p.actions);
    expect(sent.map((a) => a.instanceId)).toEqual([runnerId(AZS[0] ?? "", 1)]);
    const moved = routeActions(p.actions);
    expect(moved.length).toBeGreaterThan(0);
    expect(new Set(moved.map((a) => a.target.instanceId))).toEqual(new Set([runnerId(AZS[1] ?? "", 1)]));
    // Without cross-AZ fallback nobody can take its routes: it is set up in place, and a finding says so.
    const alone = plan(single, { ...newDns, crossAzFallback: false });
    expect(pushes(alone.actions)).toHaveLength(2);
    expect(routeActions(alone.actions)).toEqual([]);
    expect(alone.findings.filter((f) => f.kind === "rollout-interrupts")).toHaveLength(2);
  });
});

describe("a setup change that leaves the tunnel alone", () => {
  it("drains nothing, but is still rolled one runner per AZ at a time", () => {
    // New worker subnets change the gateway's rules, not the tunnel.
    const w: World = {
      ...world,
      subnets: world.subnets.map((s, i) => (i === 0 ? { ...s, cidr: "10.0.250.0/24" } : s)),
    };
    const p = plan(w, lab);
    const sent = pushes(p.actions);
    expect(sent).toHaveLength(3);
    for (const a of sent) {
      expect(tunnelOf(a.hash)).toBe(tunnelOf(runner(w, a.instanceId).appliedSetup ?? ""));
      expect(a.reason).toContain("the tunnel is left as it is");
    }
    expect(routeActions(p.actions)).toEqual([]);
    // While it runs, the runner keeps carrying its routes.
    const running = apply(w, p.actions);
    expect(plan(running, lab).eligibleByAz).toEqual(Object.fromEntries(AZS.map((az) => [az, 2])));
  });
});

describe("a configuration that fails", () => {
  it("halts at the first failure, leaves every other runner on its working setup, and resumes on a retry or a fix", () => {
    const first = plan(world, newDns);
    let w = apply(world, first.actions);
    const failed = pushes(first.actions).map((a) => a.instanceId);
    // The first one fails, the others of the first wave succeed.
    const bad = failed[0] ?? "";
    w = finish(w, (id) => id !== bad);
    let p = plan(w, newDns);
    w = apply(
      w,
      p.actions.filter((a) => a.kind === "record-command"),
    );
    p = plan(w, newDns);
    expect(pushes(p.actions)).toEqual([]);
    const halt = p.findings.find((f) => f.kind === "rollout-halted");
    expect(halt?.message).toContain(bad);
    expect(halt?.message).toContain("resumes by itself");
    // At most one runner per AZ out of service.
    expect(Object.values(p.eligibleByAz).every((n) => n >= 1)).toBe(true);
    // Ten minutes on, the failed runner alone is tried again.
    const retry = plan(later(w, SETUP_RETRY_MS), newDns);
    expect(pushes(retry.actions).map((a) => a.instanceId)).toEqual([bad]);
    // Reverting the configuration: the failed runner gets its old setup again (the failed one may have left
    // it half changed), while its AZ waits; the other AZs roll their first runner back.
    const reverted = pushes(plan(w, lab).actions);
    const inBadAz = reverted.filter((a) => runner(w, a.instanceId).az === runner(w, bad).az);
    expect(inBadAz.map((a) => [a.instanceId, a.hash])).toEqual([[bad, runner(world, bad).appliedSetup]]);
    expect(reverted.map((a) => a.instanceId).sort()).toEqual([...failed].sort());
    // A fixed configuration resumes the rollout: the failed runner first (it carries nothing), its AZ waits.
    const fixed: LabConfig = { ...lab, dnsServers: [...lab.dnsServers, "10.200.0.55"] };
    const resumed = plan(w, fixed);
    expect(resumed.findings.map((f) => f.kind)).not.toContain("rollout-halted");
    const badAz = runner(w, bad).az;
    expect(
      pushes(resumed.actions)
        .filter((a) => runner(w, a.instanceId).az === badAz)
        .map((a) => a.instanceId),
    ).toEqual([bad]);
  });
});

describe("ordered commands", () => {
  it("never sends a stop while a setup may still run, and records an outcome before the next push", () => {
    const a1 = runnerId(AZS[0] ?? "", 1);
    const p0 = plan(world, newDns);
    let w = apply(world, p0.actions);
    // A1 is now being set up; it is then asked to terminate.
    w = {
      ...w,
      runners: w.runners.map((r) => (r.instanceId === a1 ? { ...r, lifecycle: "Terminating:Wait" } : r)),
    };
    const during = plan(w, newDns);
    expect(during.actions.filter((a) => a.kind === "stop-vpn")).toEqual([]);
    // Once SSM reports it, the outcome is recorded and the stop goes out after that record.
    const after = plan(finish(w), newDns);
    const stop = after.actions.find((a) => a.kind === "stop-vpn" && a.instanceId === a1);
    const record = after.actions.find((a) => a.kind === "record-command" && a.instanceId === a1);
    expect(record).toBeDefined();
    expect(stop?.after).toContain(record?.id);
    for (const push of pushes(after.actions)) {
      const mine = after.actions.find((a) => a.kind === "record-command" && a.instanceId === push.instanceId);
      if (mine) expect(push.after).toContain(mine.id);
    }
  });
});
