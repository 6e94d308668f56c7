import { describe, expect, it } from "vitest";
import type { Action, RouteAction } from "../../functions/core/actions.ts";
import { plan, SETUP_RETRY_MS } from "../../functions/core/plan.ts";
import type { World } from "../../functions/core/world.ts";
import {
  convergedWorld,
  labNamed,
  NOW,
  runnerId,
  tableId,
  withPool,
  withRunner,
} from "../../functions/local/sample-world.ts";
import { renderRunnerSetup } from "../../functions/render/index.ts";

const lab = withPool(labNamed("foo"), 8);
const shape = { azs: ["eu-central-1a", "eu-central-1b", "eu-central-1c"], runnersPerAz: 2, subnetsPerAz: 3 };
const world = convergedWorld(lab, shape);
const A1 = runnerId("eu-central-1a", 1);
const A2 = runnerId("eu-central-1a", 2);
const B1 = runnerId("eu-central-1b", 1);
const CIDR = "10.200.0.0/16";

const kinds = (actions: readonly Action[]): string[] => actions.map((a) => a.kind);
const routeActions = (actions: readonly Action[]): RouteAction[] =>
  actions.filter((a): a is RouteAction => a.kind === "replace-route" || a.kind === "create-route");
/** The world once the route actions ran. */
const applyRoutes = (w: World, actions: readonly Action[]): World => {
  const tables = { ...w.routeTables };
  for (const a of routeActions(actions)) {
    const table = tables[a.routeTableId];
    if (!table) throw new Error("missing table");
    tables[a.routeTableId] = {
      ...table,
      routes: { ...table.routes, [a.cidr]: { ...a.target, blackhole: false } },
    };
  }
  return { ...w, routeTables: tables };
};
const aDown = (w: World): World => [A1, A2].reduce((acc, id) => withRunner(acc, id, { state: "stopped" }), w);

describe("plan on a converged lab", () => {
  it("yields no action and no finding", () => {
    const p = plan(world, lab);
    expect(p.actions).toEqual([]);
    expect(p.findings).toEqual([]);
    expect(p.eligibleByAz).toEqual({ "eu-central-1a": 2, "eu-central-1b": 2, "eu-central-1c": 2 });
    expect(p.credentialsFree).toBe(2);
  });
});

describe("routes", () => {
  it("moves the routes of a stopped runner to the other runner of its AZ, as a failover", () => {
    const p = plan(withRunner(world, A1, { state: "stopped" }), lab);
    const moved = routeActions(p.actions);
    // A1 carried subnets 1 and 3 of AZ a.
    expect(
      moved.map((a) => [a.kind, a.routeTableId, a.cidr, a.target.instanceId, a.previous, a.failover]),
    ).toEqual([
      ["replace-route", tableId("eu-central-1a", 1), CIDR, A2, A1, true],
      ["replace-route", tableId("eu-central-1a", 3), CIDR, A2, A1, true],
    ]);
    expect(moved[0]?.reason).toContain("it is stopped");
  });

  it("fails over when a runner's tunnel health alarm is in ALARM", () => {
    const p = plan(withRunner(world, A2, { healthAlarm: "ALARM" }), lab);
    expect(routeActions(p.actions).map((a) => [a.routeTableId, a.target.instanceId])).toEqual([
      [tableId("eu-central-1a", 2), A1],
    ]);
    expect(routeActions(p.actions)[0]?.reason).toContain("health alarm is in ALARM");
  });

  it("falls back to another AZ when none of its own can carry the subnet, spreading the load", () => {
    const p = plan(aDown(world), lab);
    const moved = routeActions(p.actions);
    expect(moved).toHaveLength(3);
    expect(new Set(moved.map((a) => a.target.instanceId)).size).toBeGreaterThan(1);
    for (const a of moved) expect(a.target.instanceId).not.toMatch(/a000[12]$/);
    expect(p.findings).toEqual([]);
    expect(p.eligibleByAz["eu-central-1a"]).toBe(0);
  });

  it("leaves routes alone and reports the subnet unreachable when cross-AZ fallback is off", () => {
    const p = plan(aDown(world), { ...lab, crossAzFallback: false });
    expect(routeActions(p.actions)).toEqual([]);
    expect(p.findings.map((f) => f.kind)).toEqual([
      "subnet-unreachable",
      "subnet-unreachable",
      "subnet-unreachable",
    ]);
  });

  it("moves back to the subnet's AZ once it has an eligible runner again", () => {
    const fellBack = plan(aDown(world), lab).actions;
    let w = aDown(world);
    for (const a of routeActions(fellBack)) {
      const table = w.routeTables[a.routeTableId];
      if (!table) throw new Error("missing table");
      w = {
        ...w,
        routeTables: {
          ...w.routeTables,
          [a.routeTableId]: {
            ...table,
            routes: { ...table.routes, [a.cidr]: { ...a.target, blackhole: false } },
          },
        },
      };
    }
    expect(plan(w, lab).actions).toEqual([]); // fallback is stable
    // A1 is back, but its tunnel has been healthy for a minute only: the routes stay where they are.
    const hold = lab.failbackHoldSeconds * 1000;
    const recent = withRunner(w, A1, { state: "running", healthAlarm: "OK", healthSince: NOW - 60_000 });
    expect(routeActions(plan(recent, lab).actions)).toEqual([]);
    const back = routeActions(plan({ ...recent, now: NOW - 60_000 + hold }, lab).actions);
    expect(back.map((a) => [a.target.instanceId, a.failover])).toEqual([
      [A1, false],
      [A1, false],
      [A1, false],
    ]);
    expect(back[0]?.reason).toContain(`has been healthy for ${lab.failbackHoldSeconds} s`);
  });

  it("moves a subnet at most once while a tunnel's alarm flaps (hysteresis)", () => {
    // AZ a has one runner (A2 is gone); its alarm flips every 40 s for ten minutes.
    let w = withRunner(world, A2, { state: "stopped" });
    w = applyRoutes(w, plan(w, lab).actions); // A2's subnets move to A1
    const moves: string[] = [];
    for (let i = 0; i < 15; i++) {
      const state = i % 2 === 0 ? ("ALARM" as const) : ("OK" as const);
      w = withRunner({ ...w, now: NOW + i * 40_000 }, A1, {
        healthAlarm: state,
        healthSince: NOW + i * 40_000,
        ...(state === "ALARM" ? { alarmedAt: NOW + i * 40_000 } : {}),
      });
      const routes = routeActions(plan(w, lab).actions);
      if (routes.length > 0) moves.push(`${i}: ${routes.map((a) => a.target.instanceId).join(" ")}`);
      w = applyRoutes(w, routes);
    }
    // One move away at the first ALARM; never back while it flaps.
    expect(moves).toHaveLength(1);
    expect(moves[0]).toMatch(/^0:/);
  });

  it("never points a route at a runner that cannot carry it, and reports the lab unreachable when none can", () => {
    const dead = world.runners.reduce(
      (acc, r) => withRunner(acc, r.instanceId, { healthAlarm: "ALARM" }),
      world,
    );
    const p = plan(dead, lab);
    expect(routeActions(p.actions)).toEqual([]);
    expect(p.findings.filter((f) => f.kind === "lab-unreachable")).toHaveLength(1);
  });

  it("replaces a blackhole route and creates a missing one", () => {
    const t1 = tableId("eu-central-1b", 1);
    const t2 = tableId("eu-central-1b", 2);
    const w: World = {
      ...world,
      routeTables: {
        ...world.routeTables,
        [t1]: {
          routeTableId: t1,
          routes: { [CIDR]: { instanceId: "i-0dead", eniId: "eni-0dead", blackhole: true } },
        },
        [t2]: { routeTableId: t2, routes: {} },
      },
    };
    const moved = routeActions(plan(w, lab).actions);
    expect(moved.map((a) => [a.kind, a.routeTableId, a.failover])).toEqual([
      ["replace-route", t1, true],
      ["create-route", t2, false],
    ]);
    expect(moved[0]?.reason).toContain("blackhole");
    for (const a of moved) expect(a.target.instanceId).toMatch(/^i-0f0000000000b/);
  });

  it("points every intranet CIDR of a table, and the DNS service address, at the same runner", () => {
    const bar = { ...labNamed("bar"), workerSubnets: { ids: ["subnet-0f0000000000a0001"] } };
    const w = convergedWorld(withPool(bar, 8), { azs: ["eu-central-1a"], runnersPerAz: 2, subnetsPerAz: 1 });
    const t = tableId("eu-central-1a", 1);
    const empty: World = { ...w, routeTables: { [t]: { routeTableId: t, routes: {} } } };
    const created = routeActions(plan(empty, withPool(bar, 8)).actions);
    expect(created.map((a) => a.cidr)).toEqual([...bar.intranetCidrs, "100.64.53.2/32"]);
    expect(new Set(created.map((a) => a.target.instanceId)).size).toBe(1);
  });

  it("deletes the routes of a CIDR removed from intranetCidrs that point at a runner, and only those", () => {
    const [id, table] = Object.entries(world.routeTables)[0] ?? [];
    if (!id || !table) throw new Error("fixture");
    const a1 = world.runners.find((r) => r.instanceId === A1);
    const w: World = {
      ...world,
      routeTables: {
        ...world.routeTables,
        [id]: {
          ...table,
          others: {
            "10.99.0.0/16": { instanceId: A1, eniId: a1?.eniId, blackhole: false },
            // Someone else's route (a peering, an appliance): not labgate's.
            "10.98.0.0/16": {
              instanceId: "i-0aaaaaaaaaaaaaaaa",
              eniId: "eni-0aaaaaaaaaaaaaaaa",
              blackhole: false,
            },
          },
        },
      },
    };
    const p = plan(w, lab);
    expect(p.actions.filter((a) => a.kind === "delete-route")).toMatchObject([
      { routeTableId: id, cidr: "10.99.0.0/16", instanceId: A1 },
    ]);
    // Not while the instances are unknown: a runner cannot be told from a stranger.
    const blind = plan({ ...w, unknown: [{ read: "instances", error: "throttled" }] }, lab);
    expect(kinds(blind.actions)).not.toContain("delete-route");
  });

  it("reports a worker subnet whose route table is not tagged for the lab", () => {
    const w: World = { ...world, routeTables: { ...world.routeTables } };
    delete (w.routeTables as Record<string, unknown>)[tableId("eu-central-1c", 1)];
    const p = plan(w, lab);
    expect(p.findings.map((f) => [f.kind, f.subnetId])).toEqual([
      ["route-table-missing", "subnet-0f0000000000c0001"],
    ]);
  });
});

describe("a launching runner", () => {
  const fresh = {
    state: "running" as const,
    lifecycle: "Pending:Wait",
    sourceDestCheck: true,
    credential: undefined,
    appliedSetup: undefined,
    command: undefined,
    healthAlarm: undefined,
  };
  const launching = withRunner(world, A1, fresh);

  it("gets a free credential, its check disabled and its setup pushed once the lease is written", () => {
    const p = plan(launching, lab);
    const noRoutes = p.actions.filter((a) => !a.kind.endsWith("-route"));
    expect(kinds(noRoutes).sort()).toEqual(["disable-source-dest-check", "lease-credential", "push-setup"]);
    const lease = noRoutes.find((a) => a.kind === "lease-credential");
    const push = noRoutes.find((a) => a.kind === "push-setup");
    if (lease?.kind !== "lease-credential" || push?.kind !== "push-setup") throw new Error("unexpected plan");
    // Credentials 1-6 are held by the six runners of the shape; A1's own was dropped with its tags.
    expect(lease.parameter).toBe("/labgate/foo/vpn/client-1");
    expect(push.after).toContain(lease.id);
    // The runner fetches the key itself: the script names the parameter and holds no key material.
    expect(push.script).toContain(lease.parameter);
    expect(push.script).not.toMatch(/^[0-9a-f]{32}$/m);
    expect(kinds(p.actions)).not.toContain("complete-lifecycle");
  });

  it("is let into service once its setup succeeded, after the outcome is recorded", () => {
    const lease = "/labgate/foo/vpn/client-1";
    const r = world.runners.find((x) => x.instanceId === A1);
    if (!r?.privateIp) throw new Error("fixture");
    const { hash } = renderRunnerSetup({
      lab,
      instanceId: A1,
      privateIp: r.privateIp,
      credentialParameter: lease,
      workerCidrs: [...new Set(world.subnets.map((s) => s.cidr))].sort(),
    });
    const w = withRunner(launching, A1, {
      credential: lease,
      sourceDestCheck: false,
      command: { kind: "setup", hash, commandId: "c-1", status: "pending", sentAt: NOW },
      commandOutcome: "success",
    });
    const p = plan(w, lab);
    const complete = p.actions.find((a) => a.kind === "complete-lifecycle");
    expect(complete).toMatchObject({
      hook: "labgate-launch",
      result: "CONTINUE",
      after: [`record-command:${A1}`],
    });
    expect(p.actions.find((a) => a.kind === "record-command")).toMatchObject({ appliedSetup: hash });
    expect(kinds(p.actions)).not.toContain("push-setup");
  });

  it("is held, not abandoned, when its setup failed, and its setup is tried again after a while", () => {
    const p0 = plan(launching, lab);
    const push = p0.actions.find((a) => a.kind === "push-setup");
    if (push?.kind !== "push-setup") throw new Error("no push");
    const w = withRunner(launching, A1, {
      credential: "/labgate/foo/vpn/client-1",
      sourceDestCheck: false,
      command: { kind: "setup", hash: push.hash, commandId: "c-1", status: "pending", sentAt: NOW },
      commandOutcome: "failed",
    });
    const p = plan(w, lab);
    // Abandoning would only make Auto Scaling launch another at once (launch churn): the hook's own
    // timeout (30 minutes, ABANDON) is the limit.
    expect(kinds(p.actions)).not.toContain("complete-lifecycle");
    expect(p.findings.map((f) => f.kind)).toContain("command-failed");
    expect(kinds(p.actions)).not.toContain("push-setup");
    const recorded = withRunner(w, A1, {
      command: { kind: "setup", hash: push.hash, commandId: "c-1", status: "failed", sentAt: NOW },
      commandOutcome: undefined,
    });
    expect(kinds(plan({ ...recorded, now: NOW + SETUP_RETRY_MS - 1 }, lab).actions)).not.toContain(
      "push-setup",
    );
    const retry = plan({ ...recorded, now: NOW + SETUP_RETRY_MS }, lab).actions;
    expect(retry.find((a) => a.kind === "push-setup")?.reason).toContain("retrying");
    expect(kinds(retry)).not.toContain("complete-lifecycle");
  });

  it("completes a warm pool's hook without a key or a VPN, and gives back a key a runner takes into the pool", () => {
    const warming = withRunner(world, A1, { ...fresh, lifecycle: "Warmed:Pending:Wait" });
    const p = plan(warming, lab);
    const ours = p.actions.filter((a) => "instanceId" in a && a.instanceId === A1);
    expect(
      ours.filter((a) => a.kind !== "mirror-tags").map((a) => [a.kind, "result" in a ? a.result : ""]),
    ).toEqual([["complete-lifecycle", "CONTINUE"]]);
    // A runner that went back to the pool with its VPN: its routes move, then it stops and gives its key back.
    const back = plan(withRunner(world, A1, { lifecycle: "Warmed:Running" }), lab);
    const stop = back.actions.find((a) => a.kind === "stop-vpn");
    expect(stop).toMatchObject({ instanceId: A1 });
    expect(stop?.reason).toContain("warm pool");
    expect(routeActions(back.actions).every((a) => a.target.instanceId !== A1)).toBe(true);
  });

  it("is held, with a clear finding, when the credential pool is empty", () => {
    const small = withPool(labNamed("foo"), 6);
    const p = plan(launching, {
      ...small,
      vpn: { ...small.vpn, credentials: small.vpn.credentials.slice(1) },
    });
    expect(kinds(p.actions)).not.toContain("complete-lifecycle");
    expect(p.findings.find((f) => f.kind === "credential-pool-empty")?.message).toContain(
      "no free VPN credential",
    );
    expect(p.credentialsFree).toBe(0);
  });

  it("waits for a credential that a terminating runner is releasing", () => {
    const small = withPool(labNamed("foo"), 6);
    const pool = { ...small, vpn: { ...small.vpn, credentials: small.vpn.credentials.slice(1) } };
    const w = withRunner(launching, B1, { lifecycle: "Terminating:Wait" });
    const p = plan(w, pool);
    expect(p.actions.filter((a) => a.kind === "complete-lifecycle" && a.instanceId === A1)).toEqual([]);
    expect(p.findings.find((f) => f.kind === "credential-pool-empty")?.message).toContain("being released");
  });
});

describe("a terminating runner", () => {
  const terminating = withRunner(world, A1, { lifecycle: "Terminating:Wait" });

  it("has its routes moved away first, then its VPN stopped", () => {
    const p = plan(terminating, lab);
    const moved = routeActions(p.actions);
    expect(moved.map((a) => a.target.instanceId)).toEqual([A2, A2]);
    const stop = p.actions.find((a) => a.kind === "stop-vpn");
    expect(stop?.after).toEqual(moved.map((a) => a.id));
    expect(kinds(p.actions)).not.toContain("complete-lifecycle");
    expect(kinds(p.actions)).not.toContain("release-credential");
  });

  it("releases its credential and continues once its VPN is stopped", () => {
    const moved = routeActions(plan(terminating, lab).actions);
    let w = terminating;
    for (const a of moved) {
      const t = w.routeTables[a.routeTableId];
      if (!t) throw new Error("fixture");
      w = {
        ...w,
        routeTables: {
          ...w.routeTables,
          [a.routeTableId]: { ...t, routes: { [CIDR]: { ...a.target, blackhole: false } } },
        },
      };
    }
    w = withRunner(w, A1, {
      command: { kind: "stop-vpn", hash: "h", commandId: "c-2", status: "pending", sentAt: NOW },
      commandOutcome: "success",
    });
    const p = plan(w, lab);
    expect(kinds(p.actions)).toEqual(["record-command", "release-credential", "complete-lifecycle"]);
    expect(p.actions[2]).toMatchObject({
      hook: "labgate-terminate",
      result: "CONTINUE",
      after: [`release-credential:${A1}`],
    });
  });

  it("keeps its VPN and routes while no other runner can carry them (fallback off), and stops once one can", () => {
    const noFallback = { ...lab, crossAzFallback: false };
    // AZ a's other runner is stopped: A1, terminating, is its last.
    const last = withRunner(withRunner(world, A2, { state: "stopped" }), A1, {
      lifecycle: "Terminating:Wait",
    });
    const held = plan(last, noFallback);
    expect(kinds(held.actions)).not.toContain("stop-vpn");
    expect(kinds(held.actions)).not.toContain("complete-lifecycle");
    expect(held.findings.find((f) => f.kind === "termination-held")?.message).toContain(
      "keeps its VPN and its routes",
    );
    // Its replacement is in service: the routes move to it and A1 stops after them.
    const replaced = plan(withRunner(last, A2, { state: "running" }), noFallback);
    const stop = replaced.actions.find((a) => a.kind === "stop-vpn");
    const moved = routeActions(replaced.actions).filter((a) => a.previous === A1);
    expect(moved.length).toBeGreaterThan(0);
    expect(stop?.after).toEqual(expect.arrayContaining(moved.map((a) => a.id)));
  });

  it("goes ahead without a release when it is not running", () => {
    const p = plan(withRunner(terminating, A1, { state: "stopped" }), lab);
    expect(p.actions.find((a) => a.kind === "complete-lifecycle")).toMatchObject({ result: "CONTINUE" });
    expect(kinds(p.actions)).not.toContain("stop-vpn");
    expect(kinds(p.actions)).not.toContain("release-credential");
  });
});

describe("setup", () => {
  it("is pushed again when a runner's address changes, and only to that runner", () => {
    const p = plan(withRunner(world, B1, { privateIp: "10.0.99.99" }), lab);
    expect(p.actions.map((a) => a.id)).toEqual([`push-setup:${B1}`]);
  });

  it("that failed on an in-service runner makes it ineligible and is retried only after a while", () => {
    const r = world.runners.find((x) => x.instanceId === A1);
    if (!r) throw new Error("fixture");
    const w = withRunner(world, A1, {
      privateIp: "10.0.99.98",
      command: { kind: "setup", hash: "x", commandId: "c-3", status: "failed", sentAt: NOW - 60_000 },
    });
    const changed = plan(w, lab).actions.find((a) => a.kind === "push-setup");
    if (changed?.kind !== "push-setup") throw new Error("expected a push");
    const failed = withRunner(w, A1, {
      command: {
        kind: "setup",
        hash: changed.hash,
        commandId: "c-3",
        status: "failed",
        sentAt: NOW - 60_000,
      },
    });
    const soon = plan(failed, lab);
    expect(kinds(soon.actions)).not.toContain("push-setup");
    expect(routeActions(soon.actions).map((a) => a.target.instanceId)).toEqual([A2, A2]);
    const later = plan({ ...failed, now: NOW + SETUP_RETRY_MS }, lab);
    expect(later.actions.find((a) => a.kind === "push-setup")?.reason).toContain("retrying");
  });
});

describe("health alarms and source/destination checks", () => {
  it("creates the alarm of a set-up runner that has none, and deletes alarms of gone runners", () => {
    const w: World = {
      ...withRunner(world, B1, { healthAlarm: undefined }),
      healthAlarms: [
        ...world.healthAlarms.filter((a) => a.instanceId !== B1),
        { name: "labgate-foo-tunnel-i-0gone", instanceId: "i-0gone" },
      ],
    };
    const p = plan(w, lab);
    expect(p.actions.map((a) => a.id)).toEqual([`put-health-alarm:${B1}`, "delete-health-alarms"]);
    expect(p.actions[1]).toMatchObject({ alarmNames: ["labgate-foo-tunnel-i-0gone"] });
  });

  it("disables the check of a runner where someone turned it back on, and moves its routes meanwhile", () => {
    const p = plan(withRunner(world, A2, { sourceDestCheck: true }), lab);
    expect(kinds(p.actions)).toEqual(["replace-route", "disable-source-dest-check"]);
  });
});

describe("what an older labgate or the VPC leaves", () => {
  it("puts again a health alarm that watches the metric of an older labgate (another namespace)", () => {
    const w: World = {
      ...world,
      healthAlarms: world.healthAlarms.map((a) => (a.instanceId === B1 ? { ...a, outdated: true } : a)),
    };
    const p = plan(w, lab);
    expect(p.actions.map((a) => a.id)).toEqual([`put-health-alarm:${B1}`]);
    expect(p.actions[0]?.reason).toMatch(/older labgate/);
  });

  it("reports intranet CIDRs that overlap the VPC's real CIDR blocks, and still routes", () => {
    const p = plan({ ...aDown(world), vpcCidrs: ["10.0.0.0/16", "10.200.0.0/20"] }, lab);
    expect(p.findings).toContainEqual(
      expect.objectContaining({
        kind: "intranet-overlaps-vpc",
        message: expect.stringMatching(/10\.200\.0\.0\/16/),
      }),
    );
    expect(routeActions(p.actions).length).toBeGreaterThan(0);
  });

  it("reports a runner whose instance metadata answers without IMDSv2 or beyond one hop", () => {
    const p = plan(withRunner(world, A1, { imdsLocked: false }), lab);
    expect(p.findings).toEqual([expect.objectContaining({ kind: "metadata-open", instanceId: A1 })]);
    expect(p.actions).toEqual([]);
  });
});

describe("rotating a key out of the pool", () => {
  const rotated = {
    ...lab,
    vpn: { ...lab.vpn, credentials: lab.vpn.credentials.filter((c) => c !== "/labgate/foo/vpn/client-1") },
  };
  const holder = world.runners.find((r) => r.credential === "/labgate/foo/vpn/client-1");

  it("moves the routes off the key's holder first, then stops its VPN", () => {
    const p = plan(world, rotated);
    const routes = routeActions(p.actions);
    expect(routes.length).toBeGreaterThan(0);
    for (const r of routes) expect(r.previous).toBe(holder?.instanceId);
    const stop = p.actions.find((a) => a.kind === "stop-vpn");
    expect(stop).toMatchObject({ instanceId: holder?.instanceId });
    expect(stop?.after).toEqual(routes.map((r) => r.id));
    expect(kinds(p.actions)).not.toContain("push-setup");
  });

  it("waits, keeping its routes, while no other runner could take them (a finding says why)", () => {
    const alone = aDown(world);
    const a1 = alone.runners.find((r) => r.instanceId === A1);
    // Only A1 in AZ a can carry, cross-AZ fallback off: rotating A1's key would cut AZ a's workers off.
    const revived = withRunner(alone, A1, { state: "running" });
    const config = {
      ...lab,
      crossAzFallback: false,
      vpn: { ...lab.vpn, credentials: lab.vpn.credentials.filter((c) => c !== a1?.credential) },
    };
    const p = plan(revived, config);
    expect(kinds(p.actions)).not.toContain("stop-vpn");
    expect(p.findings).toContainEqual(
      expect.objectContaining({ kind: "credential-retired", instanceId: A1 }),
    );
  });

  it("once its VPN stopped, gives the key back, then leases it another and sets it up", () => {
    const h = holder?.instanceId ?? "";
    const stopped = withRunner(world, h, {
      command: {
        kind: "stop-vpn",
        hash: "0123456789abcdef",
        commandId: "00000000-0000-4000-8000-00000000aaaa",
        status: "success",
        sentAt: NOW,
      },
      appliedSetup: undefined,
    });
    const released = plan(stopped, rotated);
    expect(released.actions.find((a) => a.kind === "release-credential")).toMatchObject({
      instanceId: h,
      parameter: "/labgate/foo/vpn/client-1",
    });
    const next = withRunner(stopped, h, { credential: undefined });
    const again = plan(next, rotated);
    const lease = again.actions.find((a) => a.kind === "lease-credential");
    expect(lease).toMatchObject({ instanceId: h });
    expect(rotated.vpn.credentials).toContain(lease && "parameter" in lease ? lease.parameter : "");
    const push = again.actions.find((a) => a.kind === "push-setup");
    expect(push).toMatchObject({ instanceId: h });
    expect(push?.after).toContain(lease?.id);
  });
});
