// observe (functions/aws/observe.ts) against a real AWS API: moto, started and stopped by this suite, holding
// two labs built through EC2, Auto Scaling, CloudWatch, SSM and DynamoDB. What moto cannot show is covered by
// the mock-based test/aws/observe.test.ts: lifecycle states of hooks (Pending:Wait, Terminating:Wait; moto's
// groups know InService and Standby only), a blackhole route (moto reports every route active), command
// statuses other than Success (moto ends every command at once with Success), pagination.
import {
  DescribeAutoScalingGroupsCommand,
  EnterStandbyCommand,
  SetDesiredCapacityCommand,
} from "@aws-sdk/client-auto-scaling";
import { PutMetricAlarmCommand, SetAlarmStateCommand } from "@aws-sdk/client-cloudwatch";
import {
  AllocateAddressCommand,
  AttachInternetGatewayCommand,
  CreateInternetGatewayCommand,
  CreateNatGatewayCommand,
  CreateRouteCommand,
  CreateTagsCommand,
  DescribeInstancesCommand,
  DescribeSubnetsCommand,
  ModifyInstanceAttributeCommand,
  ModifyInstanceMetadataOptionsCommand,
  RunInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { SendCommandCommand } from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { observe as Observe } from "../../functions/aws/observe.ts";
import { DynamoStore } from "../../functions/aws/store.ts";
import { LabConfigSchema } from "../../functions/core/config.ts";
import {
  alarmPrefix,
  COMMAND_TAG,
  CREDENTIAL_TAG,
  healthAlarmName,
  SETUP_TAG,
} from "../../functions/core/names.ts";
import type { Runner, World } from "../../functions/core/world.ts";
import { type Moto, motoUnavailableReason, startMoto, useMoto } from "../support/moto.ts";
import {
  AZ_A,
  AZ_B,
  buildLab,
  CIDR_1,
  CIDR_2,
  type MotoClients,
  type MotoLab,
  motoClients,
} from "../support/moto-lab.ts";

const skip = await motoUnavailableReason();
if (skip && process.env.CI === "true") throw new Error(`the moto observe suite cannot run in CI: ${skip}`);
if (skip) console.warn(`SKIPPED moto observe suite: ${skip}`);

const NOW = Date.parse("2026-11-26T09:05:30Z");
const SENT = NOW - 60_000;
const GONE = "i-0000000000000dead"; // held a lease, long terminated: EC2 no longer lists it

let moto: Moto | undefined;
let restoreEnv: (() => void) | undefined;
let clients: MotoClients;
let observe: typeof Observe;
let foo: MotoLab;
let bar: MotoLab;
/** Launched by the group into AZ a and terminated by hand: EC2 still lists it, the group has replaced it. */
let a3: string;
let a4: string;
let commandA1: string;
let natGateway: string;
let worldWarnings: Array<[string, Record<string, unknown>]>;
let world: World;
/** What observe logged, kept here: vitest clears mocks' calls before each test. */
const warnings: Array<[string, Record<string, unknown>]> = [];
const log = {
  info: () => {},
  warn: (message: string, extra: Record<string, unknown>) => warnings.push([message, extra]),
};

/** Sends a command to moto as labgate would (moto records it, and reports it ended with Success at once). */
const sendCommand = async (instanceId: string): Promise<string> => {
  const out = await clients.ssm.send(
    new SendCommandCommand({
      DocumentName: "AWS-RunShellScript",
      InstanceIds: [instanceId],
      Parameters: { commands: ["true"] },
    }),
  );
  if (!out.Command?.CommandId) throw new Error("moto returned no command id");
  return out.Command.CommandId;
};

const putAlarm = (name: string) =>
  clients.cloudWatch.send(
    new PutMetricAlarmCommand({
      AlarmName: name,
      Namespace: "labgate/foo",
      MetricName: "TunnelHealthy",
      Statistic: "Minimum",
      Period: 10,
      EvaluationPeriods: 3,
      Threshold: 1,
      ComparisonOperator: "LessThanThreshold",
    }),
  );

/**
 * Lab foo as labgate would find it after a while: a1 carries AZ a and had a setup succeed and another sent
 * since; a2 stopped; b1 in Standby with its tunnel alarm firing and a command SSM does not know; a3
 * terminated and replaced by a4; a lease held by an instance long gone. Lab bar beside it, one lease taken.
 */
const shapeFoo = async (): Promise<void> => {
  const { ec2, autoScaling, cloudWatch } = clients;
  const { a1, a2, b1 } = foo.runners;
  const [key1, key2, key3] = foo.credentials;
  if (!key1 || !key2 || !key3) throw new Error("lab foo has three credentials");
  const group = foo.lab.runners.autoScalingGroupName;

  await ec2.send(
    new ModifyInstanceAttributeCommand({ InstanceId: a1.instanceId, SourceDestCheck: { Value: false } }),
  );
  await ec2.send(
    new ModifyInstanceMetadataOptionsCommand({
      InstanceId: a1.instanceId,
      HttpTokens: "required",
      HttpPutResponseHopLimit: 1,
    }),
  );
  // The mirror says something else than the store: observe must report both, and take state from the store.
  await ec2.send(
    new CreateTagsCommand({
      Resources: [a1.instanceId],
      Tags: [
        { Key: CREDENTIAL_TAG, Value: key3 },
        { Key: SETUP_TAG, Value: "mirrored-setup" },
        { Key: COMMAND_TAG, Value: "mirrored-command" },
      ],
    }),
  );
  await ec2.send(new StopInstancesCommand({ InstanceIds: [a2.instanceId] }));
  await autoScaling.send(
    new EnterStandbyCommand({
      AutoScalingGroupName: group,
      InstanceIds: [b1.instanceId],
      ShouldDecrementDesiredCapacity: true,
    }),
  );
  await autoScaling.send(new SetDesiredCapacityCommand({ AutoScalingGroupName: group, DesiredCapacity: 3 }));
  a3 = await newestInstanceOf(group, [a1.instanceId, a2.instanceId, b1.instanceId]);
  await ec2.send(new TerminateInstancesCommand({ InstanceIds: [a3] }));
  a4 = await newestInstanceOf(group, [a1.instanceId, a2.instanceId, b1.instanceId, a3]);

  // Routes: table a also routes a CIDR that is not the lab's (ignored); table b routes CIDR_2 to a NAT gateway.
  const vpc = foo.vpcId;
  const igw = (await ec2.send(new CreateInternetGatewayCommand({}))).InternetGateway?.InternetGatewayId;
  await ec2.send(new AttachInternetGatewayCommand({ InternetGatewayId: igw, VpcId: vpc }));
  await ec2.send(
    new CreateRouteCommand({
      RouteTableId: foo.tables.a,
      DestinationCidrBlock: "10.250.0.0/16",
      GatewayId: igw,
    }),
  );
  const allocation = (await ec2.send(new AllocateAddressCommand({ Domain: "vpc" }))).AllocationId;
  const nat = (
    await ec2.send(new CreateNatGatewayCommand({ SubnetId: foo.workerSubnets.b, AllocationId: allocation }))
  ).NatGateway?.NatGatewayId;
  await ec2.send(
    new CreateRouteCommand({ RouteTableId: foo.tables.b, DestinationCidrBlock: CIDR_2, NatGatewayId: nat }),
  );
  if (!nat) throw new Error("moto returned no NAT gateway");
  natGateway = nat;

  // Alarms: foo's two runners (moto creates an alarm in OK), another alarm of foo's, bar's runner's alarm.
  await putAlarm(healthAlarmName("foo", a1.instanceId));
  await putAlarm(healthAlarmName("foo", b1.instanceId));
  await cloudWatch.send(
    new SetAlarmStateCommand({
      AlarmName: healthAlarmName("foo", b1.instanceId),
      StateValue: "ALARM",
      StateReason: "tunnel down",
    }),
  );
  await putAlarm(`${alarmPrefix("foo")}unreachable`);
  await putAlarm(healthAlarmName("bar", bar.runners.a1.instanceId));

  // The store: a1's first setup succeeded, its second is pending; b1's command is one SSM does not know.
  const { store } = foo;
  await store.lease("foo", key1, a1.instanceId, SENT);
  const first = await sendCommand(a1.instanceId);
  await store.beginCommand(
    "foo",
    a1.instanceId,
    { kind: "setup", hash: "setup-1", sentAt: SENT },
    undefined,
    key1,
  );
  const pending = {
    kind: "setup",
    hash: "setup-1",
    commandId: first,
    status: "pending",
    sentAt: SENT,
  } as const;
  await store.commandSent("foo", a1.instanceId, pending);
  await store.recordCommand("foo", a1.instanceId, { ...pending, status: "success" }, "setup-1");
  commandA1 = await sendCommand(a1.instanceId);
  const second = { kind: "setup", hash: "setup-2", sentAt: SENT + 1 } as const;
  await store.beginCommand("foo", a1.instanceId, second, first, key1);
  await store.commandSent("foo", a1.instanceId, { ...second, commandId: commandA1, status: "pending" });

  await store.lease("foo", key2, b1.instanceId, SENT);
  const unknown = { kind: "setup", hash: "setup-1", sentAt: SENT } as const;
  await store.beginCommand("foo", b1.instanceId, unknown, undefined, key2);
  await store.commandSent("foo", b1.instanceId, {
    ...unknown,
    commandId: "00000000-0000-4000-8000-000000000000",
    status: "pending",
  });
  await store.recordHealth("foo", b1.instanceId, "ALARM");
  await store.lease("foo", key3, GONE, SENT - 86_400_000);

  const barKey = bar.credentials[0];
  if (!barKey) throw new Error("lab bar has credentials");
  await bar.store.lease("bar", barKey, bar.runners.a1.instanceId, SENT);
};

/** The instance of the group that is not among `known` (moto names new instances at random). */
const newestInstanceOf = async (group: string, known: readonly string[]): Promise<string> => {
  const out = await clients.autoScaling.send(
    new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [group] }),
  );
  const fresh = (out.AutoScalingGroups?.[0]?.Instances ?? []).flatMap((i) =>
    i.InstanceId && !known.includes(i.InstanceId) ? [i.InstanceId] : [],
  );
  if (fresh.length !== 1 || !fresh[0]) throw new Error(`expected one new instance in ${group}, got ${fresh}`);
  return fresh[0];
};

beforeAll(async () => {
  if (skip) return;
  moto = await startMoto();
  restoreEnv = useMoto(moto);
  clients = motoClients(moto);
  // The adapters' clients read the endpoint from the environment when their module loads: load it now.
  ({ observe } = await import("../../functions/aws/observe.ts"));
  foo = await buildLab(clients, "foo");
  bar = await buildLab(clients, "bar");
  await shapeFoo();
  world = await observe(foo.lab, { store: foo.store, now: NOW, log });
  worldWarnings = [...warnings];
}, 60_000);

afterAll(async () => {
  clients?.destroy();
  await moto?.stop();
  restoreEnv?.();
});

const runner = (w: World, instanceId: string): Runner => {
  const found = w.runners.find((r) => r.instanceId === instanceId);
  if (!found) throw new Error(`${instanceId} is not in the world of ${w.lab}`);
  return found;
};

const describeIf = skip ? describe.skip : describe;

describeIf("observe reads a lab built in moto", () => {
  it("reads every runner of the group with its AZ, state, lifecycle, address, primary interface and check", () => {
    const { a1, a2, b1 } = foo.runners;
    expect(world.runners.map((r) => r.instanceId)).toEqual(
      [a1.instanceId, a2.instanceId, b1.instanceId, a3, a4].sort(),
    );
    const seen = (id: string) => {
      const { az, state, lifecycle, privateIp, eniId, sourceDestCheck, imdsLocked } = runner(world, id);
      return { az, state, lifecycle, privateIp, eniId, sourceDestCheck, imdsLocked };
    };
    expect(seen(a1.instanceId)).toEqual({
      az: AZ_A,
      state: "running",
      lifecycle: "InService",
      privateIp: a1.privateIp,
      eniId: a1.eniId,
      sourceDestCheck: false,
      imdsLocked: true,
    });
    expect(seen(a2.instanceId)).toMatchObject({
      az: AZ_A,
      state: "stopped",
      eniId: a2.eniId,
      sourceDestCheck: true,
    });
    expect(seen(b1.instanceId)).toEqual({
      az: AZ_B,
      state: "running",
      lifecycle: "Standby",
      privateIp: b1.privateIp,
      eniId: b1.eniId,
      sourceDestCheck: true,
      imdsLocked: false,
    });
    // Terminated by hand: EC2 still lists it (with the group's tag), the group no longer has it.
    expect(seen(a3)).toMatchObject({ az: AZ_A, state: "terminated", lifecycle: undefined });
    expect(seen(a4)).toMatchObject({ az: AZ_A, state: "running", lifecycle: "InService" });
  });

  it("takes leases, commands, applied setups and recorded health from the store, and shows the tags only as a mirror", () => {
    const [key1, key2, key3] = foo.credentials;
    expect(runner(world, foo.runners.a1.instanceId)).toMatchObject({
      recorded: true,
      credential: key1,
      appliedSetup: "setup-1",
      command: { kind: "setup", hash: "setup-2", commandId: commandA1, status: "pending", sentAt: SENT + 1 },
      mirror: { credential: key3, appliedSetup: "mirrored-setup", command: "mirrored-command" },
    });
    expect(runner(world, foo.runners.b1.instanceId)).toMatchObject({
      recorded: true,
      credential: key2,
      recordedHealth: "ALARM",
      mirror: { credential: undefined, appliedSetup: undefined, command: undefined },
    });
    expect(runner(world, a4)).toMatchObject({ recorded: false, credential: undefined, command: undefined });
    // Lab bar's lease, in the same table, is not foo's concern: only foo's lease of a gone instance is orphan.
    expect(world.orphanLeases).toEqual([{ credential: key3, holder: GONE, since: SENT - 86_400_000 }]);
  });

  it("asks SSM how a pending command ended (moto: Success at once)", () => {
    expect(runner(world, foo.runners.a1.instanceId).commandOutcome).toBe("success");
  });

  it("takes a command SSM does not know (InvalidCommandId) as still running, says so, and reads the rest", () => {
    expect(runner(world, foo.runners.b1.instanceId).commandOutcome).toBeUndefined();
    expect(worldWarnings).toEqual([
      [
        "could not ask SSM how a command ended; taken as still running",
        {
          instanceId: foo.runners.b1.instanceId,
          commandId: "00000000-0000-4000-8000-000000000000",
          error: expect.stringMatching(/^InvalidCommandId/),
        },
      ],
    ]);
    expect(world.unknown).toEqual([]);
  });

  it("reads the health alarms of the lab's runners by prefix, with their state, and no other alarm", () => {
    const { a1, b1 } = foo.runners;
    expect(world.healthAlarms).toEqual([
      { name: healthAlarmName("foo", a1.instanceId), instanceId: a1.instanceId, outdated: false },
      { name: healthAlarmName("foo", b1.instanceId), instanceId: b1.instanceId, outdated: false },
    ]);
    expect(runner(world, a1.instanceId).healthAlarm).toBe("OK");
    expect(runner(world, b1.instanceId).healthAlarm).toBe("ALARM");
    expect(runner(world, a4).healthAlarm).toBeUndefined();
  });

  it("reads the configured worker subnets with their AZ, CIDR and route table; the deleted one is simply absent", () => {
    const expected = [
      { subnetId: foo.workerSubnets.a, az: AZ_A, cidr: "10.0.101.0/24", routeTableId: foo.tables.a },
      { subnetId: foo.workerSubnets.b, az: AZ_B, cidr: "10.0.102.0/24", routeTableId: foo.tables.b },
    ].sort((x, y) => x.subnetId.localeCompare(y.subnetId));
    expect(world.subnets).toEqual(expected);
  });

  it("finds the same worker subnets by tag, and none of another lab's", async () => {
    const byTag = await observe(foo.labByTag, { store: foo.store, now: NOW, log });
    expect(byTag.subnets).toEqual(world.subnets);
    expect(byTag.unknown).toEqual([]);
  });

  it("reads the lab's route tables and their routes for the lab's CIDRs, naming a target that is no runner", () => {
    const { a1, b1 } = foo.runners;
    // moto leaves InstanceId out of a route to an interface (AWS fills it in for an instance's interface).
    expect(world.routeTables).toEqual({
      [foo.tables.a]: {
        routeTableId: foo.tables.a,
        routes: { [CIDR_1]: { instanceId: undefined, eniId: a1.eniId, blackhole: false, other: undefined } },
        others: {},
      },
      [foo.tables.b]: {
        routeTableId: foo.tables.b,
        others: {},
        routes: {
          [CIDR_1]: { instanceId: undefined, eniId: b1.eniId, blackhole: false, other: undefined },
          [CIDR_2]: {
            instanceId: undefined,
            eniId: undefined,
            blackhole: false,
            other: `NAT gateway ${natGateway}`,
          },
        },
      },
    });
  });

  it("sees lab bar's own runners, tables and lease, and nothing of lab foo's", async () => {
    const barWorld = await observe(bar.lab, { store: bar.store, now: NOW, log });
    expect(barWorld.runners.map((r) => r.instanceId)).toEqual(
      [bar.runners.a1.instanceId, bar.runners.a2.instanceId, bar.runners.b1.instanceId].sort(),
    );
    expect(Object.keys(barWorld.routeTables).sort()).toEqual([bar.tables.a, bar.tables.b].sort());
    expect(barWorld.healthAlarms.map((a) => a.instanceId)).toEqual([bar.runners.a1.instanceId]);
    expect(runner(barWorld, bar.runners.a1.instanceId).credential).toBe(bar.credentials[0]);
    expect(barWorld.orphanLeases).toEqual([]);
  });
});

describeIf("observe under faults moto produces", () => {
  it("leaves out a configured worker subnet that never existed instead of failing", async () => {
    const missing = "subnet-0123456789abcdef0";
    // Asked by id, EC2 fails the whole call for one missing subnet: why observe asks with a filter.
    await expect(
      clients.ec2.send(new DescribeSubnetsCommand({ SubnetIds: [foo.workerSubnets.a, missing] })),
    ).rejects.toThrow(/InvalidSubnetID.NotFound|does not exist/);
    const lab = LabConfigSchema.parse({ ...foo.lab, workerSubnets: { ids: [missing, foo.workerSubnets.a] } });
    const w = await observe(lab, { store: foo.store, now: NOW, log });
    expect(w.subnets.map((s) => s.subnetId)).toEqual([foo.workerSubnets.a]);
    expect(w.unknown).toEqual([]);
  });

  it("names the store unknown when its table is missing, and still reads everything else", async () => {
    const w = await observe(foo.lab, {
      store: new DynamoStore(clients.dynamodb, "labgate-no-such-table"),
      now: NOW,
      log,
    });
    expect(w.unknown).toEqual([
      { read: "store", error: expect.stringMatching(/^ResourceNotFoundException/) },
    ]);
    expect(w.runners.map((r) => r.instanceId)).toEqual(world.runners.map((r) => r.instanceId));
    expect(runner(w, foo.runners.a1.instanceId)).toMatchObject({ recorded: false, credential: undefined });
    expect(w.routeTables).toEqual(world.routeTables);
    expect(w.subnets).toEqual(world.subnets);
    expect(w.orphanLeases).toEqual([]);
  });

  it("takes no instance for a runner without the group's tag, even in the runners' subnet", async () => {
    const { a1 } = foo.runners;
    const subnet = (await clients.ec2.send(new DescribeInstancesCommand({ InstanceIds: [a1.instanceId] })))
      .Reservations?.[0]?.Instances?.[0]?.SubnetId;
    const out = await clients.ec2.send(
      new RunInstancesCommand({
        ImageId: "ami-0123456789abcdef0",
        MinCount: 1,
        MaxCount: 1,
        SubnetId: subnet,
      }),
    );
    const stranger = out.Instances?.[0]?.InstanceId;
    expect(stranger).toMatch(/^i-/);
    const w = await observe(foo.lab, { store: foo.store, now: NOW, log });
    expect(w.runners.map((r) => r.instanceId)).toEqual(world.runners.map((r) => r.instanceId));
  });
});
