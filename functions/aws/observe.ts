// Reads the world of one lab: round 1 asks every service and labgate's store at once; round 2, only when a
// runner has a command recorded as pending, asks SSM how those commands ended. Nothing here decides anything.
// A read that fails does not fail the observe: the world names it unknown, and the core plans around it
// (README "When a read fails").
import { type AutoScalingGroup, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { type MetricAlarm, paginateDescribeAlarms } from "@aws-sdk/client-cloudwatch";
import {
  DescribeVpcsCommand,
  type Route as Ec2Route,
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
import {
  ASG_TAG,
  COMMAND_TAG,
  CREDENTIAL_TAG,
  healthAlarmName,
  LAB_TAG,
  runnerHealthNamespace,
  SETUP_TAG,
  TUNNEL_HEALTH_METRIC,
  TUNNEL_TAG,
} from "../core/names.ts";
import { routedCidrs } from "../core/routed.ts";
import { parseTunnelReport } from "../core/tunnel-report.ts";
import type {
  InstanceState,
  Read,
  Route,
  RouteTable,
  Runner,
  UnknownRead,
  WorkerSubnet,
  World,
} from "../core/world.ts";
import { type LabStore, type ObservedRunner, withStoredState } from "../reconcile/store.ts";
import { autoScaling, cloudWatch, ec2, ssm } from "./clients.ts";
import { describeError, isAwsError } from "./errors.ts";
import { consoleLog, type Log } from "./log.ts";
import type { SeenReports } from "./seen-reports.ts";

export interface ObserveOptions {
  readonly store: LabStore;
  readonly now?: number;
  readonly log?: Log;
  /** Tunnel reports seen in events, newer than what DescribeInstances may show yet (seen-reports.ts). */
  readonly seenReports?: SeenReports;
}

/** Runs one read; its failure is recorded as an unknown read instead of failing the observe. */
const attempt = async <T>(
  read: Read,
  unknown: UnknownRead[],
  fn: () => Promise<T>,
): Promise<T | undefined> => {
  try {
    return await fn();
  } catch (error) {
    unknown.push({ read, error: describeError(error) });
    return undefined;
  }
};

export const observe = async (lab: LabConfig, options: ObserveOptions): Promise<World> => {
  const { store, now = Date.now(), log = consoleLog, seenReports } = options;
  const unknown: UnknownRead[] = [];
  const [group, instances, subnets, tables, alarms, stored, vpcCidrs] = await Promise.all([
    attempt("group", unknown, () => describeGroup(lab.runners.autoScalingGroupName)),
    attempt("instances", unknown, () => describeInstances(lab.runners.autoScalingGroupName)),
    attempt("subnets", unknown, () => describeSubnets(lab)),
    attempt("route-tables", unknown, () => describeRouteTables(lab)),
    attempt("alarms", unknown, () => describeHealthAlarms(lab.name)),
    attempt("store", unknown, () => store.read(lab.name)),
    attempt("vpc", unknown, () => describeVpcCidrs(lab.vpcId)),
  ]);
  if (group === null)
    log.warn("runner group not found", { autoScalingGroupName: lab.runners.autoScalingGroupName });
  for (const u of unknown)
    log.warn(`could not read ${u.read}; planning around it`, { read: u.read, error: u.error });

  const alarmStates = new Map((alarms ?? []).map((a) => [a.instanceId, a]));
  const observed = (instances ?? [])
    .flatMap((i) => runnerOf(i, group ?? undefined, alarmStates))
    .map((r) => (seenReports ? seenReports.laidOver(r, now) : r));
  const { runners, orphanLeases } = withStoredState(
    observed,
    stored ?? { runners: new Map(), leases: new Map() },
  );
  const withOutcomes = await Promise.all(runners.map((r) => withCommandOutcome(r, log)));

  return {
    lab: lab.name,
    now,
    runners: withOutcomes.sort((a, b) => a.instanceId.localeCompare(b.instanceId)),
    subnets: (subnets ?? [])
      .flatMap((s) => workerSubnetOf(s, tables ?? []))
      .sort((a, b) => a.subnetId.localeCompare(b.subnetId)),
    routeTables: Object.fromEntries(
      (tables ?? []).flatMap((t) => routeTableOf(t, routedCidrs(lab))).map((t) => [t.routeTableId, t]),
    ),
    healthAlarms: (alarms ?? []).map(({ name, instanceId, outdated }) => ({ name, instanceId, outdated })),
    orphanLeases: stored === undefined ? [] : orphanLeases,
    vpcCidrs,
    unknown,
    ...(stored?.requeue && { requeue: stored.requeue }),
  };
};

// ---- round 1 -------------------------------------------------------------------------------------------

/** The group, or null when it does not exist (its instances are then in no lifecycle state). */
const describeGroup = async (name: string): Promise<AutoScalingGroup | null> => {
  const out = await autoScaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] }));
  return out.AutoScalingGroups?.find((g) => g.AutoScalingGroupName === name) ?? null;
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

/**
 * The worker subnets, by filter even when configured by id: SubnetIds fails the whole call when one subnet
 * was deleted (InvalidSubnetID.NotFound), a filter just leaves it out (the core reports it missing). Only in
 * the lab's VPC: whoever may tag a subnet elsewhere adds nothing to the lab.
 */
const describeSubnets = async (lab: LabConfig): Promise<Subnet[]> => {
  const config = lab.workerSubnets;
  const filters: Filter[] = [
    "ids" in config
      ? { Name: "subnet-id", Values: [...config.ids] }
      : { Name: `tag:${config.tag.key}`, Values: [config.tag.value] },
    { Name: "vpc-id", Values: [lab.vpcId] },
  ];
  const subnets: Subnet[] = [];
  for await (const page of paginateDescribeSubnets({ client: ec2 }, { Filters: filters }))
    subnets.push(...(page.Subnets ?? []));
  return subnets;
};

/** The CIDR blocks of the lab's VPC (the core checks the intranet CIDRs against them). */
const describeVpcCidrs = async (vpcId: string): Promise<string[]> => {
  const out = await ec2.send(new DescribeVpcsCommand({ VpcIds: [vpcId] }));
  return (out.Vpcs ?? []).flatMap((v) =>
    (v.CidrBlockAssociationSet ?? [])
      .filter((a) => a.CidrBlockState?.State === "associated")
      .flatMap((a) => (a.CidrBlock ? [a.CidrBlock] : [])),
  );
};

/** The lab's route tables: only those tagged for it, in its VPC: the ones labgate may change. */
const describeRouteTables = async (lab: LabConfig): Promise<Ec2RouteTable[]> => {
  const pages = paginateDescribeRouteTables(
    { client: ec2 },
    {
      Filters: [
        { Name: `tag:${LAB_TAG}`, Values: [lab.name] },
        { Name: "vpc-id", Values: [lab.vpcId] },
      ],
    },
  );
  const tables: Ec2RouteTable[] = [];
  for await (const page of pages) tables.push(...(page.RouteTables ?? []));
  return tables;
};

interface HealthAlarm {
  readonly name: string;
  readonly instanceId: string;
  readonly state: Runner["healthAlarm"];
  /** When it entered that state. */
  readonly since: number | undefined;
  /** It watches another metric than the runners now publish (an older labgate's namespace). */
  readonly outdated: boolean;
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
    const outdated = a.Namespace !== runnerHealthNamespace(lab) || a.MetricName !== TUNNEL_HEALTH_METRIC;
    return [
      {
        name: a.AlarmName,
        instanceId,
        state: a.StateValue,
        since: a.StateUpdatedTimestamp?.getTime(),
        outdated,
      },
    ];
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
  alarmStates: ReadonlyMap<string, Pick<HealthAlarm, "state" | "since">>,
): ObservedRunner[] => {
  const instanceId = instance.InstanceId;
  const state = instance.State?.Name;
  if (!instanceId || !isInstanceState(state)) return [];
  const member = group?.Instances?.find((i) => i.InstanceId === instanceId);
  const az = instance.Placement?.AvailabilityZone ?? member?.AvailabilityZone;
  if (!az) return [];
  const tags = new Map((instance.Tags ?? []).flatMap((t) => (t.Key ? [[t.Key, t.Value] as const] : [])));
  const metadata = instance.MetadataOptions;
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
      imdsLocked:
        metadata === undefined
          ? undefined
          : metadata.HttpTokens === "required" && (metadata.HttpPutResponseHopLimit ?? 2) <= 1,
      mirror: {
        credential: tags.get(CREDENTIAL_TAG),
        appliedSetup: tags.get(SETUP_TAG),
        command: tags.get(COMMAND_TAG),
      },
      healthAlarm: alarmStates.get(instanceId)?.state,
      healthSince: alarmStates.get(instanceId)?.since,
      tunnelReport: parseTunnelReport(tags.get(TUNNEL_TAG)),
    },
  ];
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
  const others: Record<string, Route> = {};
  for (const route of table.Routes ?? []) {
    const cidr = route.DestinationCidrBlock;
    if (cidr === undefined || cidrs.includes(cidr)) continue;
    if (route.InstanceId === undefined && route.NetworkInterfaceId === undefined) continue;
    others[cidr] = {
      instanceId: route.InstanceId,
      eniId: route.NetworkInterfaceId,
      blackhole: route.State === "blackhole",
    };
  }
  for (const cidr of cidrs) {
    const route = table.Routes?.find((r) => r.DestinationCidrBlock === cidr);
    if (route) {
      routes[cidr] = {
        instanceId: route.InstanceId,
        eniId: route.NetworkInterfaceId,
        blackhole: route.State === "blackhole",
        other: otherTarget(route),
      };
    }
  }
  return [{ routeTableId: table.RouteTableId, routes, others }];
};

/** A route's target that is not an instance or an interface, by kind and id. */
const otherTarget = (route: Ec2Route): string | undefined => {
  const targets: [string, string | undefined][] = [
    ["NAT gateway", route.NatGatewayId],
    ["transit gateway", route.TransitGatewayId],
    ["VPC peering connection", route.VpcPeeringConnectionId],
    ["gateway", route.GatewayId],
    ["local gateway", route.LocalGatewayId],
    ["carrier gateway", route.CarrierGatewayId],
    ["egress-only internet gateway", route.EgressOnlyInternetGatewayId],
    ["core network", route.CoreNetworkArn],
  ];
  const found = targets.find(([, id]) => id !== undefined);
  return found === undefined ? undefined : `${found[0]} ${found[1]}`;
};

// ---- round 2 -------------------------------------------------------------------------------------------

const withCommandOutcome = async (runner: Runner, log: Log): Promise<Runner> => {
  const command = runner.command;
  if (command?.status !== "pending" || command.commandId === undefined) return runner;
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
    // Throttled, or any other failure: the command is taken as still running (nothing is sent to the runner
    // meanwhile); the next reconcile asks again. One runner's command never stops the lab's failover.
    log.warn("could not ask SSM how a command ended; taken as still running", {
      instanceId,
      commandId,
      error: describeError(error),
    });
    return undefined;
  }
};
