// Reads the world of one lab: round 1 asks every service at once; round 2, only when a runner has a command
// recorded as pending, asks SSM how those commands ended. Nothing here decides anything.
import { type AutoScalingGroup, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { type MetricAlarm, paginateDescribeAlarms } from "@aws-sdk/client-cloudwatch";
import {
  type RouteTable as Ec2RouteTable,
  type Filter,
  type Instance,
  paginateDescribeInstances,
  paginateDescribeRouteTables,
  paginateDescribeSubnets,
  type Subnet,
} from "@aws-sdk/client-ec2";
import { GetCommandInvocationCommand } from "@aws-sdk/client-ssm";
import type { LabConfig } from "../core/config.ts";
import { ASG_TAG, COMMAND_TAG, CREDENTIAL_TAG, healthAlarmName, LAB_TAG, SETUP_TAG } from "../core/names.ts";
import type { InstanceState, Route, RouteTable, Runner, WorkerSubnet, World } from "../core/world.ts";
import { autoScaling, cloudWatch, ec2, ssm } from "./clients.ts";
import { isAwsError } from "./errors.ts";
import { consoleLog, type Log } from "./log.ts";
import { withRecentTags } from "./recent-tags.ts";
import { parseCommandTag } from "./tags.ts";

export const observe = async (
  lab: LabConfig,
  now: number = Date.now(),
  log: Log = consoleLog,
): Promise<World> => {
  const [group, instances, subnets, tables, alarms] = await Promise.all([
    describeGroup(lab.runners.autoScalingGroupName),
    describeInstances(lab.runners.autoScalingGroupName),
    describeSubnets(lab.workerSubnets),
    describeRouteTables(lab.name),
    describeHealthAlarms(lab.name),
  ]);
  if (!group) log.warn("runner group not found", { autoScalingGroupName: lab.runners.autoScalingGroupName });

  const alarmStates = new Map(alarms.map((a) => [a.instanceId, a.state]));
  const observed = instances.flatMap((i) => runnerOf(i, group, alarmStates, now, log));
  const runners = await Promise.all(observed.map((r) => withCommandOutcome(r, log)));

  return {
    lab: lab.name,
    now,
    runners: runners.sort((a, b) => a.instanceId.localeCompare(b.instanceId)),
    subnets: subnets
      .flatMap((s) => workerSubnetOf(s, tables))
      .sort((a, b) => a.subnetId.localeCompare(b.subnetId)),
    routeTables: Object.fromEntries(
      tables.flatMap((t) => routeTableOf(t, lab.intranetCidrs)).map((t) => [t.routeTableId, t]),
    ),
    healthAlarms: alarms.map(({ name, instanceId }) => ({ name, instanceId })),
  };
};

// ---- round 1 -------------------------------------------------------------------------------------------

const describeGroup = async (name: string): Promise<AutoScalingGroup | undefined> => {
  const out = await autoScaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] }));
  return out.AutoScalingGroups?.find((g) => g.AutoScalingGroupName === name);
};

/** Every instance the group launched, including those it is terminating or has terminated (EC2 lists them
 *  for about an hour), found by the tag Auto Scaling puts on them. */
const describeInstances = async (groupName: string): Promise<Instance[]> => {
  const pages = paginateDescribeInstances(
    { client: ec2, pageSize: 1000 },
    { Filters: [{ Name: `tag:${ASG_TAG}`, Values: [groupName] }] },
  );
  const instances: Instance[] = [];
  for await (const page of pages) {
    for (const reservation of page.Reservations ?? []) instances.push(...(reservation.Instances ?? []));
  }
  return instances;
};

const describeSubnets = async (config: LabConfig["workerSubnets"]): Promise<Subnet[]> => {
  const input: { SubnetIds?: string[]; Filters?: Filter[] } =
    "ids" in config
      ? { SubnetIds: [...config.ids] }
      : { Filters: [{ Name: `tag:${config.tag.key}`, Values: [config.tag.value] }] };
  const subnets: Subnet[] = [];
  for await (const page of paginateDescribeSubnets({ client: ec2 }, input))
    subnets.push(...(page.Subnets ?? []));
  return subnets;
};

/** The lab's route tables: only those tagged for it, the ones labgate may change. */
const describeRouteTables = async (lab: string): Promise<Ec2RouteTable[]> => {
  const pages = paginateDescribeRouteTables(
    { client: ec2 },
    { Filters: [{ Name: `tag:${LAB_TAG}`, Values: [lab] }] },
  );
  const tables: Ec2RouteTable[] = [];
  for await (const page of pages) tables.push(...(page.RouteTables ?? []));
  return tables;
};

interface HealthAlarm {
  readonly name: string;
  readonly instanceId: string;
  readonly state: Runner["healthAlarm"];
}

const describeHealthAlarms = async (lab: string): Promise<HealthAlarm[]> => {
  // The alarm of instance X is named prefix + X (names.ts), so the prefix finds them all and the rest of
  // the name is the instance.
  const prefix = healthAlarmName(lab, "");
  const alarms: MetricAlarm[] = [];
  for await (const page of paginateDescribeAlarms({ client: cloudWatch }, { AlarmNamePrefix: prefix })) {
    alarms.push(...(page.MetricAlarms ?? []));
  }
  return alarms.flatMap((a) => {
    const instanceId = a.AlarmName?.slice(prefix.length);
    if (!a.AlarmName || !instanceId) return [];
    return [{ name: a.AlarmName, instanceId, state: a.StateValue }];
  });
};

// ---- building the world --------------------------------------------------------------------------------

const INSTANCE_STATES: ReadonlySet<string> = new Set<InstanceState>([
  "pending",
  "running",
  "stopping",
  "stopped",
  "shutting-down",
  "terminated",
]);

const isInstanceState = (value: string | undefined): value is InstanceState =>
  value !== undefined && INSTANCE_STATES.has(value);

const runnerOf = (
  instance: Instance,
  group: AutoScalingGroup | undefined,
  alarmStates: ReadonlyMap<string, Runner["healthAlarm"]>,
  now: number,
  log: Log,
): Runner[] => {
  const instanceId = instance.InstanceId;
  const state = instance.State?.Name;
  if (!instanceId || !isInstanceState(state)) return [];
  const member = group?.Instances?.find((i) => i.InstanceId === instanceId);
  const az = instance.Placement?.AvailabilityZone ?? member?.AvailabilityZone;
  if (!az) return [];
  const described = new Map((instance.Tags ?? []).flatMap((t) => (t.Key ? [[t.Key, t.Value] as const] : [])));
  const tags = withRecentTags(instanceId, described, now);
  return [
    {
      instanceId,
      az,
      state,
      lifecycle: member?.LifecycleState,
      privateIp: instance.PrivateIpAddress,
      eniId: instance.NetworkInterfaces?.find((n) => n.Attachment?.DeviceIndex === 0)?.NetworkInterfaceId,
      // EC2 leaves the field out of terminated instances; true is what a fresh instance has.
      sourceDestCheck: instance.SourceDestCheck ?? true,
      credential: tags.get(CREDENTIAL_TAG),
      appliedSetup: tags.get(SETUP_TAG),
      command: commandOf(instanceId, tags.get(COMMAND_TAG), log),
      commandOutcome: undefined,
      healthAlarm: alarmStates.get(instanceId),
    },
  ];
};

const commandOf = (instanceId: string, value: string | undefined, log: Log): Runner["command"] => {
  if (value === undefined) return undefined;
  const record = parseCommandTag(value);
  if (!record) log.warn(`malformed ${COMMAND_TAG} tag ignored`, { instanceId, value });
  return record;
};

const workerSubnetOf = (subnet: Subnet, tables: readonly Ec2RouteTable[]): WorkerSubnet[] => {
  const { SubnetId: subnetId, AvailabilityZone: az, CidrBlock: cidr } = subnet;
  if (!subnetId || !az || !cidr) return [];
  const table = tables.find((t) => t.Associations?.some((a) => a.SubnetId === subnetId));
  return [{ subnetId, az, cidr, routeTableId: table?.RouteTableId }];
};

const routeTableOf = (table: Ec2RouteTable, cidrs: readonly string[]): RouteTable[] => {
  if (!table.RouteTableId) return [];
  const routes: Record<string, Route> = {};
  for (const cidr of cidrs) {
    const route = table.Routes?.find((r) => r.DestinationCidrBlock === cidr);
    if (route) {
      routes[cidr] = {
        instanceId: route.InstanceId,
        eniId: route.NetworkInterfaceId,
        blackhole: route.State === "blackhole",
      };
    }
  }
  return [{ routeTableId: table.RouteTableId, routes }];
};

// ---- round 2 -------------------------------------------------------------------------------------------

const withCommandOutcome = async (runner: Runner, log: Log): Promise<Runner> => {
  const command = runner.command;
  if (command?.status !== "pending") return runner;
  return { ...runner, commandOutcome: await commandOutcome(runner.instanceId, command.commandId, log) };
};

const OUTCOMES: Readonly<Record<string, Runner["commandOutcome"]>> = {
  Success: "success",
  Failed: "failed",
  Cancelled: "failed",
  Cancelling: "failed",
  TimedOut: "failed",
  Pending: undefined,
  InProgress: undefined,
  Delayed: undefined,
};

const commandOutcome = async (
  instanceId: string,
  commandId: string,
  log: Log,
): Promise<Runner["commandOutcome"]> => {
  try {
    const out = await ssm.send(
      new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
    );
    const status = out.Status ?? "Pending";
    if (!Object.hasOwn(OUTCOMES, status))
      log.warn("unknown SSM command status, taken as still running", { instanceId, status });
    return OUTCOMES[status];
  } catch (error) {
    // SSM needs a moment after SendCommand before it knows the invocation: the command was just sent.
    if (isAwsError(error, "InvocationDoesNotExist")) return undefined;
    throw error;
  }
};
