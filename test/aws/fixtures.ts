// Describe outputs of lab foo (infra/labs.ts) as AWS returns them, trimmed to the fields that matter, at
// the moment runner i-...a0001 is being terminated (events/lifecycle-terminate.json), i-...a0003 is
// launching (events/lifecycle-launch.json) and i-...b0001's tunnel alarm fired (events/alarm-state-change.json).
import type { DescribeAutoScalingGroupsCommandOutput } from "@aws-sdk/client-auto-scaling";
import type { DescribeAlarmsCommandOutput } from "@aws-sdk/client-cloudwatch";
import type {
  DescribeInstancesCommandOutput,
  DescribeRouteTablesCommandOutput,
  DescribeSubnetsCommandOutput,
  DescribeVpcsCommandOutput,
  Instance,
} from "@aws-sdk/client-ec2";
import { type LabConfig, LabConfigSchema } from "../../functions/core/config.ts";
import type { CommandRecord } from "../../functions/core/world.ts";
import { MemoryStore } from "../../functions/local/memory-store.ts";
import { labs } from "../../infra/labs.ts";

const labNamed = (name: string): LabConfig => {
  const input = labs.find((l) => l.name === name);
  if (!input) throw new Error(`no lab ${name} in infra/labs.ts`);
  return LabConfigSchema.parse(input);
};

export const foo = labNamed("foo");
export const bar = labNamed("bar");

export const NOW = Date.parse("2026-11-26T09:05:30Z");
export const CIDR = "10.200.0.0/16";

export const A1 = "i-0f0000000000a0001"; // InService, being terminated, stop-vpn pending (InProgress)
export const A2 = "i-0f0000000000a0002"; // terminated, gone from the group; a route still points at it
export const A3 = "i-0f0000000000a0003"; // launching (Pending:Wait), setup pending (Success)
export const B1 = "i-0f0000000000b0001"; // InService, tunnel alarm in ALARM, setup pending (Failed)
export const B3 = "i-0f0000000000b0003"; // in the group, not yet listed by EC2

export const SUBNET_A = "subnet-0f0000000000a0001";
export const SUBNET_B = "subnet-0f0000000000b0001";
export const SUBNET_C = "subnet-0f0000000000c0001";
export const TABLE_A = "rtb-0f0000000000a0001";
export const TABLE_B = "rtb-0f0000000000b0001";
export const TABLE_C = "rtb-0f0000000000c0001";

export const SETUP_HASH = "3f2a9c1d0b7e4a56";
export const NEW_SETUP_HASH = "9b1e0d4c7a2f3e58";
export const STOP_HASH = "5c0d1e2f3a4b6c7d";
export const COMMAND_A1 = "0a1b2c3d-0000-4000-8000-00000000a001";
export const COMMAND_A3 = "e8d3c0e4-0c3b-4d8e-9a5f-1c2d3e4f5a06";
export const COMMAND_B1 = "0a1b2c3d-0000-4000-8000-00000000b001";
const SENT = Date.parse("2026-11-26T09:00:30Z");

export const eni = (instanceId: string): string => instanceId.replace(/^i-/, "eni-");

export const group: DescribeAutoScalingGroupsCommandOutput = {
  $metadata: {},
  AutoScalingGroups: [
    {
      AutoScalingGroupName: "foo-runners",
      MinSize: 2,
      MaxSize: 6,
      DesiredCapacity: 3,
      DefaultCooldown: 300,
      AvailabilityZones: ["eu-central-1a", "eu-central-1b", "eu-central-1c"],
      HealthCheckType: "EC2",
      CreatedTime: new Date("2026-11-01T00:00:00Z"),
      Instances: [
        {
          InstanceId: A1,
          AvailabilityZone: "eu-central-1a",
          LifecycleState: "Terminating:Wait",
          HealthStatus: "Healthy",
          ProtectedFromScaleIn: false,
        },
        {
          InstanceId: A3,
          AvailabilityZone: "eu-central-1a",
          LifecycleState: "Pending:Wait",
          HealthStatus: "Healthy",
          ProtectedFromScaleIn: false,
        },
        {
          InstanceId: B1,
          AvailabilityZone: "eu-central-1b",
          LifecycleState: "InService",
          HealthStatus: "Healthy",
          ProtectedFromScaleIn: false,
        },
        {
          InstanceId: B3,
          AvailabilityZone: "eu-central-1b",
          LifecycleState: "Pending",
          HealthStatus: "Healthy",
          ProtectedFromScaleIn: false,
        },
      ],
    },
  ],
};

const runningInstance = (instanceId: string, az: string, ip: string, extra: Partial<Instance>): Instance => ({
  InstanceId: instanceId,
  InstanceType: "t3.small",
  Placement: { AvailabilityZone: az, Tenancy: "default" },
  PrivateIpAddress: ip,
  State: { Code: 16, Name: "running" },
  SourceDestCheck: false,
  NetworkInterfaces: [
    // A second interface, to show that routes target the primary one (device index 0).
    {
      NetworkInterfaceId: eni(instanceId).replace(/1$/, "9"),
      Attachment: { DeviceIndex: 1, Status: "attached" },
      PrivateIpAddress: "10.0.99.9",
    },
    {
      NetworkInterfaceId: eni(instanceId),
      Attachment: { DeviceIndex: 0, Status: "attached" },
      PrivateIpAddress: ip,
    },
  ],
  ...extra,
});

const tags = (extra: Record<string, string>) => [
  { Key: "aws:autoscaling:groupName", Value: "foo-runners" },
  { Key: "Name", Value: "foo-runner" },
  ...Object.entries(extra).map(([Key, Value]) => ({ Key, Value })),
];

export const instances: DescribeInstancesCommandOutput = {
  $metadata: {},
  Reservations: [
    {
      ReservationId: "r-0f0000000000a0001",
      Instances: [
        runningInstance(A1, "eu-central-1a", "10.0.1.11", {
          Tags: tags({
            "labgate:credential": "/labgate/foo/vpn/client-1",
            "labgate:setup": SETUP_HASH,
            "labgate:command": `stop-vpn ${STOP_HASH} ${COMMAND_A1} pending ${SENT}`,
          }),
        }),
      ],
    },
    {
      ReservationId: "r-0f0000000000a0002",
      Instances: [
        {
          InstanceId: A2,
          InstanceType: "t3.small",
          Placement: { AvailabilityZone: "eu-central-1a", Tenancy: "default" },
          State: { Code: 48, Name: "terminated" },
          StateTransitionReason: "User initiated (2026-11-26 08:40:12 GMT)",
          NetworkInterfaces: [],
          Tags: tags({
            "labgate:setup": SETUP_HASH,
            "labgate:command": `setup ${SETUP_HASH} 0a1b2c3d-0000-4000-8000-00000000a002 success ${SENT - 86_400_000}`,
          }),
        },
      ],
    },
    {
      ReservationId: "r-0f0000000000a0003",
      Instances: [
        runningInstance(A3, "eu-central-1a", "10.0.1.13", {
          SourceDestCheck: true,
          Tags: tags({
            "labgate:credential": "/labgate/foo/vpn/client-3",
            "labgate:command": `setup ${NEW_SETUP_HASH} ${COMMAND_A3} pending ${SENT}`,
          }),
        }),
      ],
    },
    {
      ReservationId: "r-0f0000000000b0001",
      Instances: [
        runningInstance(B1, "eu-central-1b", "10.0.2.11", {
          Tags: tags({
            "labgate:credential": "/labgate/foo/vpn/client-2",
            "labgate:setup": SETUP_HASH,
            "labgate:command": `setup ${NEW_SETUP_HASH} ${COMMAND_B1} pending ${SENT}`,
          }),
        }),
      ],
    },
  ],
};

export const subnets: DescribeSubnetsCommandOutput = {
  $metadata: {},
  Subnets: [
    {
      SubnetId: SUBNET_A,
      AvailabilityZone: "eu-central-1a",
      CidrBlock: "10.0.16.0/20",
      VpcId: "vpc-0f0000000000f0001",
      State: "available",
    },
    {
      SubnetId: SUBNET_B,
      AvailabilityZone: "eu-central-1b",
      CidrBlock: "10.0.32.0/20",
      VpcId: "vpc-0f0000000000f0001",
      State: "available",
    },
    {
      SubnetId: SUBNET_C,
      AvailabilityZone: "eu-central-1c",
      CidrBlock: "10.0.48.0/20",
      VpcId: "vpc-0f0000000000f0001",
      State: "available",
    },
  ],
};

const localRoute = {
  DestinationCidrBlock: "10.0.0.0/16",
  GatewayId: "local",
  Origin: "CreateRouteTable",
  State: "active",
} as const;
const natRoute = {
  DestinationCidrBlock: "0.0.0.0/0",
  NatGatewayId: "nat-0f0000000000f0001",
  Origin: "CreateRoute",
  State: "active",
} as const;
const labTag = [{ Key: "labgate:lab", Value: "foo" }];
const association = (table: string, subnet: string) => ({
  RouteTableAssociationId: table.replace(/^rtb-/, "rtbassoc-"),
  RouteTableId: table,
  SubnetId: subnet,
  Main: false,
  AssociationState: { State: "associated" as const },
});

export const routeTables: DescribeRouteTablesCommandOutput = {
  $metadata: {},
  RouteTables: [
    {
      RouteTableId: TABLE_A,
      VpcId: "vpc-0f0000000000f0001",
      Associations: [association(TABLE_A, SUBNET_A)],
      Routes: [
        localRoute,
        natRoute,
        // The runner it went through was terminated without labgate moving the route: a blackhole.
        {
          DestinationCidrBlock: CIDR,
          InstanceId: A2,
          InstanceOwnerId: "123456789012",
          NetworkInterfaceId: eni(A2),
          Origin: "CreateRoute",
          State: "blackhole",
        },
      ],
      Tags: labTag,
    },
    {
      RouteTableId: TABLE_B,
      VpcId: "vpc-0f0000000000f0001",
      Associations: [association(TABLE_B, SUBNET_B)],
      Routes: [
        localRoute,
        natRoute,
        // Made for a CIDR since removed from the lab's configuration: observe reports it apart.
        {
          DestinationCidrBlock: "10.99.0.0/16",
          InstanceId: B1,
          InstanceOwnerId: "123456789012",
          NetworkInterfaceId: eni(B1),
          Origin: "CreateRoute",
          State: "active",
        },
        {
          DestinationCidrBlock: CIDR,
          InstanceId: B1,
          InstanceOwnerId: "123456789012",
          NetworkInterfaceId: eni(B1),
          Origin: "CreateRoute",
          State: "active",
        },
      ],
      Tags: labTag,
    },
    {
      // Not routed to the lab yet.
      RouteTableId: TABLE_C,
      VpcId: "vpc-0f0000000000f0001",
      Associations: [association(TABLE_C, SUBNET_C)],
      Routes: [localRoute, natRoute],
      Tags: labTag,
    },
  ],
};

const alarm = (instanceId: string, state: "OK" | "ALARM" | "INSUFFICIENT_DATA") => ({
  AlarmName: `labgate-foo-tunnel-${instanceId}`,
  AlarmArn: `arn:aws:cloudwatch:eu-central-1:123456789012:alarm:labgate-foo-tunnel-${instanceId}`,
  Namespace: "labgate/foo",
  MetricName: "TunnelHealthy",
  Dimensions: [
    { Name: "Lab", Value: "foo" },
    { Name: "InstanceId", Value: instanceId },
  ],
  Statistic: "Minimum" as const,
  Period: 10,
  EvaluationPeriods: 3,
  DatapointsToAlarm: 3,
  Threshold: 1,
  ComparisonOperator: "LessThanThreshold" as const,
  TreatMissingData: "breaching",
  StateValue: state,
  StateUpdatedTimestamp: new Date(ALARM_SINCE),
});

/** When each alarm entered its state. */
export const ALARM_SINCE = NOW - 600_000;

export const alarms: DescribeAlarmsCommandOutput = {
  $metadata: {},
  MetricAlarms: [
    alarm(A1, "OK"),
    // The runner is gone; its alarm is left for the core to delete.
    alarm(A2, "INSUFFICIENT_DATA"),
    alarm(B1, "ALARM"),
  ],
  CompositeAlarms: [],
};

/** labgate's store for the instances above: the same state their tags mirror. */
export const seededStore = async (): Promise<MemoryStore> => {
  const store = new MemoryStore();
  const runner = async (
    id: string,
    credential: string | undefined,
    command: CommandRecord,
    appliedSetup: string | undefined,
  ) => {
    await store.adopt("foo", id, { credential, appliedSetup, command }, SENT);
  };
  await runner(
    A1,
    "/labgate/foo/vpn/client-1",
    { kind: "stop-vpn", hash: STOP_HASH, commandId: COMMAND_A1, status: "pending", sentAt: SENT },
    SETUP_HASH,
  );
  await runner(
    A2,
    undefined,
    {
      kind: "setup",
      hash: SETUP_HASH,
      commandId: "0a1b2c3d-0000-4000-8000-00000000a002",
      status: "success",
      sentAt: SENT - 86_400_000,
    },
    SETUP_HASH,
  );
  await runner(
    A3,
    "/labgate/foo/vpn/client-3",
    { kind: "setup", hash: NEW_SETUP_HASH, commandId: COMMAND_A3, status: "pending", sentAt: SENT },
    undefined,
  );
  await runner(
    B1,
    "/labgate/foo/vpn/client-2",
    { kind: "setup", hash: NEW_SETUP_HASH, commandId: COMMAND_B1, status: "pending", sentAt: SENT },
    SETUP_HASH,
  );
  await store.recordHealth("foo", B1, "ALARM");
  return store;
};

/** The lab's VPC: its CIDR blocks, the one the intranet must not overlap. */
export const vpcs: DescribeVpcsCommandOutput = {
  $metadata: {},
  Vpcs: [
    {
      VpcId: "vpc-0f0000000000f0001",
      CidrBlockAssociationSet: [{ CidrBlock: "10.0.0.0/16", CidrBlockState: { State: "associated" } }],
    },
  ],
};
