import "aws-sdk-client-mock-vitest/extend";
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { ownsInstance } from "../../functions/aws/owns-instance.ts";
import { foo } from "./fixtures.ts";

const ec2 = mockClient(EC2Client);

beforeEach(() => {
  ec2.reset();
});

const withGroupTag = (instanceId: string, group: string) => ({
  $metadata: {},
  Reservations: [
    { Instances: [{ InstanceId: instanceId, Tags: [{ Key: "aws:autoscaling:groupName", Value: group }] }] },
  ],
});

const notFound = (instanceId: string) =>
  Object.assign(new Error(`The instance ID '${instanceId}' does not exist`), {
    name: "InvalidInstanceID.NotFound",
    $fault: "client",
    $metadata: { httpStatusCode: 400 },
  });

describe("ownsInstance", () => {
  it("claims an instance of the lab's runner group", async () => {
    ec2.on(DescribeInstancesCommand).resolves(withGroupTag("i-0f0000000000a0001", "foo-runners"));

    await expect(ownsInstance("i-0f0000000000a0001", foo)).resolves.toBe(true);
    expect(ec2).toHaveReceivedCommandExactlyOnceWith(DescribeInstancesCommand, {
      InstanceIds: ["i-0f0000000000a0001"],
    });
  });

  it("does not claim an instance of another group (events/ec2-state-change-foreign.json)", async () => {
    ec2.on(DescribeInstancesCommand).resolves(withGroupTag("i-0ba000000000a0001", "bar-runners"));

    await expect(ownsInstance("i-0ba000000000a0001", foo)).resolves.toBe(false);
  });

  it("does not claim an instance EC2 does not know", async () => {
    ec2.on(DescribeInstancesCommand).rejects(notFound("i-0f0000000000d0001"));

    await expect(ownsInstance("i-0f0000000000d0001", foo)).resolves.toBe(false);
  });
});
