import "aws-sdk-client-mock-vitest/extend";
// Observe reads what the labs' routes and runners say of the two additions: each worker route table's route to
// the lab's DNS service address, and each runner's own tunnel report (its labgate:tunnel tag), laid over by a
// newer report that an event brought before EC2 shows it.
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { CloudWatchClient, DescribeAlarmsCommand } from "@aws-sdk/client-cloudwatch";
import {
  DescribeInstancesCommand,
  DescribeRouteTablesCommand,
  DescribeSubnetsCommand,
  EC2Client,
  type Instance,
  type RouteTable,
} from "@aws-sdk/client-ec2";
import { SSMClient } from "@aws-sdk/client-ssm";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { observe } from "../../functions/aws/observe.ts";
import { SEEN_REPORT_MS, SeenReports } from "../../functions/aws/seen-reports.ts";
import { TUNNEL_TAG } from "../../functions/core/names.ts";
import { MemoryStore } from "../../functions/local/memory-store.ts";
import { A1, B1, eni, foo, group, instances, NOW, routeTables, subnets, TABLE_B } from "./fixtures.ts";

const ec2 = mockClient(EC2Client);
const autoScaling = mockClient(AutoScalingClient);
const cloudWatch = mockClient(CloudWatchClient);
const ssm = mockClient(SSMClient);
const log = { info: vi.fn(), warn: vi.fn() };

/** foo with a DNS service address. */
const lab = { ...foo, dnsServiceAddress: "100.64.53.1" };
const SERVICE = "100.64.53.1/32";

/** The fixtures' instances, B1's tags with `extra`. */
const withB1Tags = (extra: Record<string, string>) => ({
  ...instances,
  Reservations: (instances.Reservations ?? []).map((r) => ({
    ...r,
    Instances: (r.Instances ?? []).map(
      (i): Instance =>
        i.InstanceId === B1
          ? {
              ...i,
              Tags: [...(i.Tags ?? []), ...Object.entries(extra).map(([Key, Value]) => ({ Key, Value }))],
            }
          : i,
    ),
  })),
});

beforeEach(() => {
  for (const mock of [ec2, autoScaling, cloudWatch, ssm]) mock.reset();
  autoScaling.on(DescribeAutoScalingGroupsCommand).resolves(group);
  ec2.on(DescribeInstancesCommand).resolves(instances);
  ec2.on(DescribeSubnetsCommand).resolves(subnets);
  ec2.on(DescribeRouteTablesCommand).resolves(routeTables);
  cloudWatch.on(DescribeAlarmsCommand).resolves({ $metadata: {}, MetricAlarms: [] });
});

const observed = (seenReports?: SeenReports, now = NOW) =>
  observe(lab, { store: new MemoryStore(), now, log, ...(seenReports && { seenReports }) });
const reportOf = async (seenReports?: SeenReports, now = NOW) =>
  (await observed(seenReports, now)).runners.find((r) => r.instanceId === B1)?.tunnelReport;

describe("observe, with a DNS service address", () => {
  it("reads each table's route to it beside the intranet's, and nothing else", async () => {
    const withService = (routeTables.RouteTables ?? []).map(
      (t): RouteTable =>
        t.RouteTableId === TABLE_B
          ? {
              ...t,
              Routes: [
                ...(t.Routes ?? []),
                {
                  DestinationCidrBlock: SERVICE,
                  InstanceId: B1,
                  NetworkInterfaceId: eni(B1),
                  State: "active",
                },
                { DestinationCidrBlock: "100.64.53.9/32", InstanceId: A1, State: "active" },
              ],
            }
          : t,
    );
    ec2.on(DescribeRouteTablesCommand).resolves({ $metadata: {}, RouteTables: withService });
    const world = await observed();
    expect(Object.keys(world.routeTables[TABLE_B]?.routes ?? {}).sort()).toEqual(["10.200.0.0/16", SERVICE]);
    expect(world.routeTables[TABLE_B]?.routes[SERVICE]).toEqual({
      instanceId: B1,
      eniId: eni(B1),
      blackhole: false,
      other: undefined,
    });
  });
});

describe("observe, a runner's tunnel report", () => {
  it("reads the report from the runner's tag", async () => {
    ec2.on(DescribeInstancesCommand).resolves(withB1Tags({ [TUNNEL_TAG]: "down 2026-11-26T09:05:20Z" }));
    expect(await reportOf()).toEqual({ state: "down", at: Date.parse("2026-11-26T09:05:20Z") });
  });

  it("reads no report from a runner without the tag, or with a malformed one", async () => {
    expect(await reportOf()).toBeUndefined();
    ec2.on(DescribeInstancesCommand).resolves(withB1Tags({ [TUNNEL_TAG]: "down, trust me" }));
    expect(await reportOf()).toBeUndefined();
  });

  it("lays a newer report seen in an event over a tag EC2 does not show yet, for a while", async () => {
    ec2.on(DescribeInstancesCommand).resolves(withB1Tags({ [TUNNEL_TAG]: "up 2026-11-26T09:00:00Z" }));
    const seen = new SeenReports();
    const down = { state: "down" as const, at: Date.parse("2026-11-26T09:05:28Z") };
    seen.note(B1, down, NOW);
    expect(await reportOf(seen)).toEqual(down);
    // Once EC2 shows the tag, the two agree; a report seen long ago is dropped.
    expect(await reportOf(seen, NOW + SEEN_REPORT_MS + 1)).toEqual({
      state: "up",
      at: Date.parse("2026-11-26T09:00:00Z"),
    });
  });

  it("keeps the tag's report when it is newer than the one an event brought", async () => {
    ec2.on(DescribeInstancesCommand).resolves(withB1Tags({ [TUNNEL_TAG]: "up 2026-11-26T09:05:29Z" }));
    const seen = new SeenReports();
    seen.note(B1, { state: "down", at: Date.parse("2026-11-26T09:05:28Z") }, NOW);
    expect(await reportOf(seen)).toEqual({ state: "up", at: Date.parse("2026-11-26T09:05:29Z") });
  });
});
