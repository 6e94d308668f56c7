// A lab built in moto through the APIs AWS offers (EC2, Auto Scaling, SSM, DynamoDB), for the adapters'
// integration suites (test/aws/*.moto.test.ts): a VPC, a runner group spread over two AZs, worker subnets with
// route tables tagged for the lab, the store's table and the credential parameters. Each test adds what it
// needs (a stopped runner, an alarm, a route) through the same APIs.
import {
  AttachInstancesCommand,
  AutoScalingClient,
  CreateAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
} from "@aws-sdk/client-auto-scaling";
import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import {
  AssociateRouteTableCommand,
  CreateLaunchTemplateCommand,
  CreateRouteCommand,
  CreateRouteTableCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  DeleteSubnetCommand,
  DescribeInstancesCommand,
  EC2Client,
  RunInstancesCommand,
} from "@aws-sdk/client-ec2";
import { ParameterType, PutParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import { DynamoStore } from "../../functions/aws/store.ts";
import { type LabConfig, LabConfigSchema } from "../../functions/core/config.ts";
import { LAB_TAG } from "../../functions/core/names.ts";
import { labInputs } from "../../infra/labs.ts";
import { createStoreTable, MOTO_REGION, type Moto } from "./moto.ts";

/** SDK clients of the test itself (building and inspecting the lab), apart from the adapters' own. */
export interface MotoClients {
  readonly ec2: EC2Client;
  readonly autoScaling: AutoScalingClient;
  readonly cloudWatch: CloudWatchClient;
  readonly ssm: SSMClient;
  readonly dynamodb: DynamoDBClient;
  destroy(): void;
}

export const motoClients = (moto: Moto): MotoClients => {
  const config = {
    endpoint: moto.endpoint,
    region: MOTO_REGION,
    credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
    maxAttempts: 1,
  };
  const clients = {
    ec2: new EC2Client(config),
    autoScaling: new AutoScalingClient(config),
    cloudWatch: new CloudWatchClient(config),
    ssm: new SSMClient(config),
    dynamodb: new DynamoDBClient(config),
  };
  const destroy = () => {
    for (const client of Object.values(clients)) client.destroy();
  };
  return { ...clients, destroy };
};

/** Forgets everything moto holds (every service), so that the next test builds on nothing. */
export const resetMoto = async (moto: Moto): Promise<void> => {
  const response = await fetch(`${moto.endpoint}/moto-api/reset`, { method: "POST" });
  if (!response.ok) throw new Error(`moto did not reset: HTTP ${response.status}`);
};

export const AZ_A = `${MOTO_REGION}a`;
export const AZ_B = `${MOTO_REGION}b`;
/** The lab's intranet: two CIDRs, so that a table can route one and not the other. */
export const CIDR_1 = "10.200.0.0/16";
export const CIDR_2 = "10.201.0.0/16";
/** Worker subnets found by tag carry this tag (the lab configured with `workerSubnets.tag`). */
export const WORKER_SUBNET_TAG = "labgate:worker-subnet";
export const STORE_TABLE = "labgate-moto";

export interface MotoRunner {
  readonly instanceId: string;
  readonly az: string;
  readonly eniId: string;
  readonly privateIp: string;
}

export interface MotoLab {
  /** The lab, its worker subnets configured by id (the two that exist and one that was deleted). */
  readonly lab: LabConfig;
  /** The same lab, its worker subnets found by WORKER_SUBNET_TAG. */
  readonly labByTag: LabConfig;
  readonly vpcId: string;
  readonly workerSubnets: { readonly a: string; readonly b: string; readonly deleted: string };
  /** The worker subnets' route tables, tagged for the lab; each routes CIDR_1 to the runner of its AZ. */
  readonly tables: { readonly a: string; readonly b: string };
  /** a1 and a2 launched by the group in AZ a; b1 launched by hand in AZ b and attached to the group. */
  readonly runners: { readonly a1: MotoRunner; readonly a2: MotoRunner; readonly b1: MotoRunner };
  readonly credentials: readonly string[];
  readonly store: DynamoStore;
}

const required = <T>(value: T | undefined, what: string): T => {
  if (value === undefined) throw new Error(`moto returned no ${what}`);
  return value;
};

const runnerOf = async (ec2: EC2Client, instanceId: string): Promise<MotoRunner> => {
  const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  const instance = required(out.Reservations?.[0]?.Instances?.[0], `instance ${instanceId}`);
  return {
    instanceId,
    az: required(instance.Placement?.AvailabilityZone, "availability zone"),
    eniId: required(
      instance.NetworkInterfaces?.find((n) => n.Attachment?.DeviceIndex === 0)?.NetworkInterfaceId,
      "primary interface",
    ),
    privateIp: required(instance.PrivateIpAddress, "private IP"),
  };
};

/** Builds lab `name` in a VPC of its own (labs may share one in AWS; apart, each test's world is obvious). */
export const buildLab = async (clients: MotoClients, name = "foo"): Promise<MotoLab> => {
  const { ec2, autoScaling, ssm } = clients;
  const vpcId = required(
    (await ec2.send(new CreateVpcCommand({ CidrBlock: "10.0.0.0/16" }))).Vpc?.VpcId,
    "VPC",
  );
  const subnet = async (cidr: string, az: string, tags: Record<string, string> = {}) =>
    required(
      (
        await ec2.send(
          new CreateSubnetCommand({
            VpcId: vpcId,
            CidrBlock: cidr,
            AvailabilityZone: az,
            // EC2 refuses a tag specification without tags.
            ...(Object.keys(tags).length === 0
              ? {}
              : {
                  TagSpecifications: [
                    {
                      ResourceType: "subnet",
                      Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
                    },
                  ],
                }),
          }),
        )
      ).Subnet?.SubnetId,
      "subnet",
    );
  const worker = { [WORKER_SUBNET_TAG]: name };
  const [runnerSubnetA, runnerSubnetB, workerA, workerB, deleted] = await Promise.all([
    subnet("10.0.1.0/24", AZ_A),
    subnet("10.0.2.0/24", AZ_B),
    subnet("10.0.101.0/24", AZ_A, worker),
    subnet("10.0.102.0/24", AZ_B, worker),
    subnet("10.0.103.0/24", AZ_A, worker),
  ]);
  await ec2.send(new DeleteSubnetCommand({ SubnetId: deleted }));

  // moto launches every instance of a group into the first subnet of VPCZoneIdentifier, so the group gets
  // AZ a, and AZ b's runner is launched by hand and attached (Auto Scaling then tags it, as moto does too).
  const group = `${name}-runners`;
  const image = { ImageId: "ami-0123456789abcdef0", InstanceType: "t3.small" } as const;
  await ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: group, LaunchTemplateData: image }));
  await autoScaling.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: group,
      MinSize: 0,
      MaxSize: 6,
      DesiredCapacity: 2,
      LaunchTemplate: { LaunchTemplateName: group },
      VPCZoneIdentifier: runnerSubnetA,
    }),
  );
  const launched = await autoScaling.send(
    new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [group] }),
  );
  const [a1Id, a2Id] = (launched.AutoScalingGroups?.[0]?.Instances ?? []).flatMap((i) =>
    i.InstanceId ? [i.InstanceId] : [],
  );
  const b1Id = (
    await ec2.send(new RunInstancesCommand({ ...image, MinCount: 1, MaxCount: 1, SubnetId: runnerSubnetB }))
  ).Instances?.[0]?.InstanceId;
  await autoScaling.send(
    new AttachInstancesCommand({ AutoScalingGroupName: group, InstanceIds: [required(b1Id, "instance b1")] }),
  );
  const [a1, a2, b1] = await Promise.all([
    runnerOf(ec2, required(a1Id, "instance a1")),
    runnerOf(ec2, required(a2Id, "instance a2")),
    runnerOf(ec2, required(b1Id, "instance b1")),
  ]);
  const runners = { a1, a2, b1 };

  const table = async (workerSubnet: string, runner: MotoRunner) => {
    const id = required(
      (
        await ec2.send(
          new CreateRouteTableCommand({
            VpcId: vpcId,
            TagSpecifications: [{ ResourceType: "route-table", Tags: [{ Key: LAB_TAG, Value: name }] }],
          }),
        )
      ).RouteTable?.RouteTableId,
      "route table",
    );
    await ec2.send(new AssociateRouteTableCommand({ RouteTableId: id, SubnetId: workerSubnet }));
    await ec2.send(
      new CreateRouteCommand({
        RouteTableId: id,
        DestinationCidrBlock: CIDR_1,
        NetworkInterfaceId: runner.eniId,
      }),
    );
    return id;
  };
  const credentials = [1, 2, 3].map((n) => `/labgate/${name}/vpn/client-${n}`);
  const putCredential = (Name: string) =>
    ssm.send(new PutParameterCommand({ Name, Type: ParameterType.SECURE_STRING, Value: `key of ${Name}` }));
  // One table for every lab, as infra deploys it; a second lab's build keeps the first lab's items.
  const storeTable = async () => {
    const existing = await clients.dynamodb.send(new ListTablesCommand({}));
    if (!existing.TableNames?.includes(STORE_TABLE)) await createStoreTable(clients.dynamodb, STORE_TABLE);
  };
  const [[tableA, tableB]] = await Promise.all([
    Promise.all([table(workerA, runners.a1), table(workerB, runners.b1)]),
    Promise.all(credentials.map(putCredential)),
    storeTable(),
  ]);
  const tables = { a: tableA, b: tableB };

  const foo = labInputs.find((l) => l.name === "foo");
  if (!foo) throw new Error("no lab foo in infra/labs.ts");
  const config = {
    ...foo,
    name,
    vpcId,
    intranetCidrs: [CIDR_1, CIDR_2],
    dnsServers: ["10.200.0.10"],
    runners: { ...foo.runners, autoScalingGroupName: group, instanceRoleName: `${name}-runner-role` },
    vpn: { ...foo.vpn, credentials },
  };
  return {
    lab: LabConfigSchema.parse({ ...config, workerSubnets: { ids: [workerA, workerB, deleted] } }),
    labByTag: LabConfigSchema.parse({
      ...config,
      workerSubnets: { tag: { key: WORKER_SUBNET_TAG, value: name } },
    }),
    vpcId,
    workerSubnets: { a: workerA, b: workerB, deleted },
    tables,
    runners,
    credentials,
    store: new DynamoStore(clients.dynamodb, STORE_TABLE),
  };
};
