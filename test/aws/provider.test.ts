import { Logger } from "@aws-lambda-powertools/logger";
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { CloudWatchClient, DescribeAlarmsCommand } from "@aws-sdk/client-cloudwatch";
import {
  DescribeInstancesCommand,
  DescribeRouteTablesCommand,
  DescribeSubnetsCommand,
  EC2Client,
} from "@aws-sdk/client-ec2";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { createAwsProvider } from "../../functions/aws/provider.ts";
import { alarms, foo, group, routeTables, subnets } from "./fixtures.ts";

const ec2 = mockClient(EC2Client);
const autoScaling = mockClient(AutoScalingClient);
const cloudWatch = mockClient(CloudWatchClient);

beforeEach(() => {
  for (const mock of [ec2, autoScaling, cloudWatch]) mock.reset();
  autoScaling.on(DescribeAutoScalingGroupsCommand).resolves(group);
  ec2.on(DescribeSubnetsCommand).resolves(subnets);
  ec2.on(DescribeRouteTablesCommand).resolves(routeTables);
  cloudWatch.on(DescribeAlarmsCommand).resolves(alarms);
});

describe("createAwsProvider", () => {
  it("logs through the handler's Powertools logger", async () => {
    const logger = new Logger({ serviceName: "labgate", logLevel: "SILENT" });
    const warn = vi.spyOn(logger, "warn");
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            {
              InstanceId: "i-0f0000000000a0001",
              Placement: { AvailabilityZone: "eu-central-1a" },
              State: { Name: "running" },
              Tags: [{ Key: "labgate:command", Value: "garbage" }],
            },
          ],
        },
      ],
    });

    const world = await createAwsProvider(logger).observe(foo);

    expect(world.runners[0]?.command).toBeUndefined();
    expect(warn).toHaveBeenCalledWith("malformed labgate:command tag ignored", {
      instanceId: "i-0f0000000000a0001",
      value: "garbage",
    });
  });
});
