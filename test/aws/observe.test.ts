import "aws-sdk-client-mock-vitest/extend";
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { CloudWatchClient, DescribeAlarmsCommand } from "@aws-sdk/client-cloudwatch";
import {
  DescribeInstancesCommand,
  DescribeRouteTablesCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  EC2Client,
} from "@aws-sdk/client-ec2";
import { GetCommandInvocationCommand, InvocationDoesNotExist, SSMClient } from "@aws-sdk/client-ssm";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { observe as observeWith } from "../../functions/aws/observe.ts";
import type { LabConfig } from "../../functions/core/config.ts";
import type { World } from "../../functions/core/world.ts";
import type { MemoryStore } from "../../functions/local/memory-store.ts";
import {
  A1,
  A2,
  A3,
  ALARM_SINCE,
  alarms,
  B1,
  bar,
  CIDR,
  COMMAND_A1,
  COMMAND_A3,
  COMMAND_B1,
  eni,
  foo,
  group,
  instances,
  NEW_SETUP_HASH,
  NOW,
  routeTables,
  SETUP_HASH,
  STOP_HASH,
  SUBNET_A,
  SUBNET_B,
  SUBNET_C,
  seededStore,
  subnets,
  TABLE_A,
  TABLE_B,
  TABLE_C,
  vpcs,
} from "./fixtures.ts";

const ec2 = mockClient(EC2Client);
const autoScaling = mockClient(AutoScalingClient);
const ssm = mockClient(SSMClient);
const cloudWatch = mockClient(CloudWatchClient);
const log = { info: vi.fn(), warn: vi.fn() };

const SENT = Date.parse("2026-11-26T09:00:30Z");
let store: MemoryStore;
const observe = (lab: LabConfig) => observeWith(lab, { store, now: NOW, log });

beforeEach(async () => {
  store = await seededStore();
  for (const mock of [ec2, autoScaling, ssm, cloudWatch]) mock.reset();
  log.info.mockReset();
  log.warn.mockReset();
  autoScaling.on(DescribeAutoScalingGroupsCommand).resolves(group);
  ec2.on(DescribeInstancesCommand).resolves(instances);
  ec2.on(DescribeSubnetsCommand).resolves(subnets);
  ec2.on(DescribeRouteTablesCommand).resolves(routeTables);
  ec2.on(DescribeVpcsCommand).resolves(vpcs);
  cloudWatch.on(DescribeAlarmsCommand).resolves(alarms);
  ssm
    .on(GetCommandInvocationCommand, { CommandId: COMMAND_A1, InstanceId: A1 })
    .resolves({ $metadata: {}, CommandId: COMMAND_A1, InstanceId: A1, Status: "InProgress" })
    .on(GetCommandInvocationCommand, { CommandId: COMMAND_A3, InstanceId: A3 })
    .resolves({ $metadata: {}, CommandId: COMMAND_A3, InstanceId: A3, Status: "Success", ResponseCode: 0 })
    .on(GetCommandInvocationCommand, { CommandId: COMMAND_B1, InstanceId: B1 })
    .resolves({ $metadata: {}, CommandId: COMMAND_B1, InstanceId: B1, Status: "Failed", ResponseCode: 1 });
});

const runner = (world: World, instanceId: string) => world.runners.find((r) => r.instanceId === instanceId);

describe("observe", () => {
  it("builds the world of the lab from what EC2, Auto Scaling, CloudWatch and SSM report", async () => {
    const world = await observe(foo);

    expect(world).toEqual({
      lab: "foo",
      now: NOW,
      runners: [
        {
          instanceId: A1,
          az: "eu-central-1a",
          state: "running",
          lifecycle: "Terminating:Wait",
          privateIp: "10.0.1.11",
          eniId: eni(A1),
          sourceDestCheck: false,
          imdsLocked: undefined,
          recorded: true,
          recordedHealth: undefined,
          mirror: {
            credential: "/labgate/foo/vpn/client-1",
            appliedSetup: SETUP_HASH,
            command: `stop-vpn ${STOP_HASH} ${COMMAND_A1} pending ${SENT}`,
          },
          credential: "/labgate/foo/vpn/client-1",
          appliedSetup: SETUP_HASH,
          command: {
            kind: "stop-vpn",
            hash: STOP_HASH,
            commandId: COMMAND_A1,
            status: "pending",
            sentAt: SENT,
          },
          commandOutcome: undefined,
          healthAlarm: "OK",
          healthSince: ALARM_SINCE,
        },
        {
          instanceId: A2,
          az: "eu-central-1a",
          state: "terminated",
          lifecycle: undefined,
          privateIp: undefined,
          eniId: undefined,
          sourceDestCheck: true,
          imdsLocked: undefined,
          recorded: true,
          recordedHealth: undefined,
          mirror: {
            credential: undefined,
            appliedSetup: SETUP_HASH,
            command: `setup ${SETUP_HASH} 0a1b2c3d-0000-4000-8000-00000000a002 success ${SENT - 86_400_000}`,
          },
          credential: undefined,
          appliedSetup: SETUP_HASH,
          command: {
            kind: "setup",
            hash: SETUP_HASH,
            commandId: "0a1b2c3d-0000-4000-8000-00000000a002",
            status: "success",
            sentAt: SENT - 86_400_000,
          },
          commandOutcome: undefined,
          healthAlarm: "INSUFFICIENT_DATA",
          healthSince: ALARM_SINCE,
        },
        {
          instanceId: A3,
          az: "eu-central-1a",
          state: "running",
          lifecycle: "Pending:Wait",
          privateIp: "10.0.1.13",
          eniId: eni(A3),
          sourceDestCheck: true,
          imdsLocked: undefined,
          recorded: true,
          recordedHealth: undefined,
          mirror: {
            credential: "/labgate/foo/vpn/client-3",
            appliedSetup: undefined,
            command: `setup ${NEW_SETUP_HASH} ${COMMAND_A3} pending ${SENT}`,
          },
          credential: "/labgate/foo/vpn/client-3",
          appliedSetup: undefined,
          command: {
            kind: "setup",
            hash: NEW_SETUP_HASH,
            commandId: COMMAND_A3,
            status: "pending",
            sentAt: SENT,
          },
          commandOutcome: "success",
          healthAlarm: undefined,
        },
        {
          instanceId: B1,
          az: "eu-central-1b",
          state: "running",
          lifecycle: "InService",
          privateIp: "10.0.2.11",
          eniId: eni(B1),
          sourceDestCheck: false,
          imdsLocked: undefined,
          recorded: true,
          recordedHealth: "ALARM",
          mirror: {
            credential: "/labgate/foo/vpn/client-2",
            appliedSetup: SETUP_HASH,
            command: `setup ${NEW_SETUP_HASH} ${COMMAND_B1} pending ${SENT}`,
          },
          credential: "/labgate/foo/vpn/client-2",
          appliedSetup: SETUP_HASH,
          command: {
            kind: "setup",
            hash: NEW_SETUP_HASH,
            commandId: COMMAND_B1,
            status: "pending",
            sentAt: SENT,
          },
          commandOutcome: "failed",
          healthAlarm: "ALARM",
          healthSince: ALARM_SINCE,
        },
      ],
      subnets: [
        { subnetId: SUBNET_A, az: "eu-central-1a", cidr: "10.0.16.0/20", routeTableId: TABLE_A },
        { subnetId: SUBNET_B, az: "eu-central-1b", cidr: "10.0.32.0/20", routeTableId: TABLE_B },
        { subnetId: SUBNET_C, az: "eu-central-1c", cidr: "10.0.48.0/20", routeTableId: TABLE_C },
      ],
      routeTables: {
        [TABLE_A]: {
          routeTableId: TABLE_A,
          routes: { [CIDR]: { instanceId: A2, eniId: eni(A2), blackhole: true, other: undefined } },
          others: {},
        },
        [TABLE_B]: {
          routeTableId: TABLE_B,
          routes: { [CIDR]: { instanceId: B1, eniId: eni(B1), blackhole: false, other: undefined } },
          others: { "10.99.0.0/16": { instanceId: B1, eniId: eni(B1), blackhole: false } },
        },
        [TABLE_C]: { routeTableId: TABLE_C, routes: {}, others: {} },
      },
      healthAlarms: [
        { name: `labgate-foo-tunnel-${A1}`, instanceId: A1, outdated: false },
        { name: `labgate-foo-tunnel-${A2}`, instanceId: A2, outdated: false },
        { name: `labgate-foo-tunnel-${B1}`, instanceId: B1, outdated: false },
      ],
      orphanLeases: [],
      vpcCidrs: ["10.0.0.0/16"],
      unknown: [],
    });
    expect(log.warn).not.toHaveBeenCalled();
  });

  it("reads the group, the instances, the subnets, the route tables and the alarms through the lab's filters", async () => {
    await observe(foo);

    expect(autoScaling).toHaveReceivedCommandExactlyOnceWith(DescribeAutoScalingGroupsCommand, {
      AutoScalingGroupNames: ["foo-runners"],
    });
    expect(ec2).toHaveReceivedCommandExactlyOnceWith(DescribeInstancesCommand, {
      Filters: [{ Name: "tag:aws:autoscaling:groupName", Values: ["foo-runners"] }],
      MaxResults: 1000,
    });
    // By filter: SubnetIds would fail the whole call for one deleted subnet (InvalidSubnetID.NotFound).
    // Only in the lab's VPC: a subnet or table tagged elsewhere is not the lab's.
    expect(ec2).toHaveReceivedCommandExactlyOnceWith(DescribeSubnetsCommand, {
      Filters: [
        {
          Name: "subnet-id",
          Values: ["subnet-0f0000000000a0001", "subnet-0f0000000000b0001", "subnet-0f0000000000c0001"],
        },
        { Name: "vpc-id", Values: ["vpc-0f0000000000f0001"] },
      ],
    });
    expect(ec2).toHaveReceivedCommandExactlyOnceWith(DescribeRouteTablesCommand, {
      Filters: [
        { Name: "tag:labgate:lab", Values: ["foo"] },
        { Name: "vpc-id", Values: ["vpc-0f0000000000f0001"] },
      ],
    });
    expect(ec2).toHaveReceivedCommandExactlyOnceWith(DescribeVpcsCommand, {
      VpcIds: ["vpc-0f0000000000f0001"],
    });
    expect(cloudWatch).toHaveReceivedCommandExactlyOnceWith(DescribeAlarmsCommand, {
      AlarmNamePrefix: "labgate-foo-tunnel-",
    });
  });

  it("finds worker subnets by tag when the lab configures them by tag", async () => {
    await observe(bar);

    expect(ec2).toHaveReceivedCommandExactlyOnceWith(DescribeSubnetsCommand, {
      Filters: [
        { Name: "tag:labgate:worker-subnet", Values: ["bar"] },
        { Name: "vpc-id", Values: ["vpc-0f0000000000f0001"] },
      ],
    });
  });

  it("asks SSM only about the commands recorded as pending, each once", async () => {
    await observe(foo);

    expect(ssm).toHaveReceivedCommandTimes(GetCommandInvocationCommand, 3);
    expect(ssm).toHaveReceivedCommandWith(GetCommandInvocationCommand, {
      CommandId: COMMAND_A1,
      InstanceId: A1,
    });
    expect(ssm).toHaveReceivedCommandWith(GetCommandInvocationCommand, {
      CommandId: COMMAND_A3,
      InstanceId: A3,
    });
    expect(ssm).toHaveReceivedCommandWith(GetCommandInvocationCommand, {
      CommandId: COMMAND_B1,
      InstanceId: B1,
    });
  });

  it("makes no second round when no command is pending", async () => {
    store = new (store.constructor as typeof MemoryStore)();

    const world = await observe(foo);

    expect(world.runners).toHaveLength(4);
    expect(ssm).not.toHaveReceivedAnyCommand();
  });

  it("leaves the outcome open while SSM does not know a command that was just sent", async () => {
    ssm
      .on(GetCommandInvocationCommand, { CommandId: COMMAND_A3, InstanceId: A3 })
      .rejects(new InvocationDoesNotExist({ $metadata: { httpStatusCode: 400 }, message: "" }));

    const world = await observe(foo);

    expect(runner(world, A3)?.commandOutcome).toBeUndefined();
    expect(runner(world, B1)?.commandOutcome).toBe("failed");
  });

  it("never takes labgate's state from the tags: a forged command tag changes nothing", async () => {
    const edited = structuredClone(instances);
    const a3 = edited.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === A3);
    const tag = a3?.Tags?.find((t) => t.Key === "labgate:command");
    if (!tag) throw new Error("fixture has no command tag on A3");
    tag.Value = `setup ${NEW_SETUP_HASH} ${COMMAND_A3} success ${SENT}`; // someone marked it set up
    ec2.on(DescribeInstancesCommand).resolves(edited);

    const world = await observe(foo);

    expect(runner(world, A3)?.command?.status).toBe("pending");
    expect(runner(world, A3)?.appliedSetup).toBeUndefined();
    expect(runner(world, A3)?.mirror.command).toBe(tag.Value);
  });

  it("skips a group member EC2 does not list yet and keeps a listed instance the group no longer has", async () => {
    const world = await observe(foo);

    expect(world.runners.map((r) => r.instanceId)).not.toContain("i-0f0000000000b0003");
    expect(runner(world, A2)).toMatchObject({ state: "terminated", lifecycle: undefined });
  });

  it("reads every page of instances", async () => {
    const [first, ...rest] = instances.Reservations ?? [];
    ec2
      .on(DescribeInstancesCommand)
      .resolvesOnce({ $metadata: {}, Reservations: first ? [first] : [], NextToken: "page-2" })
      .resolvesOnce({ $metadata: {}, Reservations: rest });

    const world = await observe(foo);

    expect(world.runners).toHaveLength(4);
    expect(ec2).toHaveReceivedNthCommandWith(DescribeInstancesCommand, 2, { NextToken: "page-2" });
  });
});
