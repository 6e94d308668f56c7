import { Logger } from "@aws-lambda-powertools/logger";
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { CloudWatchClient, DescribeAlarmsCommand } from "@aws-sdk/client-cloudwatch";
import {
  DescribeInstancesCommand,
  DescribeRouteTablesCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  EC2Client,
} from "@aws-sdk/client-ec2";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { createAwsProvider } from "../../functions/aws/provider.ts";
import { MemoryStore } from "../../functions/local/memory-store.ts";
import { alarms, foo, group, routeTables, subnets, vpcs } from "./fixtures.ts";

const ec2 = mockClient(EC2Client);
const autoScaling = mockClient(AutoScalingClient);
const cloudWatch = mockClient(CloudWatchClient);

beforeEach(() => {
  for (const mock of [ec2, autoScaling, cloudWatch]) mock.reset();
  autoScaling.on(DescribeAutoScalingGroupsCommand).resolves(group);
  ec2.on(DescribeSubnetsCommand).resolves(subnets);
  ec2.on(DescribeRouteTablesCommand).resolves(routeTables);
  ec2.on(DescribeVpcsCommand).resolves(vpcs);
  cloudWatch.on(DescribeAlarmsCommand).resolves(alarms);
});

describe("createAwsProvider", () => {
  it("logs through the handler's Powertools logger", async () => {
    const logger = new Logger({ serviceName: "labgate", logLevel: "SILENT" });
    const warn = vi.spyOn(logger, "warn");
    ec2
      .on(DescribeInstancesCommand)
      .rejects(
        Object.assign(new Error("Request limit exceeded."), { name: "RequestLimitExceeded", $metadata: {} }),
      );

    const world = await createAwsProvider(new MemoryStore(), logger).observe(foo);

    expect(world.unknown).toEqual([
      { read: "instances", error: "RequestLimitExceeded: Request limit exceeded." },
    ]);
    expect(warn).toHaveBeenCalledWith("could not read instances; planning around it", {
      read: "instances",
      error: "RequestLimitExceeded: Request limit exceeded.",
    });
  });
});
