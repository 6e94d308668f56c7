import "aws-sdk-client-mock-vitest/extend";
// The reconcile handler over the real event samples in events/: the EC2, Auto Scaling, SSM and CloudWatch
// clients are mocked to describe a known world (asserting the exact commands sent for each event, and that
// nothing is sent when nothing must be); labgate's store and the lab's requeue schedule are real DynamoDB and
// EventBridge Scheduler APIs (moto, started by this suite), so that conditional writes decide, and a second
// schedule of the same name is refused, as they would be in AWS.
import { readFileSync } from "node:fs";
import { CompleteLifecycleActionCommand } from "@aws-sdk/client-auto-scaling";
import { PutMetricAlarmCommand } from "@aws-sdk/client-cloudwatch";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  DescribeSubnetsCommand,
  ModifyInstanceAttributeCommand,
  ReplaceRouteCommand,
} from "@aws-sdk/client-ec2";
import {
  DeleteScheduleCommand,
  GetScheduleCommand,
  type GetScheduleCommandOutput,
  SchedulerClient,
} from "@aws-sdk/client-scheduler";
import {
  AddTagsToResourceCommand,
  GetCommandInvocationCommand,
  InvalidInstanceId,
  SendCommandCommand,
} from "@aws-sdk/client-ssm";
import type { Context } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { DynamoStore } from "../../functions/aws/store.ts";
import { formatTunnelReport } from "../../functions/core/tunnel-report.ts";
import type { World } from "../../functions/core/world.ts";
import { launchingRunner } from "../../functions/local/model.ts";
import {
  convergedWorld,
  labNamed,
  runnerId,
  subnetId,
  tableId,
  withPool,
  withRunner,
} from "../../functions/local/sample-world.ts";
import type { Report } from "../../functions/reconcile/reconcile.ts";
import { renderRunnerSetup } from "../../functions/render/index.ts";
import { answerWith, mocks } from "../support/aws-world.ts";
import { createStoreTable, type Moto, motoUnavailableReason, startMoto, useMoto } from "../support/moto.ts";

const skip = await motoUnavailableReason();
if (skip && process.env.CI === "true") throw new Error(`the handler suite cannot run in CI: ${skip}`);
if (skip) console.warn(`SKIPPED handler suite: ${skip}`);

const shape = { azs: ["eu-central-1a", "eu-central-1b", "eu-central-1c"], runnersPerAz: 1, subnetsPerAz: 3 };
/** Lab foo with a larger pool, and the worker subnets of the worlds below (three per AZ). */
const lab = {
  ...withPool(labNamed("foo"), 8),
  workerSubnets: { ids: shape.azs.flatMap((az) => [1, 2, 3].map((n) => subnetId(az, n))) },
};
const world = convergedWorld(lab, shape);
const A1 = runnerId("eu-central-1a", 1);
const A2 = runnerId("eu-central-1a", 2);
const A3 = runnerId("eu-central-1a", 3);
const B1 = runnerId("eu-central-1b", 1);
const C1 = runnerId("eu-central-1c", 1);
const CIDR = "10.200.0.0/16";
const K = (n: number) => `/labgate/foo/vpn/client-${n}`;
const eni = (id: string): string => `eni-${id.slice(2)}`;
const TABLE = "labgate-test-store";
const ACCOUNT = { partition: "aws", region: "eu-central-1", account: "123456789012" };

const sample = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../events/${name}.json`, import.meta.url), "utf8"));
const context = {
  functionName: "labgate-foo",
  awsRequestId: "req-1",
  getRemainingTimeInMillis: () => 60_000,
} as unknown as Context;

/** Two runners per AZ, so that a failover stays in the AZ. */
const twoPerAz: World = convergedWorld(lab, { ...shape, runnersPerAz: 2 });

const REQUEUE = {
  schedule: "labgate-test-foo-requeue",
  functionArn: "arn:aws:lambda:eu-central-1:123456789012:function:labgate-test-foo",
  roleArn: "arn:aws:iam::123456789012:role/labgate-test-foo-requeue-invoke",
};
type Handler = (event: unknown, context: Context) => Promise<Report>;
let handler: Handler;
let moto: Moto | undefined;
let dynamodb: DynamoDBClient;
let store: DynamoStore;
let scheduler: SchedulerClient;
/** Writes of labgate's state of the lab (the requeue episode is counted apart, in `episodeWrites`). */
const storeWrites: string[] = [];
const episodeWrites: string[] = [];
/** The function's own scheduler calls, by command name. */
const schedulerCalls: string[] = [];
const m = mocks();

/** A fresh container of the function: its own module scope (clients, caches), as a new Lambda container. */
const newContainer = async (): Promise<Handler> => {
  vi.resetModules();
  const fresh = await import("../../functions/reconcile/handler.ts");
  const clients = await import("../../functions/aws/clients.ts");
  clients.dynamodb.middlewareStack.add(
    (next, ctx) => async (args) => {
      const name = (ctx as { commandName?: string }).commandName ?? "?";
      // The document client's input (plain values) or the base client's (marshalled: { S: ... }).
      type Sk = string | { S?: string } | undefined;
      const input = args.input as { Key?: { sk?: Sk }; Item?: { sk?: Sk } };
      const sk = input.Key?.sk ?? input.Item?.sk;
      const episode = (typeof sk === "string" ? sk : sk?.S) === "requeue";
      if (name !== "QueryCommand") (episode ? episodeWrites : storeWrites).push(name);
      return next(args);
    },
    { step: "initialize", name: "countStoreWrites" },
  );
  clients.scheduler.middlewareStack.add(
    (next, ctx) => async (args) => {
      schedulerCalls.push((ctx as { commandName?: string }).commandName ?? "?");
      return next(args);
    },
    { step: "initialize", name: "countSchedulerCalls" },
  );
  return fresh.handler;
};

beforeAll(async () => {
  if (skip) return;
  moto = await startMoto();
  useMoto(moto);
  vi.stubEnv("LABGATE_CONFIG", JSON.stringify(lab));
  vi.stubEnv("LABGATE_REQUEUE", JSON.stringify(REQUEUE));
  vi.stubEnv("LABGATE_STORE_TABLE", TABLE);
  vi.stubEnv("LABGATE_AWS_ACCOUNT", JSON.stringify(ACCOUNT));
  vi.stubEnv("POWERTOOLS_LOG_LEVEL", "SILENT");
  vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "true");
  dynamodb = new DynamoDBClient({});
  store = new DynamoStore(dynamodb, TABLE);
  scheduler = new SchedulerClient({});
  handler = await newContainer();
}, 60_000);

afterAll(async () => {
  dynamodb?.destroy();
  scheduler?.destroy();
  await moto?.stop();
});

beforeEach(async () => {
  for (const mock of Object.values(m)) mock.reset();
  storeWrites.length = 0;
  episodeWrites.length = 0;
  schedulerCalls.length = 0;
  if (skip) return;
  await createStoreTable(dynamodb, TABLE);
  await scheduler.send(new DeleteScheduleCommand({ Name: REQUEUE.schedule })).catch(() => undefined);
});

/** The lab's requeue schedule in the scheduler, or undefined when none is pending. */
const pendingRequeue = async (): Promise<GetScheduleCommandOutput | undefined> =>
  scheduler.send(new GetScheduleCommand({ Name: REQUEUE.schedule })).catch((error: unknown) => {
    if (error instanceof Error && error.name === "ResourceNotFoundException") return undefined;
    throw error;
  });

/** When the schedule's at() expression (UTC) says it runs, in ms since the epoch. */
const dueAt = (schedule: GetScheduleCommandOutput | undefined): number =>
  Date.parse(`${/^at\((.+)\)$/.exec(schedule?.ScheduleExpression ?? "")?.[1]}Z`);

const created = (): number => schedulerCalls.filter((c) => c === "CreateScheduleCommand").length;

/** AWS describes `w`, and labgate's store holds what `w` says labgate recorded (unless it holds something already). */
const given = async (w: World, { seed = true } = {}): Promise<void> => {
  answerWith(m, w, lab);
  if (!seed) return;
  for (const r of w.runners.filter((x) => x.recorded)) {
    const { credential, appliedSetup, command } = r;
    await store.adopt(lab.name, r.instanceId, { credential, appliedSetup, command }, 0);
    if (r.recordedHealth) await store.recordHealth(lab.name, r.instanceId, r.recordedHealth);
  }
};

const mirrorOf = (w: World, id: string) => {
  const r = w.runners.find((x) => x.instanceId === id);
  if (!r) throw new Error(`no runner ${id}`);
  return r.mirror;
};

const heldBy = async (parameter: string) => (await store.read(lab.name)).leases.get(parameter)?.holder;

const writesSent = (): number =>
  m.ec2.commandCalls(ReplaceRouteCommand).length +
  m.ec2.commandCalls(CreateTagsCommand).length +
  m.ec2.commandCalls(ModifyInstanceAttributeCommand).length +
  m.ssm.commandCalls(SendCommandCommand).length +
  m.asg.commandCalls(CompleteLifecycleActionCommand).length +
  m.cw.commandCalls(PutMetricAlarmCommand).length +
  storeWrites.length;

const describeIf = skip ? describe.skip : describe;

describeIf("EC2 state change", () => {
  it("moves the routes of a stopping runner to the other runner of its AZ", async () => {
    // The sample says A1 is stopping; two runners in AZ a, A1 carries subnets 1 and 3.
    const w = withRunner(convergedWorld(lab, { ...shape, runnersPerAz: 2, subnetsPerAz: 2 }), A1, {
      state: "stopping",
    });
    await given(w);
    const report = await handler(sample("ec2-state-change"), context);
    const a2 = runnerId("eu-central-1a", 2);
    expect(m.ec2).toHaveReceivedCommandTimes(ReplaceRouteCommand, 1);
    expect(m.ec2).toHaveReceivedCommandWith(ReplaceRouteCommand, {
      RouteTableId: tableId("eu-central-1a", 1),
      DestinationCidrBlock: CIDR,
      NetworkInterfaceId: eni(a2),
    });
    expect(writesSent()).toBe(1);
    expect(report.errors).toEqual([]);
    expect(report.actions).toEqual([
      expect.objectContaining({ kind: "replace-route", outcome: "done", failover: true, previous: A1 }),
    ]);
  });

  it("ignores an instance of another lab after one lookup, and sends nothing", async () => {
    await given(world);
    m.ec2.on(DescribeInstancesCommand, { InstanceIds: ["i-0ba000000000a0001"] }).resolves({
      Reservations: [
        {
          Instances: [
            {
              InstanceId: "i-0ba000000000a0001",
              Tags: [{ Key: "aws:autoscaling:groupName", Value: "bar-runners" }],
            },
          ],
        },
      ],
    });
    const report = await handler(sample("ec2-state-change-foreign"), context);
    expect(report.ignored).toMatch(/not in group foo-runners/);
    expect(m.ec2).toHaveReceivedCommandTimes(DescribeInstancesCommand, 1);
    expect(writesSent()).toBe(0);
  });
});

describeIf("lifecycle", () => {
  const launching = (w: World): World => ({
    ...w,
    runners: [...w.runners, launchingRunner(A3, "eu-central-1a", "10.0.101.30")],
  });

  it("leases a credential to a launching runner, disables its check and pushes its setup, without completing yet", async () => {
    await given(launching(world));
    const report = await handler(sample("lifecycle-launch"), context);
    expect(m.ec2).toHaveReceivedCommandWith(ModifyInstanceAttributeCommand, {
      InstanceId: A3,
      SourceDestCheck: { Value: false },
    });
    expect(m.ec2).toHaveReceivedCommandWith(CreateTagsCommand, {
      Resources: [A3],
      Tags: [{ Key: "labgate:credential", Value: "/labgate/foo/vpn/client-4" }],
    });
    expect(m.ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    const send = m.ssm.commandCalls(SendCommandCommand)[0]?.args[0].input;
    expect(send?.DocumentName).toBe("AWS-RunShellScript");
    expect(send?.InstanceIds).toEqual([A3]);
    expect(send?.Parameters?.commands?.[0]).toMatch(/^# labgate lab=foo kind=setup hash=[0-9a-f]{16}$/);
    // The runner fetches its key itself: no key material (32-hex-digit lines of a static key) in the command.
    expect(send?.Parameters?.commands?.join("\n")).not.toMatch(/^[0-9a-f]{32}$/m);
    expect(send?.Parameters?.commands?.join("\n")).toContain("/labgate/foo/vpn/client-4");
    expect(m.asg).toHaveReceivedCommandTimes(CompleteLifecycleActionCommand, 0);
    // Only the holder may read the key (IAM, infra/runner-policy.ts): it is named before the setup goes out.
    expect(m.ssm).toHaveReceivedCommandWith(AddTagsToResourceCommand, {
      ResourceType: "Parameter",
      ResourceId: K(4),
      Tags: [{ Key: "labgate:holder", Value: `arn:aws:ec2:eu-central-1:123456789012:instance/${A3}` }],
    });
    const order = m.ssm.calls().map((c) => (c.args[0] as { constructor: { name: string } }).constructor.name);
    expect(order.indexOf("AddTagsToResourceCommand")).toBeLessThan(order.indexOf("SendCommandCommand"));
    expect(report.actions.map((a) => a.kind)).toEqual([
      "lease-credential",
      "disable-source-dest-check",
      "push-setup",
    ]);
    expect(report.actions.every((a) => a.outcome === "done")).toBe(true);
    // The script is long and named by its hash: it stays out of the report.
    expect(report.actions[2]).not.toHaveProperty("script");
  });

  it("completes the launch hook with CONTINUE once SSM reports the setup succeeded", async () => {
    await given(launching(world));
    await handler(sample("lifecycle-launch"), context);
    const record = (await store.read(lab.name)).runners.get(A3)?.command;
    expect(record).toMatchObject({ kind: "setup", status: "pending" });
    // The command ends; SSM says so, and EC2 shows the check off. The store still holds the pending record.
    m.ec2.reset();
    m.ssm.reset();
    await given(
      withRunner(launching(world), A3, {
        sourceDestCheck: false,
        command: record,
        commandOutcome: "success",
      }),
      {
        seed: false,
      },
    );
    const report = await handler(sample("ssm-command-status"), context);
    expect(m.asg).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      AutoScalingGroupName: "foo-runners",
      LifecycleHookName: "labgate-launch",
      InstanceId: A3,
      LifecycleActionResult: "CONTINUE",
    });
    expect((await store.read(lab.name)).runners.get(A3)).toMatchObject({
      appliedSetup: record?.hash,
      command: { status: "success" },
    });
    expect(m.ec2).toHaveReceivedCommandWith(CreateTagsCommand, {
      Resources: [A3],
      Tags: expect.arrayContaining([{ Key: "labgate:setup", Value: record?.hash }]),
    });
    expect(m.ssm).toHaveReceivedCommandTimes(SendCommandCommand, 0);
    expect(report.errors).toEqual([]);
  });

  it("moves a terminating runner's routes away, then stops its VPN, and holds the hook", async () => {
    const w = withRunner(twoPerAz, A1, { lifecycle: "Terminating:Wait" });
    await given(w);
    const report = await handler(sample("lifecycle-terminate"), context);
    // A1 carries subnets 1 and 3 of AZ a.
    expect(m.ec2).toHaveReceivedCommandTimes(ReplaceRouteCommand, 2);
    for (const n of [1, 3]) {
      expect(m.ec2).toHaveReceivedCommandWith(ReplaceRouteCommand, {
        RouteTableId: tableId("eu-central-1a", n),
        DestinationCidrBlock: CIDR,
        NetworkInterfaceId: eni(A2),
      });
    }
    const send = m.ssm.commandCalls(SendCommandCommand)[0]?.args[0].input;
    expect(send?.InstanceIds).toEqual([A1]);
    expect(send?.Parameters?.commands?.[0]).toMatch(/^# labgate lab=foo kind=stop-vpn /);
    expect(m.asg).toHaveReceivedCommandTimes(CompleteLifecycleActionCommand, 0);
    expect(report.actions.map((a) => a.kind)).toEqual(["replace-route", "replace-route", "stop-vpn"]);
  });

  it("never leases one credential twice, even from a new container whose EC2 view misses the last lease", async () => {
    await given(launching(world));
    await handler(sample("lifecycle-launch"), context);
    expect(await heldBy(K(4))).toBe(A3);
    // A moment later another runner launches; a new container handles it, and DescribeInstances does not
    // show A3's lease tag yet (EC2 is eventually consistent). The old in-memory overlay died with the first
    // container: this is where one key used to be leased twice.
    const another = { ...launchingRunner(A2, "eu-central-1a", "10.0.101.20") };
    m.ec2.reset();
    m.ssm.reset();
    await given({ ...launching(world), runners: [...launching(world).runners, another] }, { seed: false });
    const secondContainer = await newContainer();
    const report = await secondContainer(sample("lifecycle-launch"), context);
    expect(report.errors).toEqual([]);
    expect(await heldBy(K(4))).toBe(A3);
    expect(await heldBy(K(5))).toBe(A2);
    // Every credential tag written names the key the store gives that runner (A3's is repaired, A2's new).
    const leaseTags = m.ec2
      .commandCalls(CreateTagsCommand)
      .map((c) => c.args[0].input)
      .filter((i) => i.Tags?.some((t) => t.Key === "labgate:credential"));
    expect(leaseTags).toEqual(
      expect.arrayContaining([{ Resources: [A2], Tags: [{ Key: "labgate:credential", Value: K(5) }] }]),
    );
    for (const t of leaseTags) {
      const value = t.Tags?.find((x) => x.Key === "labgate:credential")?.Value;
      expect(value && (await heldBy(value))).toBe(t.Resources?.[0]);
    }
    // The setup sent to A2 names its own key, never A3's.
    const sent = m.ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
    expect(sent.map((i) => i.InstanceIds)).toEqual([[A2]]);
    expect(sent[0]?.Parameters?.commands?.join("\n")).toContain(K(5));
    expect(sent[0]?.Parameters?.commands?.join("\n")).not.toContain(K(4));
  });

  it("gives a launching runner a free key, not the key of a runner whose lease tag a person deleted", async () => {
    await given(
      withRunner(launching(world), A1, { mirror: { ...mirrorOf(world, A1), credential: undefined } }),
    );
    const report = await handler(sample("lifecycle-launch"), context);
    expect(report.errors).toEqual([]);
    expect(await heldBy(K(1))).toBe(A1);
    expect(await heldBy(K(4))).toBe(A3);
    // The deleted mirror tag is written again from the store.
    expect(m.ec2).toHaveReceivedCommandWith(CreateTagsCommand, {
      Resources: [A1],
      Tags: [{ Key: "labgate:credential", Value: K(1) }],
    });
  });

  it("trusts no forged tag: a launching runner tagged as holding A1's key and as set up gets its own key and setup", async () => {
    const setup = renderRunnerSetup({
      lab,
      instanceId: A3,
      privateIp: "10.0.101.30",
      credentialParameter: K(1),
      workerCidrs: [...new Set(world.subnets.map((x) => x.cidr))].sort(),
    });
    const forged = {
      credential: K(1),
      appliedSetup: setup.hash,
      command: `setup ${setup.hash} e8d3c0e4-0c3b-4d8e-9a5f-1c2d3e4f5a06 success 1795683600000`,
    };
    await given(withRunner(launching(world), A3, { mirror: forged }));
    const report = await handler(sample("lifecycle-launch"), context);
    expect(report.errors).toEqual([]);
    // Not let into service on the forged record, and A1 keeps its key.
    expect(m.asg).toHaveReceivedCommandTimes(CompleteLifecycleActionCommand, 0);
    expect(await heldBy(K(1))).toBe(A1);
    expect(await heldBy(K(4))).toBe(A3);
    expect(
      m.ssm.commandCalls(SendCommandCommand)[0]?.args[0].input.Parameters?.commands?.join("\n"),
    ).toContain(K(4));
  });

  it("asks for another reconcile in 30 s when a launching runner's SSM agent is not registered yet", async () => {
    await given(launching(world));
    m.ssm
      .on(SendCommandCommand)
      .rejects(
        new InvalidInstanceId({ message: "Instances not in a valid state for account", $metadata: {} }),
      );
    const before = Date.now();
    const report = await handler(sample("lifecycle-launch"), context);
    expect(report.errors).toEqual([]);
    expect(report.actions.find((a) => a.kind === "push-setup")?.outcome).toBe("deferred");
    expect(created()).toBe(1);
    const schedule = await pendingRequeue();
    expect(schedule).toMatchObject({
      ScheduleExpressionTimezone: "UTC",
      FlexibleTimeWindow: { Mode: "OFF" },
      ActionAfterCompletion: "DELETE",
      Target: { Arn: REQUEUE.functionArn, RoleArn: REQUEUE.roleArn },
    });
    expect(dueAt(schedule)).toBeGreaterThanOrEqual(before + 30_000);
    expect(dueAt(schedule)).toBeLessThanOrEqual(Date.now() + 31_000);
    expect(JSON.parse(schedule?.Target?.Input ?? "{}")).toEqual({
      source: "labgate.requeue",
      reason: `push-setup:${A3} deferred`,
      attempt: 1,
    });
    expect((await store.read(lab.name)).requeue).toMatchObject({
      reasons: [`push-setup:${A3} deferred`],
      attempts: 1,
    });
  });

  it("reconciles when its requeue comes, and asks for nothing more once the setup went out", async () => {
    await given(launching(world));
    const report = await handler(sample("requeue"), context);
    expect(report.trigger).toBe(`requeue (push-setup:${A3} deferred)`);
    expect(m.ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    expect(schedulerCalls).toEqual([]);
    expect(await pendingRequeue()).toBeUndefined();
  });

  it("treats an already completed hook as done", async () => {
    const w = withRunner(world, A1, { lifecycle: "Terminating:Wait", state: "stopped" });
    await given(w);
    m.asg.on(CompleteLifecycleActionCommand).rejects(
      Object.assign(new Error(`No active Lifecycle Action found with instance ID ${A1}`), {
        name: "ValidationError",
        $metadata: { httpStatusCode: 400 },
      }),
    );
    const report = await handler(sample("lifecycle-terminate"), context);
    expect(m.asg).toHaveReceivedCommandTimes(CompleteLifecycleActionCommand, 1);
    expect(report.errors).toEqual([]);
    expect(report.actions.find((a) => a.kind === "complete-lifecycle")?.outcome).toBe("done");
  });
});

describeIf("requeue: at most one pending, backed off, capped", () => {
  /** A3 launching, and its SSM agent never registers: its setup is deferred at every reconcile. */
  const neverRegisters = async (w: World = world): Promise<void> => {
    await given({ ...w, runners: [...w.runners, launchingRunner(A3, "eu-central-1a", "10.0.101.30")] });
    m.ssm
      .on(SendCommandCommand)
      .rejects(new InvalidInstanceId({ message: "Instances not in a valid state", $metadata: {} }));
  };
  const requeueOf = (attempt: number) => ({ ...(sample("requeue") as object), attempt });
  const input = async () => JSON.parse((await pendingRequeue())?.Target?.Input ?? "null");

  it("creates no second schedule while one is pending: the schedule and events in between ask for nothing", async () => {
    await neverRegisters();
    await handler(sample("lifecycle-launch"), context);
    const first = await pendingRequeue();
    await handler(sample("scheduled"), context);
    await handler(sample("lifecycle-launch"), context);
    expect(created()).toBe(1);
    const now = await pendingRequeue();
    expect(now?.ScheduleExpression).toBe(first?.ScheduleExpression);
    expect(now?.Target?.Input).toBe(first?.Target?.Input);
    expect((await store.read(lab.name)).requeue).toMatchObject({ attempts: 1 });
    expect(episodeWrites).toEqual(["PutItemCommand"]);
  });

  it("on its requeue, replaces its own schedule (not deleted yet) with the next attempt, 60 s later", async () => {
    await neverRegisters();
    await handler(sample("lifecycle-launch"), context);
    const before = Date.now();
    const report = await handler(requeueOf(1), context);
    expect(report.actions.find((a) => a.kind === "push-setup")?.outcome).toBe("deferred");
    // The fired schedule still exists (Scheduler deletes it after the invocation): create, refused, replace.
    expect(schedulerCalls).toEqual([
      "CreateScheduleCommand",
      "CreateScheduleCommand",
      "DeleteScheduleCommand",
      "CreateScheduleCommand",
    ]);
    expect(await input()).toMatchObject({ attempt: 2 });
    expect(dueAt(await pendingRequeue())).toBeGreaterThanOrEqual(before + 60_000);
    expect((await store.read(lab.name)).requeue).toMatchObject({ attempts: 2 });
  });

  it("stops after the third attempt, and the schedule then takes over without starting anything", async () => {
    await neverRegisters();
    await handler(sample("lifecycle-launch"), context);
    for (const attempt of [1, 2]) {
      await handler(requeueOf(attempt), context);
      expect(await input()).toMatchObject({ attempt: attempt + 1 });
    }
    const calls = schedulerCalls.length;
    await handler(requeueOf(3), context);
    expect(schedulerCalls.length).toBe(calls);
    expect((await store.read(lab.name)).requeue).toEqual({
      reasons: [`push-setup:${A3} deferred`],
      attempts: 3,
    });
    // An hour of the 5-minute schedule, with the runner still unregistered: no requeue, no write.
    const writes = episodeWrites.length;
    for (let tick = 0; tick < 12; tick++) await handler(sample("scheduled"), context);
    expect(schedulerCalls.length).toBe(calls);
    expect(episodeWrites.length).toBe(writes);
  });

  it("a Lambda retry of a failing invocation adds no requeue", async () => {
    // A1 stopped (its routes move, one ReplaceRoute fails) while A3's agent is not registered (deferred).
    await neverRegisters(withRunner(world, A1, { state: "stopped" }));
    m.ec2
      .on(ReplaceRouteCommand, { RouteTableId: tableId("eu-central-1a", 2) })
      .rejects(Object.assign(new Error("not authorized"), { name: "UnauthorizedOperation", $metadata: {} }));
    // The first invocation and Lambda's two retries of it, a minute apart in AWS (here at once).
    for (let run = 0; run < 3; run++)
      await expect(handler(sample("ec2-state-change"), context)).rejects.toThrow(/action\(s\) failed/);
    expect(created()).toBe(1);
    expect(await input()).toMatchObject({ attempt: 1 });
    expect(episodeWrites).toEqual(["PutItemCommand"]);
  });

  it("closes the episode once nothing waits any more", async () => {
    await neverRegisters();
    await handler(sample("lifecycle-launch"), context);
    m.ssm.reset();
    await given(
      { ...world, runners: [...world.runners, launchingRunner(A3, "eu-central-1a", "10.0.101.30")] },
      { seed: false },
    );
    const report = await handler(requeueOf(1), context);
    expect(report.actions.find((a) => a.kind === "push-setup")?.outcome).toBe("done");
    expect((await store.read(lab.name)).requeue).toBeUndefined();
    expect(created()).toBe(1);
  });

  it("never requeues on a dry run, even with a read failing", async () => {
    await given(world);
    m.ec2.on(DescribeInstancesCommand).rejects(
      Object.assign(new Error("Request limit exceeded."), {
        name: "RequestLimitExceeded",
        $metadata: { httpStatusCode: 503 },
      }),
    );
    const report = await handler(sample("resync-dry-run"), context);
    expect(report.findings.map((f) => f.kind)).toContain("observe-degraded");
    expect(schedulerCalls).toEqual([]);
    expect(episodeWrites).toEqual([]);
  });
});

describeIf("alarm state change", () => {
  it("fails a runner over to another AZ when its tunnel health alarm is in ALARM", async () => {
    await given(withRunner(world, B1, { healthAlarm: "ALARM" }));
    const report = await handler(sample("alarm-state-change"), context);
    expect(m.ec2).toHaveReceivedCommandTimes(ReplaceRouteCommand, 3);
    const targets = m.ec2.commandCalls(ReplaceRouteCommand).map((c) => c.args[0].input.NetworkInterfaceId);
    expect(new Set(targets)).toEqual(new Set([eni(A1), eni(C1)]));
    const routes = report.actions.filter((a) => a.kind === "replace-route");
    expect(routes).toHaveLength(3);
    expect(routes.every((a) => a.failover === true)).toBe(true);
    // The alarm's state is kept in the store: routes can still move while alarms cannot be read.
    expect((await store.read(lab.name)).runners.get(B1)?.health).toBe("ALARM");
  });
});

describeIf("manual resync", () => {
  it("sends nothing on a dry run and reports what it would do", async () => {
    await given(withRunner(world, A1, { state: "stopped" }));
    const report = await handler(sample("resync-dry-run"), context);
    expect(writesSent()).toBe(0);
    expect(report.dryRun).toBe(true);
    expect(report.actions.length).toBe(3);
    expect(report.actions.every((a) => a.outcome === "planned")).toBe(true);
    expect(report.findings).toEqual([]);
  });

  it("costs reads only on a converged lab", async () => {
    await given(world);
    const report = await handler(sample("resync"), context);
    expect(writesSent()).toBe(0);
    expect(report).toMatchObject({ lab: "foo", dryRun: false, actions: [], errors: [] });
  });

  it("returns its errors rather than failing, so the person who ran it sees them", async () => {
    await given(withRunner(world, A1, { state: "stopped" }));
    m.ec2
      .on(ReplaceRouteCommand)
      .rejects(Object.assign(new Error("boom"), { name: "InternalError", $fault: "server", $metadata: {} }));
    const report = await handler(sample("resync"), context);
    expect(report.errors.length).toBe(3);
  });
});

describeIf("faults", () => {
  it("carries out the other routes when one ReplaceRoute fails, then fails the invocation so Lambda retries", async () => {
    await given(withRunner(world, A1, { state: "stopped" }));
    m.ec2
      .on(ReplaceRouteCommand, { RouteTableId: tableId("eu-central-1a", 2) })
      .rejects(Object.assign(new Error("not authorized"), { name: "UnauthorizedOperation", $metadata: {} }));
    await expect(handler(sample("ec2-state-change"), context)).rejects.toThrow(
      /1 action\(s\) failed: route:rtb-0f0000000000a0002/,
    );
    expect(m.ec2).toHaveReceivedCommandTimes(ReplaceRouteCommand, 3);
  });

  it("fails the invocation when the target vanished between observe and apply, and the retry goes elsewhere", async () => {
    const w = withRunner(world, A1, { state: "stopped" });
    await given(w);
    m.ec2.on(ReplaceRouteCommand, { NetworkInterfaceId: eni(B1) }).rejects(
      Object.assign(new Error(`The networkInterface ID '${eni(B1)}' does not exist`), {
        name: "InvalidNetworkInterfaceID.NotFound",
        $metadata: {},
      }),
    );
    await expect(handler(sample("ec2-state-change"), context)).rejects.toThrow(
      /InvalidNetworkInterfaceID.NotFound/,
    );
    // Lambda's retry observes again: B1 is gone now.
    m.ec2.reset();
    await given(withRunner(w, B1, { state: "terminated", lifecycle: undefined }), { seed: false });
    const retry = await handler(sample("ec2-state-change"), context);
    expect(retry.errors).toEqual([]);
    const targets = m.ec2.commandCalls(ReplaceRouteCommand).map((c) => c.args[0].input.NetworkInterfaceId);
    expect(targets.length).toBeGreaterThan(0);
    expect(new Set(targets)).toEqual(new Set([eni(C1)]));
  });

  it("sends nothing when the instances stay unreadable past the SDK's retries, says so, and reconciles again soon", async () => {
    // The SDK's own retry of throttling is tested on the real clients in test/aws/retry.test.ts; here the
    // read still fails after it: nothing is known of the runners, so nothing is done.
    await given(withRunner(world, A1, { state: "stopped" }));
    const throttled = Object.assign(new Error("Request limit exceeded."), {
      name: "RequestLimitExceeded",
      $metadata: { httpStatusCode: 503 },
    });
    m.ec2.on(DescribeInstancesCommand).rejects(throttled);
    const report = await handler(sample("resync"), context);
    expect(writesSent()).toBe(0);
    expect(report.findings).toContainEqual(
      expect.objectContaining({
        kind: "observe-degraded",
        message: expect.stringMatching(/instances: RequestLimitExceeded/),
      }),
    );
    expect(created()).toBe(1);
    expect(JSON.parse((await pendingRequeue())?.Target?.Input ?? "{}")).toMatchObject({
      reason: "instances: read failed",
      attempt: 1,
    });
  });

  it.each([
    ["null", null],
    ["a string", "resync"],
    ["an unknown event", { source: "aws.s3", "detail-type": "Object Created", detail: {} }],
    [
      "a lifecycle action without an instance",
      { ...(sample("lifecycle-launch") as object), detail: { AutoScalingGroupName: "foo-runners" } },
    ],
    ["a manual payload with a typo", { action: "resynk", dryRun: true }],
  ])("acknowledges %s without any AWS call and says why", async (_name, event) => {
    await given(world);
    const report = await handler(event, context);
    expect(report.ignored).toBeTruthy();
    for (const mock of Object.values(m)) expect(mock.calls()).toEqual([]);
  });

  it("ignores lifecycle actions, alarms and commands of another lab without any AWS call", async () => {
    await given(world);
    const other = (name: string, patch: (e: Record<string, unknown>) => unknown) =>
      handler(patch(structuredClone(sample(name)) as Record<string, unknown>), context);
    const r1 = await other("lifecycle-launch", (e) => ({
      ...e,
      detail: { ...(e.detail as object), AutoScalingGroupName: "bar-runners" },
    }));
    const r2 = await other("alarm-state-change", (e) => ({
      ...e,
      detail: { ...(e.detail as object), alarmName: "labgate-bar-tunnel-i-0ba000000000a0001" },
    }));
    const r3 = await other("ssm-command-status", (e) => ({
      ...e,
      detail: {
        ...(e.detail as object),
        parameters: { commands: ["# labgate lab=bar kind=setup hash=0123456789abcdef"] },
      },
    }));
    for (const r of [r1, r2, r3]) expect(r.ignored).toBeTruthy();
    for (const mock of Object.values(m)) expect(mock.calls()).toEqual([]);
  });
});

describeIf("what used to stop failover for the whole lab", () => {
  const launching = (w: World): World => ({
    ...w,
    runners: [...w.runners, launchingRunner(A3, "eu-central-1a", "10.0.101.30")],
  });

  it("a runner holding a key taken out of the pool: its routes move, its VPN stops, everything else goes on", async () => {
    // A1's key was rotated out of vpn.credentials; before, rendering its setup threw and every reconcile failed.
    const w = withRunner(launching(twoPerAz), A1, { credential: "/labgate/foo/vpn/retired-1" });
    await given(w);
    const report = await handler(sample("lifecycle-launch"), context);
    expect(report.errors).toEqual([]);
    expect(m.ec2).toHaveReceivedCommandTimes(ReplaceRouteCommand, 2);
    for (const call of m.ec2.commandCalls(ReplaceRouteCommand)) {
      expect(call.args[0].input.NetworkInterfaceId).toBe(eni(A2));
    }
    const sent = m.ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
    expect(sent.map((i) => [i.InstanceIds?.[0], i.Parameters?.commands?.[0]?.split(" ")[3]])).toEqual(
      expect.arrayContaining([
        [A1, "kind=stop-vpn"],
        [A3, "kind=setup"],
      ]),
    );
    const kinds = report.actions.map((a) => String(a.kind));
    expect(kinds.indexOf("stop-vpn")).toBeGreaterThan(kinds.lastIndexOf("replace-route"));
  });

  it("a tag selector that selects no subnet yet: runners are still leased and set up, and it is reported", async () => {
    // A new lab: no runner yet, and the worker subnets are not tagged yet.
    await given(launching(convergedWorld(lab, { ...shape, runnersPerAz: 0, subnetsPerAz: 0 })));
    const report = await handler(sample("lifecycle-launch"), context);
    expect(report.errors).toEqual([]);
    expect(report.findings).toContainEqual(expect.objectContaining({ kind: "no-worker-subnets" }));
    expect(m.ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    expect(await heldBy(K(1))).toBe(A3);
  });

  it("a configured worker subnet that was deleted: the other subnets' routes still move, and it is reported", async () => {
    const w = withRunner(twoPerAz, A1, { state: "stopped" });
    const deleted = subnetId("eu-central-1a", 3);
    await given({ ...w, subnets: w.subnets.filter((x) => x.subnetId !== deleted) });
    const report = await handler(sample("ec2-state-change"), context);
    expect(report.errors).toEqual([]);
    expect(m.ec2).toHaveReceivedCommandWith(ReplaceRouteCommand, {
      RouteTableId: tableId("eu-central-1a", 1),
      NetworkInterfaceId: eni(A2),
    });
    expect(report.findings).toContainEqual(
      expect.objectContaining({ kind: "subnet-missing", subnetId: deleted }),
    );
    expect(m.ec2).toHaveReceivedCommandWith(DescribeSubnetsCommand, {
      Filters: expect.arrayContaining([expect.objectContaining({ Name: "subnet-id" })]),
    });
  });

  it("SSM throttling one runner's GetCommandInvocation: that command counts as still running, the routes still move", async () => {
    const pending = {
      kind: "setup" as const,
      // Its own setup again: one that restarts its tunnel would take B1 out of service meanwhile.
      hash: twoPerAz.runners.find((r) => r.instanceId === B1)?.appliedSetup ?? "",
      commandId: "e8d3c0e4-0c3b-4d8e-9a5f-1c2d3e4f5a06",
      status: "pending" as const,
      sentAt: 0,
    };
    const w = withRunner(withRunner(twoPerAz, A1, { state: "stopped" }), B1, { command: pending });
    await given(w);
    m.ssm.on(GetCommandInvocationCommand).rejects(
      Object.assign(new Error("Rate exceeded"), {
        name: "ThrottlingException",
        $metadata: { httpStatusCode: 400 },
      }),
    );
    const report = await handler(sample("ec2-state-change"), context);
    expect(report.errors).toEqual([]);
    expect(m.ec2).toHaveReceivedCommandTimes(ReplaceRouteCommand, 2);
    // Nothing is sent to B1 or recorded of its command while its outcome is unknown.
    expect(report.actions.filter((a) => a.instanceId === B1 && a.kind !== "mirror-tags")).toEqual([]);
  });

  it("two runners whose tags (an older version's) name the same key: one keeps it, the other is drained and stops its VPN", async () => {
    // Before the store, both stayed eligible forever and kept their routes.
    const w = withRunner(twoPerAz, A2, {
      recorded: false,
      credential: undefined,
      mirror: { ...mirrorOf(twoPerAz, A1) },
    });
    const legacy: World = {
      ...w,
      runners: w.runners.map((r) => ({
        ...r,
        recorded: false,
        credential: undefined,
        appliedSetup: undefined,
        command: undefined,
      })),
    };
    await given(legacy, { seed: false });
    const report = await handler(sample("resync"), context);
    expect(report.errors).toEqual([]);
    expect(report.findings).toContainEqual(
      expect.objectContaining({ kind: "credential-conflict", instanceId: A2 }),
    );
    // A1 carries routes: it keeps the key; A2's routes (if any) move, then A2 stops the VPN it may run with it.
    expect(await heldBy(K(1))).toBe(A1);
    const stops = m.ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
    expect(stops.map((i) => i.InstanceIds)).toEqual([[A2]]);
    expect(stops[0]?.Parameters?.commands?.[0]).toMatch(/kind=stop-vpn/);
  });
});

describeIf("configuration", () => {
  it("fails the cold start with the field and the reason when the configuration is invalid", async () => {
    vi.resetModules();
    vi.stubEnv("LABGATE_CONFIG", JSON.stringify({ ...lab, intranetCidrs: ["172.17.0.0/16"] }));
    await expect(import("../../functions/reconcile/handler.ts")).rejects.toThrow(
      /intranetCidrs\.0: 172\.17\.0\.0\/16 overlaps Docker's default bridge/,
    );
    vi.stubEnv("LABGATE_CONFIG", JSON.stringify(lab));
  });
});

describeIf("tunnel report (a runner's tag change)", () => {
  /** The sample event, its report made just now (the handler reads the clock; a report counts while recent). */
  const reported = (state: "up" | "down") => {
    const event = sample("tag-change-tunnel") as { detail: { tags: Record<string, string> } };
    event.detail.tags["labgate:tunnel"] = formatTunnelReport({ state, at: Date.now() - 2_000 });
    return event;
  };

  it("fails the reporting runner over at once, though EC2 does not show its tag yet", async () => {
    // EC2's DescribeInstances still shows B1 without the report: only the event carries it.
    await given(world);
    const report = await handler(reported("down"), context);
    expect(report.trigger).toBe(`tunnel report ${B1} down`);
    expect(m.ec2).toHaveReceivedCommandTimes(ReplaceRouteCommand, 3);
    const targets = m.ec2.commandCalls(ReplaceRouteCommand).map((c) => c.args[0].input.NetworkInterfaceId);
    expect(new Set(targets)).toEqual(new Set([eni(A1), eni(C1)]));
    expect(report.actions.every((a) => a.kind === "replace-route" && a.failover === true)).toBe(true);
  });

  it("reads the report back from the tag in a container that never saw the event (level-triggered)", async () => {
    await given(withRunner(world, B1, { tunnelReport: { state: "down", at: Date.now() - 5_000 } }));
    const fresh = await newContainer();
    const report = await fresh(sample("scheduled"), context);
    expect(m.ec2).toHaveReceivedCommandTimes(ReplaceRouteCommand, 3);
    expect(report.actions.filter((a) => a.kind === "replace-route")).toHaveLength(3);
  });

  it("moves nothing on an up report, and ignores another lab's runner's report without a call", async () => {
    await given(world);
    expect((await handler(reported("up"), context)).actions).toEqual([]);
    expect(writesSent()).toBe(0);
    for (const mock of Object.values(m)) mock.resetHistory();
    const foreign = reported("down");
    foreign.detail.tags["aws:autoscaling:groupName"] = "bar-runners";
    const ignored = await handler(foreign, context);
    expect(ignored.ignored).toMatch(/is in group bar-runners, not foo-runners/);
    for (const mock of Object.values(m)) expect(mock.calls()).toEqual([]);
  });
});
