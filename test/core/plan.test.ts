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
    const back = routeActions(plan(withRunner(w, A1, { state: "running" }), lab).actions);
    expect(back.map((a) => [a.target.instanceId, a.failover])).toEqual([
      [A1, false],
      [A1, false],
      [A1, false],
    ]);
    expect(back[0]?.reason).toContain("has an eligible runner again");
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
    expect(kinds(noRoutes)).toEqual(["disable-source-dest-check", "lease-credential", "push-setup"]);
    const lease = noRoutes[1];
    const push = noRoutes[2];
    if (lease?.kind !== "lease-credential" || push?.kind !== "push-setup") throw new Error("unexpected plan");
    // Credentials 1-6 are held by the six runners of the shape; A1's own was dropped with its tags.
    expect(lease.parameter).toBe("/labgate/foo/vpn/client-1");
    expect(push.after).toEqual([lease.id]);
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

  it("is abandoned when its setup failed", () => {
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
    expect(p.actions.find((a) => a.kind === "complete-lifecycle")).toMatchObject({ result: "ABANDON" });
    expect(p.findings.map((f) => f.kind)).toContain("command-failed");
    expect(kinds(p.actions)).not.toContain("push-setup");
  });

  it("is abandoned, with a clear finding, when the credential pool is empty", () => {
    const small = withPool(labNamed("foo"), 6);
    const p = plan(launching, {
      ...small,
      vpn: { ...small.vpn, credentials: small.vpn.credentials.slice(1) },
    });
    expect(p.actions.find((a) => a.kind === "complete-lifecycle")).toMatchObject({ result: "ABANDON" });
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

  it("goes ahead without a release when it is not running", () => {
    const p = plan(withRunner(terminating, A1, { state: "stopped" }), lab);
    expect(p.actions.find((a) => a.kind === "complete-lifecycle")).toMatchObject({ result: "CONTINUE" });
    expect(kinds(p.actions)).not.toContain("stop-vpn");
    expect(kinds(p.actions)).not.toContain("release-credential");
  });
});

describe("setup", () => {
  it("is pushed to every runner when what would be rendered changes, without moving a route", () => {
    const p = plan(world, { ...lab, dnsServers: ["10.200.0.11"] });
    // The placeholder renderer does not yet include DNS servers; the real one does. Either way, no flapping:
    expect(routeActions(p.actions)).toEqual([]);
    const pushes = p.actions.filter((a) => a.kind === "push-setup");
    for (const a of pushes) expect(a.reason).toMatch(/changed/);
  });

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
