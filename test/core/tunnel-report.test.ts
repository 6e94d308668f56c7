// A runner's own tunnel report: read from its tag, it makes the runner ineligible while it says down and is
// recent, and never makes eligible a runner that the rest of the world rules out.
import { describe, expect, it } from "vitest";
import type { Action, RouteAction } from "../../functions/core/actions.ts";
import { eligibility, plan } from "../../functions/core/plan.ts";
import {
  formatTunnelReport,
  parseTunnelReport,
  TUNNEL_REPORT_TRUST_MS,
} from "../../functions/core/tunnel-report.ts";
import {
  convergedWorld,
  labNamed,
  NOW,
  runnerId,
  tableId,
  withPool,
  withRunner,
} from "../../functions/local/sample-world.ts";

const lab = withPool(labNamed("foo"), 8);
const world = convergedWorld(lab, {
  azs: ["eu-central-1a", "eu-central-1b"],
  runnersPerAz: 2,
  subnetsPerAz: 2,
});
const A1 = runnerId("eu-central-1a", 1);
const A2 = runnerId("eu-central-1a", 2);
const routes = (actions: readonly Action[]): RouteAction[] =>
  actions.filter((a): a is RouteAction => a.kind === "replace-route" || a.kind === "create-route");
const down = (at: number) => ({ state: "down" as const, at });
const up = (at: number) => ({ state: "up" as const, at });

describe("a tunnel report's tag value", () => {
  it("reads what the tunnel watch writes, and writes it back the same", () => {
    const value = "down 2026-11-26T09:19:58Z";
    const report = parseTunnelReport(value);
    expect(report).toEqual({ state: "down", at: Date.parse("2026-11-26T09:19:58Z") });
    expect(report && formatTunnelReport(report)).toBe(value);
    expect(parseTunnelReport("up 2026-11-26T09:20:04Z")?.state).toBe("up");
  });

  it.each([
    undefined,
    "",
    "down",
    "DOWN 2026-11-26T09:19:58Z",
    "down 2026-13-40T99:99:99Z",
    "down now",
    "sideways 2026-11-26T09:19:58Z",
  ])("reads no report from %j", (value) => {
    expect(parseTunnelReport(value)).toBeUndefined();
  });
});

describe("a runner's own tunnel report", () => {
  it("moves the routes off a runner whose watch reported its tunnel down, as a failover, before any alarm", () => {
    const w = withRunner(world, A1, { tunnelReport: down(NOW - 3_000), healthAlarm: "OK" });
    const moved = routes(plan(w, lab).actions);
    expect(moved.map((a) => [a.routeTableId, a.target.instanceId, a.previous, a.failover])).toEqual([
      [tableId("eu-central-1a", 1), A2, A1, true],
    ]);
    expect(moved[0]?.reason).toContain(
      "its tunnel watch reported its tunnel down at 2026-11-26T08:59:57.000Z",
    );
    expect(eligibility(w, lab).get(A1)).toMatch(/tunnel watch reported its tunnel down/);
  });

  it("changes nothing while it says up, and an up report never makes a runner eligible that cannot carry traffic", () => {
    expect(plan(withRunner(world, A1, { tunnelReport: up(NOW - 1_000) }), lab).actions).toEqual([]);
    const alarmed = withRunner(world, A1, { tunnelReport: up(NOW), healthAlarm: "ALARM" });
    expect(eligibility(alarmed, lab).get(A1)).toBe("its tunnel health alarm is in ALARM");
    const stopped = withRunner(world, A1, { tunnelReport: up(NOW), state: "stopped" });
    expect(eligibility(stopped, lab).get(A1)).toBe("it is stopped");
  });

  it("stops counting once it is older than the alarm needs to catch up, and counts from the future until then", () => {
    const old = withRunner(world, A1, { tunnelReport: down(NOW - TUNNEL_REPORT_TRUST_MS - 1) });
    expect(eligibility(old, lab).get(A1)).toBeUndefined();
    const edge = withRunner(world, A1, { tunnelReport: down(NOW - TUNNEL_REPORT_TRUST_MS) });
    expect(eligibility(edge, lab).get(A1)).toBeDefined();
    // A forged time from the future keeps the runner that wrote it out longer: it can only hurt itself.
    const future = withRunner(world, A1, { tunnelReport: down(NOW + 3_600_000) });
    expect(eligibility(future, lab).get(A1)).toBeDefined();
  });

  it("takes no new route for a reported runner: its AZ's subnets go to the other runner", () => {
    const w = withRunner(world, A2, { tunnelReport: down(NOW) });
    const moved = routes(plan(w, lab).actions);
    expect(moved.map((a) => [a.routeTableId, a.target.instanceId])).toEqual([
      [tableId("eu-central-1a", 2), A1],
    ]);
  });
});
