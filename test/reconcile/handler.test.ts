import "aws-sdk-client-mock-vitest/extend";
// The reconcile handler over the real event samples in events/, against mocked AWS clients that describe a
// known world: asserts the exact commands sent for each event, and that nothing is sent when nothing must be.
import { readFileSync } from "node:fs";
import { CompleteLifecycleActionCommand } from "@aws-sdk/client-auto-scaling";
import { PutMetricAlarmCommand } from "@aws-sdk/client-cloudwatch";
import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  ModifyInstanceAttributeCommand,
  ReplaceRouteCommand,
} from "@aws-sdk/client-ec2";
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { InvalidInstanceId, SendCommandCommand } from "@aws-sdk/client-ssm";
import type { Context } from "aws-lambda";
import { beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { forgetRecentTags } from "../../functions/aws/recent-tags.ts";
import type { World } from "../../functions/core/world.ts";
import { launchingRunner } from "../../functions/local/model.ts";
import {
  convergedWorld,
  labNamed,
  runnerId,
  tableId,
  withPool,
  withRunner,
} from "../../functions/local/sample-world.ts";
import type { Report } from "../../functions/reconcile/reconcile.ts";
import { answerWith, mocks } from "../support/aws-world.ts";

const lab = withPool(labNamed("foo"), 8);
const shape = { azs: ["eu-central-1a", "eu-central-1b", "eu-central-1c"], runnersPerAz: 1, subnetsPerAz: 3 };
const world = convergedWorld(lab, shape);
const A1 = runnerId("eu-central-1a", 1);
const A3 = runnerId("eu-central-1a", 3);
const B1 = runnerId("eu-central-1b", 1);
const C1 = runnerId("eu-central-1c", 1);
const CIDR = "10.200.0.0/16";
const eni = (id: string): string => `eni-${id.slice(2)}`;

const sample = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../events/${name}.json`, import.meta.url), "utf8"));
const context = {
  functionName: "labgate-foo",
  awsRequestId: "req-1",
  getRemainingTimeInMillis: () => 60_000,
} as unknown as Context;

/** Two runners per AZ, so that a failover stays in the AZ. */
const twoPerAz: World = convergedWorld(lab, { ...shape, runnersPerAz: 2 });

const REQUEUE_URL = "https://sqs.eu-central-1.amazonaws.com/123456789012/labgate-production-foo-requeue";
let handler: (event: unknown, context: Context) => Promise<Report>;
const m = mocks();

beforeAll(async () => {
  vi.stubEnv("LABGATE_CONFIG", JSON.stringify(lab));
  vi.stubEnv("LABGATE_REQUEUE_URL", REQUEUE_URL);
  vi.stubEnv("POWERTOOLS_LOG_LEVEL", "SILENT");
  vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "true");
  ({ handler } = await import("../../functions/reconcile/handler.ts"));
});

beforeEach(() => {
  for (const mock of Object.values(m)) mock.reset();
  forgetRecentTags();
});

const writesSent = (): number =>
  m.ec2.commandCalls(ReplaceRouteCommand).length +
  m.ec2.commandCalls(CreateTagsCommand).length +
  m.ec2.commandCalls(ModifyInstanceAttributeCommand).length +
  m.ssm.commandCalls(SendCommandCommand).length +
  m.asg.commandCalls(CompleteLifecycleActionCommand).length +
  m.cw.commandCalls(PutMetricAlarmCommand).length;

describe("EC2 state change", () => {
  it("moves the routes of a stopping runner to the other runner of its AZ", async () => {
    // The sample says A1 is stopping; two runners in AZ a, A1 carries subnets 1 and 3.
    const w = withRunner(convergedWorld(lab, { ...shape, runnersPerAz: 2, subnetsPerAz: 2 }), A1, {
      state: "stopping",
    });
    answerWith(m, w, lab);
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
    answerWith(m, world, lab);
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

describe("lifecycle", () => {
  const launching = (w: World): World => ({
    ...w,
    runners: [...w.runners, launchingRunner(A3, "eu-central-1a", "10.0.101.30")],
  });

  it("leases a credential to a launching runner, disables its check and pushes its setup, without completing yet", async () => {
    answerWith(m, launching(world), lab);
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
    expect(report.actions.map((a) => a.kind)).toEqual([
      "disable-source-dest-check",
      "lease-credential",
      "push-setup",
    ]);
    expect(report.actions.every((a) => a.outcome === "done")).toBe(true);
    // The script is long and named by its hash: it stays out of the report.
    expect(report.actions[2]).not.toHaveProperty("script");
  });

  it("completes the launch hook with CONTINUE once SSM reports the setup succeeded", async () => {
    answerWith(m, launching(world), lab);
    await handler(sample("lifecycle-launch"), context);
    const send = m.ssm.commandCalls(SendCommandCommand)[0]?.args[0].input;
    const hash = send?.Parameters?.commands?.[0]?.split("hash=")[1] ?? "";
    const afterPush = withRunner(launching(world), A3, {
      sourceDestCheck: false,
      credential: "/labgate/foo/vpn/client-4",
      command: {
        kind: "setup",
        hash,
        commandId: "e8d3c0e4-0c3b-4d8e-9a5f-1c2d3e4f5a06",
        status: "pending",
        sentAt: 0,
      },
      commandOutcome: "success",
    });
    m.ec2.reset();
    m.ssm.reset();
    forgetRecentTags(); // this test plays EC2 having caught up: the world below holds the tags written
    answerWith(m, afterPush, lab);
    const report = await handler(sample("ssm-command-status"), context);
    expect(m.asg).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      AutoScalingGroupName: "foo-runners",
      LifecycleHookName: "labgate-launch",
      InstanceId: A3,
      LifecycleActionResult: "CONTINUE",
    });
    expect(m.ec2).toHaveReceivedCommandWith(CreateTagsCommand, {
      Resources: [A3],
      Tags: expect.arrayContaining([{ Key: "labgate:setup", Value: hash }]),
    });
    expect(m.ssm).toHaveReceivedCommandTimes(SendCommandCommand, 0);
    expect(report.errors).toEqual([]);
  });

  it("moves a terminating runner's routes away, then stops its VPN, and holds the hook", async () => {
    const w = withRunner(twoPerAz, A1, { lifecycle: "Terminating:Wait" });
    answerWith(m, w, lab);
    const report = await handler(sample("lifecycle-terminate"), context);
    const a2 = runnerId("eu-central-1a", 2);
    // A1 carries subnets 1 and 3 of AZ a.
    expect(m.ec2).toHaveReceivedCommandTimes(ReplaceRouteCommand, 2);
    for (const n of [1, 3]) {
      expect(m.ec2).toHaveReceivedCommandWith(ReplaceRouteCommand, {
        RouteTableId: tableId("eu-central-1a", n),
        DestinationCidrBlock: CIDR,
        NetworkInterfaceId: eni(a2),
      });
    }
    const send = m.ssm.commandCalls(SendCommandCommand)[0]?.args[0].input;
    expect(send?.InstanceIds).toEqual([A1]);
    expect(send?.Parameters?.commands?.[0]).toMatch(/^# labgate lab=foo kind=stop-vpn /);
    expect(m.asg).toHaveReceivedCommandTimes(CompleteLifecycleActionCommand, 0);
    expect(report.actions.map((a) => a.kind)).toEqual(["replace-route", "replace-route", "stop-vpn"]);
  });

  it("never leases one credential twice when EC2 has not caught up with its own tags yet", async () => {
    answerWith(m, launching(world), lab);
    await handler(sample("lifecycle-launch"), context);
    expect(m.ec2).toHaveReceivedCommandWith(CreateTagsCommand, {
      Resources: [A3],
      Tags: [{ Key: "labgate:credential", Value: "/labgate/foo/vpn/client-4" }],
    });
    // A moment later another runner launches, and DescribeInstances does not show A3's tags yet.
    const A2 = runnerId("eu-central-1a", 2);
    const stale = launching(world);
    const another = {
      ...(stale.runners.at(-1) as World["runners"][number]),
      instanceId: A2,
      eniId: eni(A2),
      privateIp: "10.0.101.20",
    };
    m.ec2.reset();
    m.ssm.reset();
    answerWith(m, { ...stale, runners: [...stale.runners, another] }, lab);
    await handler(sample("lifecycle-launch"), context);
    const leases = m.ec2
      .commandCalls(CreateTagsCommand)
      .map((c) => c.args[0].input)
      .filter((i) => i.Tags?.some((t) => t.Key === "labgate:credential"));
    expect(leases).toEqual([
      { Resources: [A2], Tags: [{ Key: "labgate:credential", Value: "/labgate/foo/vpn/client-5" }] },
    ]);
  });

  it("asks for another reconcile in 30 s when a launching runner's SSM agent is not registered yet", async () => {
    answerWith(m, launching(world), lab);
    m.ssm
      .on(SendCommandCommand)
      .rejects(
        new InvalidInstanceId({ message: "Instances not in a valid state for account", $metadata: {} }),
      );
    const report = await handler(sample("lifecycle-launch"), context);
    expect(report.errors).toEqual([]);
    expect(report.actions.find((a) => a.kind === "push-setup")?.outcome).toBe("deferred");
    expect(m.sqs).toHaveReceivedCommandTimes(SendMessageCommand, 1);
    const sent = m.sqs.commandCalls(SendMessageCommand)[0]?.args[0].input;
    expect(sent).toMatchObject({ QueueUrl: REQUEUE_URL, DelaySeconds: 30 });
    expect(JSON.parse(sent?.MessageBody ?? "{}")).toEqual({ reason: `push-setup:${A3} deferred` });
  });

  it("reconciles when its requeue message comes back, and asks for nothing more once the setup went out", async () => {
    answerWith(m, launching(world), lab);
    const report = await handler(sample("sqs-requeue"), context);
    expect(report.trigger).toBe(`requeue (push-setup:${A3} deferred)`);
    expect(m.ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    expect(m.sqs).toHaveReceivedCommandTimes(SendMessageCommand, 0);
  });

  it("treats an already completed hook as done", async () => {
    const w = withRunner(world, A1, { lifecycle: "Terminating:Wait", state: "stopped" });
    answerWith(m, w, lab);
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

describe("alarm state change", () => {
  it("fails a runner over to another AZ when its tunnel health alarm is in ALARM", async () => {
    answerWith(m, withRunner(world, B1, { healthAlarm: "ALARM" }), lab);
    const report = await handler(sample("alarm-state-change"), context);
    expect(m.ec2).toHaveReceivedCommandTimes(ReplaceRouteCommand, 3);
    const targets = m.ec2.commandCalls(ReplaceRouteCommand).map((c) => c.args[0].input.NetworkInterfaceId);
    expect(new Set(targets)).toEqual(new Set([eni(A1), eni(C1)]));
    expect(report.actions.every((a) => a.failover === true)).toBe(true);
  });
});

describe("manual resync", () => {
  it("sends nothing on a dry run and reports what it would do", async () => {
    answerWith(m, withRunner(world, A1, { state: "stopped" }), lab);
    const report = await handler(sample("resync-dry-run"), context);
    expect(writesSent()).toBe(0);
    expect(report.dryRun).toBe(true);
    expect(report.actions.length).toBe(3);
    expect(report.actions.every((a) => a.outcome === "planned")).toBe(true);
    expect(report.findings).toEqual([]);
  });

  it("costs reads only on a converged lab", async () => {
    answerWith(m, world, lab);
    const report = await handler(sample("resync"), context);
    expect(writesSent()).toBe(0);
    expect(report).toMatchObject({ lab: "foo", dryRun: false, actions: [], errors: [] });
  });

  it("returns its errors rather than failing, so the person who ran it sees them", async () => {
    answerWith(m, withRunner(world, A1, { state: "stopped" }), lab);
    m.ec2
      .on(ReplaceRouteCommand)
      .rejects(Object.assign(new Error("boom"), { name: "InternalError", $fault: "server", $metadata: {} }));
    const report = await handler(sample("resync"), context);
    expect(report.errors.length).toBe(3);
  });
});

describe("faults", () => {
  it("carries out the other routes when one ReplaceRoute fails, then fails the invocation so Lambda retries", async () => {
    answerWith(m, withRunner(world, A1, { state: "stopped" }), lab);
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
    answerWith(m, w, lab);
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
    answerWith(m, withRunner(w, B1, { state: "terminated", lifecycle: undefined }), lab);
    const retry = await handler(sample("ec2-state-change"), context);
    expect(retry.errors).toEqual([]);
    const targets = m.ec2.commandCalls(ReplaceRouteCommand).map((c) => c.args[0].input.NetworkInterfaceId);
    expect(targets.length).toBeGreaterThan(0);
    expect(new Set(targets)).toEqual(new Set([eni(C1)]));
  });

  it("sends nothing when a read stays throttled past the SDK's retries, and fails so that Lambda retries", async () => {
    // The SDK's own retry of throttling is tested on the real clients in test/aws/retry.test.ts; here the
    // read still fails after it, and the reconcile must not act on half a world.
    answerWith(m, withRunner(world, A1, { state: "stopped" }), lab);
    const throttled = Object.assign(new Error("Request limit exceeded."), {
      name: "RequestLimitExceeded",
      $metadata: { httpStatusCode: 503 },
    });
    m.ec2.on(DescribeInstancesCommand).rejects(throttled);
    await expect(handler(sample("resync"), context)).rejects.toThrow(/Request limit exceeded/);
    expect(writesSent()).toBe(0);
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
    answerWith(m, world, lab);
    const report = await handler(event, context);
    expect(report.ignored).toBeTruthy();
    for (const mock of Object.values(m)) expect(mock.calls()).toEqual([]);
  });

  it("ignores lifecycle actions, alarms and commands of another lab without any AWS call", async () => {
    answerWith(m, world, lab);
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

describe("configuration", () => {
  it("fails the cold start with the field and the reason when the configuration is invalid", async () => {
    vi.resetModules();
    vi.stubEnv("LABGATE_CONFIG", JSON.stringify({ ...lab, intranetCidrs: ["172.17.0.0/16"] }));
    await expect(import("../../functions/reconcile/handler.ts")).rejects.toThrow(
      /intranetCidrs\.0: 172\.17\.0\.0\/16 overlaps Docker's default bridge/,
    );
    vi.stubEnv("LABGATE_CONFIG", JSON.stringify(lab));
  });
});
