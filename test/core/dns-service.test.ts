// The lab's DNS service address: validated against everything else the workers reach, routed beside the
// intranet in every worker route table, to the same runner, and moved with it.
import { describe, expect, it } from "vitest";
import type { Action, RouteAction } from "../../functions/core/actions.ts";
import { dnsServiceVpcOverlaps, parseLabConfig } from "../../functions/core/config.ts";
import { plan } from "../../functions/core/plan.ts";
import { routedCidrs } from "../../functions/core/routed.ts";
import type { World } from "../../functions/core/world.ts";
import {
  convergedWorld,
  labNamed,
  runnerId,
  subnetId,
  tableId,
  withPool,
  withRunner,
} from "../../functions/local/sample-world.ts";
import { labInputs } from "../../infra/labs.ts";

const barInput = labInputs.find((l) => l.name === "bar");
const json = (patch: Record<string, unknown>): string => JSON.stringify({ ...barInput, ...patch });

describe("dnsServiceAddress", () => {
  it.each([
    ["10.210.0.53", /dnsServiceAddress: 10\.210\.0\.53 is inside the intranet CIDR 10\.210\.0\.0\/16/],
    ["10.0.3.3", /dnsServiceAddress: 10\.0\.3\.3 is inside the VPC \(10\.0\.0\.0\/16\)/],
    ["172.17.0.53", /dnsServiceAddress: 172\.17\.0\.53 is inside Docker's default bridge/],
    ["169.254.169.253", /dnsServiceAddress: 169\.254\.169\.253 overlaps 169\.254\.0\.0\/16, link-local/],
    ["127.0.0.53", /dnsServiceAddress: 127\.0\.0\.53 overlaps 127\.0\.0\.0\/8, loopback/],
    ["224.0.0.53", /dnsServiceAddress: 224\.0\.0\.53 overlaps 224\.0\.0\.0\/4, multicast/],
    ["100.64.53.2; reboot", /dnsServiceAddress: must be an IPv4 address/],
  ])("refuses %s, naming why", (address, message) => {
    expect(() => parseLabConfig(json({ dnsServiceAddress: address }))).toThrow(message);
  });

  it("is optional: a lab without one routes its intranet only", () => {
    const lab = parseLabConfig(json({ dnsServiceAddress: undefined }));
    expect(lab.dnsServiceAddress).toBeUndefined();
    expect(routedCidrs(lab)).toEqual(["10.210.0.0/16", "10.211.4.0/24"]);
  });

  it("is routed after the intranet, as one host", () => {
    expect(routedCidrs(labNamed("bar"))).toEqual(["10.210.0.0/16", "10.211.4.0/24", "100.64.53.2/32"]);
  });

  it("is checked against every CIDR block of the VPC at deploy time", () => {
    expect(
      dnsServiceVpcOverlaps({ dnsServiceAddress: "100.64.53.2" }, ["10.0.0.0/16", "100.64.0.0/16"]),
    ).toEqual([
      "dnsServiceAddress: 100.64.53.2 is inside the VPC (100.64.0.0/16); workers could not tell the two apart",
    ]);
    expect(dnsServiceVpcOverlaps({ dnsServiceAddress: "100.64.53.2" }, ["10.0.0.0/16"])).toEqual([]);
    expect(dnsServiceVpcOverlaps({}, ["0.0.0.0/0"])).toEqual([]);
  });
});

describe("the DNS service address's route", () => {
  // bar, routed in its own AZ only (crossAzFallback false), two runners per AZ.
  const shape = { azs: ["eu-central-1a", "eu-central-1b"], runnersPerAz: 2, subnetsPerAz: 2 };
  const labWithSubnets = {
    ...withPool(labNamed("bar"), 8),
    workerSubnets: { ids: shape.azs.flatMap((az) => [1, 2].map((n) => subnetId(az, n))) },
  };
  const world = convergedWorld(labWithSubnets, shape);
  const A1 = runnerId("eu-central-1a", 1);
  const A2 = runnerId("eu-central-1a", 2);
  const SERVICE = "100.64.53.2/32";
  const routes = (actions: readonly Action[]): RouteAction[] =>
    actions.filter((a): a is RouteAction => a.kind === "replace-route" || a.kind === "create-route");

  it("needs nothing on a converged lab: every table already routes it with the intranet", () => {
    expect(world.routeTables[tableId("eu-central-1a", 1)]?.routes[SERVICE]?.instanceId).toBe(A1);
    expect(plan(world, labWithSubnets).actions).toEqual([]);
  });

  it("moves with the intranet off a runner that stops, to the same runner", () => {
    const moved = routes(plan(withRunner(world, A1, { state: "stopped" }), labWithSubnets).actions);
    expect(moved.map((a) => [a.routeTableId, a.cidr, a.target.instanceId, a.failover])).toEqual([
      [tableId("eu-central-1a", 1), "10.210.0.0/16", A2, true],
      [tableId("eu-central-1a", 1), "10.211.4.0/24", A2, true],
      [tableId("eu-central-1a", 1), SERVICE, A2, true],
    ]);
  });

  it("is created where it is missing, towards the runner that carries the table's intranet", () => {
    const t = tableId("eu-central-1a", 2);
    const table = world.routeTables[t];
    if (!table) throw new Error("no table");
    const { [SERVICE]: _, ...intranetOnly } = table.routes;
    const w: World = {
      ...world,
      routeTables: { ...world.routeTables, [t]: { ...table, routes: intranetOnly } },
    };
    const created = routes(plan(w, labWithSubnets).actions);
    expect(created.map((a) => [a.kind, a.routeTableId, a.cidr, a.target.instanceId, a.failover])).toEqual([
      ["create-route", t, SERVICE, A2, false],
    ]);
    expect(table.routes["10.210.0.0/16"]?.instanceId).toBe(A2);
  });
});
