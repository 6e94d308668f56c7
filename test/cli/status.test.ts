import "aws-sdk-client-mock-vitest/extend";
// `npm run status`: a deployed lab read from AWS only, against mocked clients that describe lab foo at the
// moment of test/aws/fixtures.ts (a runner terminating, one terminated behind a blackhole route, one
// launching, one whose tunnel alarm fired and whose new setup failed).
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { CloudWatchClient, DescribeAlarmsCommand } from "@aws-sdk/client-cloudwatch";
import {
  DescribeInstancesCommand,
  DescribeRouteTablesCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  EC2Client,
} from "@aws-sdk/client-ec2";
import { GetFunctionConfigurationCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { GetQueueAttributesCommand, GetQueueUrlCommand, SQSClient } from "@aws-sdk/client-sqs";
import { GetCommandInvocationCommand, SSMClient } from "@aws-sdk/client-ssm";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { main, parseStatusArgs } from "../../functions/cli/status.ts";
import type { MemoryStore } from "../../functions/local/memory-store.ts";
import {
  A1,
  A3,
  alarms,
  B1,
  COMMAND_A1,
  COMMAND_A3,
  COMMAND_B1,
  foo,
  group,
  instances,
  routeTables,
  seededStore,
  subnets,
  vpcs,
} from "../aws/fixtures.ts";

const ec2 = mockClient(EC2Client);
const autoScaling = mockClient(AutoScalingClient);
const ssm = mockClient(SSMClient);
const cloudWatch = mockClient(CloudWatchClient);
const sqs = mockClient(SQSClient);
const lambda = mockClient(LambdaClient);
const all = { ec2, autoScaling, ssm, cloudWatch, sqs, lambda };
const DLQ_URL = "https://sqs.eu-central-1.amazonaws.com/123456789012/labgate-prod-foo-dead-letters";
const awsError = (name: string, message: string) => Object.assign(new Error(message), { name });

/** labgate's store of the fixtures' lab (DynamoDB in AWS; the same contract in memory here). */
let store: MemoryStore;

beforeEach(async () => {
  store = await seededStore();
  for (const mock of Object.values(all)) mock.reset();
  lambda.on(GetFunctionConfigurationCommand).resolves({
    FunctionName: "labgate-prod-foo",
    Environment: {
      Variables: { LABGATE_CONFIG: JSON.stringify(foo), LABGATE_STORE_TABLE: "labgate-prod-store" },
    },
  });
  autoScaling.on(DescribeAutoScalingGroupsCommand).resolves(group);
  ec2.on(DescribeInstancesCommand).resolves(instances);
  ec2.on(DescribeSubnetsCommand).resolves(subnets);
  ec2.on(DescribeRouteTablesCommand).resolves(routeTables);
  ec2.on(DescribeVpcsCommand).resolves(vpcs);
  cloudWatch.on(DescribeAlarmsCommand).resolves(alarms);
  ssm
    .on(GetCommandInvocationCommand, { CommandId: COMMAND_A1, InstanceId: A1 })
    .resolves({ Status: "InProgress" })
    .on(GetCommandInvocationCommand, { CommandId: COMMAND_A3, InstanceId: A3 })
    .resolves({ Status: "Success" })
    .on(GetCommandInvocationCommand, { CommandId: COMMAND_B1, InstanceId: B1 })
    .resolves({ Status: "Failed" });
  sqs.on(GetQueueUrlCommand, { QueueName: "labgate-prod-foo-dead-letters" }).resolves({ QueueUrl: DLQ_URL });
  sqs
    .on(GetQueueAttributesCommand, { QueueUrl: DLQ_URL })
    .resolves({ Attributes: { ApproximateNumberOfMessages: "2" } });
});
afterEach(() => vi.restoreAllMocks());

const printed = () => {
  const out = vi.spyOn(console, "log").mockImplementation(() => {});
  const err = vi.spyOn(console, "error").mockImplementation(() => {});
  return () => ({ out: out.mock.calls.flat().join("\n"), err: err.mock.calls.flat().join("\n") });
};
const ARGS = ["--stage", "prod", "--lab", "foo", "--region", "eu-central-1"];

const WRITES =
  /^(Create|Replace|Modify|Delete|Put|Send|Complete|Start|Stop|Terminate|Update|Invoke|Purge|Set)/;

describe("npm run status", () => {
  it("shows each runner's AZ, lifecycle, credential, setup, tunnel health, routes and why it cannot carry", async () => {
    const output = printed();
    expect(await main(ARGS, () => store)).toBe(0);
    const { out } = output();
    const row = (id: string) => out.split("\n").find((l) => l.startsWith(id)) ?? "";
    expect(row(A1)).toMatch(
      /eu-central-1a\s+running\s+Terminating:Wait\s+\/labgate\/foo\/vpn\/client-1\s+3f2a9c1d; stop-vpn 5c0d1e2f running\s+healthy\s+-\s+no: it is Terminating:Wait, not InService/,
    );
    expect(row(A3)).toMatch(
      /Pending:Wait\s+\/labgate\/foo\/vpn\/client-3\s+9b1e0d4c\s+no alarm\s+-\s+no: it is Pending:Wait/,
    );
    expect(row(B1)).toMatch(
      /InService\s+\/labgate\/foo\/vpn\/client-2\s+unknown; setup 9b1e0d4c FAILED\s+UNHEALTHY \(alarm\)\s+subnet-0f0000000000b0001 10\.200\.0\.0\/16\s+no: its tunnel health alarm is in ALARM/,
    );
    // A terminated runner holds nothing, and a route to it is a blackhole, carried by no one.
    expect(row("i-0f0000000000a0002")).toMatch(/terminated\s+-\s+-\s+-\s+no reports yet\s+-\s+-$/);
    expect(out).toMatch(
      /subnet-0f0000000000a0001\s+eu-central-1a\s+rtb-0f0000000000a0001\s+BLACKHOLE \(i-0f0000000000a0002 is gone\)/,
    );
    expect(out).toMatch(/subnet-0f0000000000c0001\s+eu-central-1c\s+rtb-0f0000000000c0001\s+no route/);
    expect(out).toContain(
      "eligible runners: eu-central-1a 0, eu-central-1b 0, eu-central-1c 0; credentials free: 0 of 3; dead letters: 2",
    );
  });

  it("shows the findings and what labgate would do now, without doing any of it", async () => {
    const output = printed();
    expect(await main(ARGS, () => store)).toBe(0);
    const { out } = output();
    expect(out).toContain("(dry run: nothing was changed) — what labgate would do now");
    expect(out).toMatch(
      /push-setup\s+i-0f0000000000b0001\s+planned\s+setup 9b1e0d4c\w* failed on i-0f0000000000b0001, so nothing is known to be in place/,
    );
    expect(out).toMatch(/delete-health-alarms\s+labgate-foo-tunnel-i-0f0000000000a0002\s+planned/);
    expect(out).toContain(
      "finding command-failed: setup command 0a1b2c3d-0000-4000-8000-00000000b001 failed",
    );
    expect(out).toContain("finding lab-unreachable: lab foo is unreachable");
    expect(out).not.toContain("converged");
    for (const [service, mock] of Object.entries(all)) {
      const sent = mock.calls().map((c) => (c.args[0] as object).constructor.name);
      expect(
        sent.filter((name) => WRITES.test(name)),
        `${service} writes`,
      ).toEqual([]);
    }
    expect(ec2.calls().length).toBeGreaterThan(0);
  });

  it("reads the configuration the stage's function of the lab was deployed with", async () => {
    const bar = { ...foo, name: "foo", intranetCidrs: ["10.200.0.0/16", "10.201.0.0/16"] };
    lambda.on(GetFunctionConfigurationCommand).resolves({
      Environment: {
        Variables: { LABGATE_CONFIG: JSON.stringify(bar), LABGATE_STORE_TABLE: "labgate-prod-store" },
      },
    });
    const output = printed();
    expect(await main(ARGS, () => store)).toBe(0);
    expect(lambda).toHaveReceivedCommandWith(GetFunctionConfigurationCommand, {
      FunctionName: "labgate-prod-foo",
    });
    expect(output().out).toMatch(/WORKER SUBNET\s+AZ\s+ROUTE TABLE\s+10\.200\.0\.0\/16\s+10\.201\.0\.0\/16/);
  });

  it("says the lab is not deployed in the stage (exit 4), and reads nothing else", async () => {
    lambda
      .on(GetFunctionConfigurationCommand)
      .rejects(awsError("ResourceNotFoundException", "Function not found"));
    const output = printed();
    expect(await main(["--stage", "dev", "--lab", "foo", "--region", "eu-central-1"], () => store)).toBe(4);
    expect(output().err).toContain(
      "status: labgate is not deployed for lab foo in stage dev: there is no function labgate-dev-foo",
    );
    expect(ec2.calls()).toHaveLength(0);
  });

  it("names the missing permission when a read is denied (exit 3)", async () => {
    ec2.on(DescribeInstancesCommand).rejects(awsError("UnauthorizedOperation", "You are not authorized"));
    const output = printed();
    expect(await main(ARGS, () => store)).toBe(3);
    expect(output().err).toContain(
      "these credentials may not read lab foo (EC2, Auto Scaling, CloudWatch, SSM, DynamoDB)",
    );
  });

  it("still shows the lab when its dead-letter queue cannot be read, saying so", async () => {
    sqs.on(GetQueueUrlCommand).rejects(awsError("AccessDenied", "not allowed"));
    const output = printed();
    expect(await main(ARGS, () => store)).toBe(0);
    expect(output().out).toContain(
      "dead letters: unknown (labgate-prod-foo-dead-letters: AccessDenied: not allowed)",
    );
  });

  it("prints the world and the plan as JSON, without the rendered scripts", async () => {
    const output = printed();
    expect(await main([...ARGS, "--json"], () => store)).toBe(0);
    const json = JSON.parse(output().out) as {
      world: { runners: { instanceId: string }[] };
      plan: { actions: Record<string, unknown>[]; findings: unknown[] };
      deadLetters: number;
    };
    expect(json.world.runners.map((r) => r.instanceId)).toContain(B1);
    expect(json.plan.actions.some((a) => a.kind === "push-setup")).toBe(true);
    expect(json.plan.actions.every((a) => !("script" in a))).toBe(true);
    expect(json.deadLetters).toBe(2);
  });
});

describe("parseStatusArgs", () => {
  it("needs a stage and a lab of infra/labs.ts (exit 2)", () => {
    expect(parseStatusArgs(ARGS, ["foo"])).toEqual({
      stage: "prod",
      lab: "foo",
      region: "eu-central-1",
      json: false,
    });
    for (const argv of [
      ["--lab", "foo"],
      ["--stage", "p", "--lab", "baz"],
      ["--stage", "p", "--lab", "foo", "--dry-run"],
    ])
      expect(() => parseStatusArgs(argv, ["foo", "bar"])).toThrow(expect.objectContaining({ exitCode: 2 }));
  });
});
