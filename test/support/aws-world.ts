// The other way round from functions/aws/observe.ts: answers the SDK's describe calls from a World, so that
// handler tests and the benchmark can run the real adapters against a lab in a known state.
import {
  AutoScalingClient,
  CompleteLifecycleActionCommand,
  DescribeAutoScalingGroupsCommand,
} from "@aws-sdk/client-auto-scaling";
import {
  CloudWatchClient,
  DeleteAlarmsCommand,
  DescribeAlarmsCommand,
  PutMetricAlarmCommand,
} from "@aws-sdk/client-cloudwatch";
import {
  CreateRouteCommand,
  CreateTagsCommand,
  DeleteTagsCommand,
  DescribeInstancesCommand,
  DescribeRouteTablesCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  EC2Client,
  ModifyInstanceAttributeCommand,
  ReplaceRouteCommand,
} from "@aws-sdk/client-ec2";
import {
  AddTagsToResourceCommand,
  GetCommandInvocationCommand,
  ListTagsForResourceCommand,
  RemoveTagsFromResourceCommand,
  SendCommandCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { mockClient } from "aws-sdk-client-mock";
import type { LabConfig } from "../../functions/core/config.ts";
import {
  ASG_TAG,
  COMMAND_TAG,
  CREDENTIAL_TAG,
  healthAlarmName,
  LAB_TAG,
  METRIC_NAMESPACE,
  runnerHealthNamespace,
  SETUP_TAG,
  TUNNEL_HEALTH_METRIC,
  TUNNEL_TAG,
} from "../../functions/core/names.ts";
import { formatTunnelReport } from "../../functions/core/tunnel-report.ts";
import type { World } from "../../functions/core/world.ts";

/** labgate's store of a world, as the items of its DynamoDB table (functions/aws/store.ts). */
export const storeItems = (world: World, lab: LabConfig): Record<string, unknown>[] => [
  ...world.runners
    .filter((r) => r.recorded)
    .map((r) => ({
      pk: lab.name,
      sk: `runner#${r.instanceId}`,
      ...(r.credential && { credential: r.credential }),
      ...(r.appliedSetup && { appliedSetup: r.appliedSetup }),
      ...(r.command?.commandId !== undefined && { command: r.command }),
      ...(r.command !== undefined &&
        r.command.commandId === undefined && {
          sending: { kind: r.command.kind, hash: r.command.hash, sentAt: r.command.sentAt },
        }),
      ...(r.recordedHealth && { health: r.recordedHealth }),
    })),
  ...world.runners
    .filter((r) => r.credential !== undefined)
    .map((r) => ({ pk: lab.name, sk: `lease#${r.credential}`, holder: r.instanceId, since: 0 })),
  ...world.orphanLeases.map((l) => ({
    pk: lab.name,
    sk: `lease#${l.credential}`,
    holder: l.holder,
    since: l.since,
  })),
  ...(world.requeue ? [{ pk: lab.name, sk: "requeue", ...world.requeue }] : []),
];

export const mocks = () => ({
  ec2: mockClient(EC2Client),
  asg: mockClient(AutoScalingClient),
  ssm: mockClient(SSMClient),
  cw: mockClient(CloudWatchClient),
});
export type Mocks = ReturnType<typeof mocks>;

/** What AWS answers to each read, for a lab in the state `world` (keyed by command name). */
export const readAnswers = (world: World, lab: LabConfig) => {
  const group = lab.runners.autoScalingGroupName;
  return {
    DescribeAutoScalingGroupsCommand: () => ({
      AutoScalingGroups: [
        {
          AutoScalingGroupName: group,
          MinSize: 0,
          MaxSize: 10,
          DesiredCapacity: world.runners.length,
          DefaultCooldown: 300,
          AvailabilityZones: [...new Set(world.runners.map((r) => r.az))],
          HealthCheckType: "EC2",
          CreatedTime: new Date(0),
          Instances: world.runners
            .filter((r) => r.lifecycle !== undefined)
            .map((r) => ({
              InstanceId: r.instanceId,
              AvailabilityZone: r.az,
              LifecycleState: r.lifecycle as never,
              HealthStatus: "Healthy",
              ProtectedFromScaleIn: false,
            })),
        },
      ],
    }),
    DescribeInstancesCommand: () => ({
      Reservations: [
        {
          Instances: world.runners.map((r) => ({
            InstanceId: r.instanceId,
            State: { Name: r.state },
            Placement: { AvailabilityZone: r.az },
            PrivateIpAddress: r.privateIp,
            SourceDestCheck: r.sourceDestCheck,
            NetworkInterfaces: r.eniId
              ? [{ NetworkInterfaceId: r.eniId, Attachment: { DeviceIndex: 0 } }]
              : [],
            MetadataOptions:
              r.imdsLocked === undefined
                ? undefined
                : {
                    HttpTokens: r.imdsLocked ? ("required" as const) : ("optional" as const),
                    HttpPutResponseHopLimit: 1,
                  },
            Tags: [
              { Key: ASG_TAG, Value: group },
              ...(r.mirror.credential ? [{ Key: CREDENTIAL_TAG, Value: r.mirror.credential }] : []),
              ...(r.mirror.appliedSetup ? [{ Key: SETUP_TAG, Value: r.mirror.appliedSetup }] : []),
              ...(r.mirror.command ? [{ Key: COMMAND_TAG, Value: r.mirror.command }] : []),
              ...(r.tunnelReport ? [{ Key: TUNNEL_TAG, Value: formatTunnelReport(r.tunnelReport) }] : []),
            ],
          })),
        },
      ],
    }),
    /** As EC2 does: by id, one unknown id fails the whole call; by filter, unknown ones are just left out. */
    DescribeSubnetsCommand: (
      input: { SubnetIds?: string[]; Filters?: { Name?: string; Values?: string[] }[] } = {},
    ) => {
      const known = new Set(world.subnets.map((s) => s.subnetId));
      const missing = (input.SubnetIds ?? []).find((id) => !known.has(id));
      if (missing !== undefined) {
        throw Object.assign(new Error(`The subnet ID '${missing}' does not exist`), {
          name: "InvalidSubnetID.NotFound",
          $fault: "client",
          $metadata: { httpStatusCode: 400 },
        });
      }
      const byId = input.Filters?.find((f) => f.Name === "subnet-id")?.Values;
      return {
        Subnets: world.subnets
          .filter((s) => byId === undefined || byId.includes(s.subnetId))
          .map((s) => ({
            SubnetId: s.subnetId,
            AvailabilityZone: s.az,
            CidrBlock: s.cidr,
          })),
      };
    },
    DescribeRouteTablesCommand: () => ({
      RouteTables: Object.values(world.routeTables).map((t) => ({
        RouteTableId: t.routeTableId,
        Tags: [{ Key: LAB_TAG, Value: lab.name }],
        Associations: world.subnets
          .filter((s) => s.routeTableId === t.routeTableId)
          .map((s) => ({ SubnetId: s.subnetId, RouteTableId: t.routeTableId, Main: false })),
        Routes: [
          { DestinationCidrBlock: "10.0.0.0/16", GatewayId: "local", State: "active" as const },
          ...Object.entries(t.routes).map(([cidr, r]) => ({
            DestinationCidrBlock: cidr,
            InstanceId: r.instanceId,
            NetworkInterfaceId: r.eniId,
            State: r.blackhole ? ("blackhole" as const) : ("active" as const),
          })),
        ],
      })),
    }),
    DescribeAlarmsCommand: () => ({
      MetricAlarms: world.healthAlarms.map((a) => ({
        AlarmName: a.name,
        Namespace: a.outdated ? METRIC_NAMESPACE : runnerHealthNamespace(lab.name),
        MetricName: TUNNEL_HEALTH_METRIC,
        StateValue:
          world.runners.find((r) => r.instanceId === a.instanceId)?.healthAlarm ?? "INSUFFICIENT_DATA",
      })),
    }),
    DescribeVpcsCommand: () => ({
      Vpcs: [
        {
          VpcId: lab.vpcId,
          CidrBlockAssociationSet: (world.vpcCidrs ?? ["10.0.0.0/16"]).map((CidrBlock) => ({
            CidrBlock,
            CidrBlockState: { State: "associated" as const },
          })),
        },
      ],
    }),
    /**
     * The store's Query. A stand-in placed after the retry middleware answers past the deserialize step,
     * where the document client unmarshalls: plain values, as the document client would have made them.
     */
    QueryCommand: () => ({ Items: storeItems(world, lab) }),
    GetCommandInvocationCommand: (input: { CommandId?: string; InstanceId?: string }) => {
      const r = world.runners.find(
        (x) => x.instanceId === input.InstanceId && x.command?.commandId === input.CommandId,
      );
      return {
        Status:
          r?.commandOutcome === "success"
            ? "Success"
            : r?.commandOutcome === "failed"
              ? "Failed"
              : "InProgress",
      };
    },
  } as const;
};

/** SDK answers describing `world`; every write succeeds. */
export const answerWith = (m: Mocks, world: World, lab: LabConfig): void => {
  const read = readAnswers(world, lab);
  m.asg.on(DescribeAutoScalingGroupsCommand).resolves(read.DescribeAutoScalingGroupsCommand());
  m.ec2.on(DescribeInstancesCommand).resolves(read.DescribeInstancesCommand());
  m.ec2.on(DescribeSubnetsCommand).callsFake(async (input) => read.DescribeSubnetsCommand(input));
  m.ec2.on(DescribeRouteTablesCommand).resolves(read.DescribeRouteTablesCommand());
  m.ec2.on(DescribeVpcsCommand).resolves(read.DescribeVpcsCommand());
  m.cw.on(DescribeAlarmsCommand).resolves(read.DescribeAlarmsCommand());
  m.ssm.on(GetCommandInvocationCommand).callsFake(async (input) => read.GetCommandInvocationCommand(input));
  for (const command of [
    ModifyInstanceAttributeCommand,
    CreateTagsCommand,
    DeleteTagsCommand,
    ReplaceRouteCommand,
    CreateRouteCommand,
  ]) {
    m.ec2.on(command as never).resolves({});
  }
  m.ssm.on(SendCommandCommand).resolves({ Command: { CommandId: "11111111-2222-3333-4444-555555555555" } });
  m.ssm.on(AddTagsToResourceCommand).resolves({});
  m.ssm.on(ListTagsForResourceCommand).resolves({ TagList: [] });
  m.ssm.on(RemoveTagsFromResourceCommand).resolves({});
  m.asg.on(CompleteLifecycleActionCommand).resolves({});
  m.cw.on(PutMetricAlarmCommand).resolves({});
  m.cw.on(DeleteAlarmsCommand).resolves({});
};

/** Names of the alarms of a world's runners, as the reconciler creates them. */
export const alarmOf = (lab: LabConfig, instanceId: string): string => healthAlarmName(lab.name, instanceId);
