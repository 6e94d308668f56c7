import "aws-sdk-client-mock-vitest/extend";
import { AutoScalingClient, CompleteLifecycleActionCommand } from "@aws-sdk/client-auto-scaling";
import { CloudWatchClient, DeleteAlarmsCommand, PutMetricAlarmCommand } from "@aws-sdk/client-cloudwatch";
import {
  CreateRouteCommand,
  CreateTagsCommand,
  DeleteTagsCommand,
  EC2Client,
  ModifyInstanceAttributeCommand,
  ReplaceRouteCommand,
} from "@aws-sdk/client-ec2";
import {
  AddTagsToResourceCommand,
  InvalidInstanceId,
  ListTagsForResourceCommand,
  SendCommandCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { type AwsStub, mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { apply } from "../../functions/aws/apply.ts";
import { ApplyError } from "../../functions/aws/errors.ts";
import type { Action } from "../../functions/core/actions.ts";
import { MemoryStore } from "../../functions/local/memory-store.ts";
import {
  A1,
  A3,
  B1,
  CIDR,
  COMMAND_A3,
  eni,
  foo,
  NEW_SETUP_HASH,
  NOW,
  STOP_HASH,
  TABLE_A,
  TABLE_C,
} from "./fixtures.ts";

const ec2 = mockClient(EC2Client);
const autoScaling = mockClient(AutoScalingClient);
const ssm = mockClient(SSMClient);
const cloudWatch = mockClient(CloudWatchClient);
const log = { info: vi.fn(), warn: vi.fn() };
let store: MemoryStore;

beforeEach(() => {
  store = new MemoryStore();
  for (const mock of [ec2, autoScaling, ssm, cloudWatch]) mock.reset();
  log.info.mockReset();
  log.warn.mockReset();
  vi.spyOn(Date, "now").mockReturnValue(NOW);
});

afterEach(() => {
  vi.restoreAllMocks();
});

const base = { id: "a-1", after: [], reason: "test" } as const;

// biome-ignore lint/suspicious/noExplicitAny: the stub's input and output types differ per client
type AnyStub = AwsStub<any, any, any>;

/** Every command a client received, in order, as [command name, exact input]. */
const sent = (mock: AnyStub): Array<[string, unknown]> =>
  mock.calls().map((call) => {
    const command = call.args[0] as { constructor: { name: string }; input: unknown };
    return [command.constructor.name, command.input];
  });

const awsError = (name: string, message: string, status = 400) =>
  Object.assign(new Error(message), { name, $fault: "client", $metadata: { httpStatusCode: status } });

const setupScript = "#!/bin/bash\nset -euo pipefail\necho setup\n";

describe("apply carries out each kind of action with exactly one expected request", () => {
  it("turns off the source/destination check of a runner", async () => {
    ec2.on(ModifyInstanceAttributeCommand).resolves({});

    await expect(
      apply({ ...base, kind: "disable-source-dest-check", instanceId: A3 }, foo, { store, log }),
    ).resolves.toEqual({
      status: "done",
    });

    expect(sent(ec2)).toEqual([
      ["ModifyInstanceAttributeCommand", { InstanceId: A3, SourceDestCheck: { Value: false } }],
    ]);
  });

  it("leases a credential in the store, then mirrors it in the runner's tag", async () => {
    ec2.on(CreateTagsCommand).resolves({});

    await apply(
      { ...base, kind: "lease-credential", instanceId: A3, parameter: "/labgate/foo/vpn/client-3" },
      foo,
      { store, log },
    );

    expect((await store.read("foo")).leases.get("/labgate/foo/vpn/client-3")).toEqual({
      holder: A3,
      since: NOW,
    });
    expect(sent(ec2)).toEqual([
      [
        "CreateTagsCommand",
        { Resources: [A3], Tags: [{ Key: "labgate:credential", Value: "/labgate/foo/vpn/client-3" }] },
      ],
    ]);
  });

  it("defers a lease the store refuses (another reconcile leased the key first), tagging nothing", async () => {
    await store.lease("foo", "/labgate/foo/vpn/client-3", A1, NOW);

    await expect(
      apply(
        { ...base, kind: "lease-credential", instanceId: A3, parameter: "/labgate/foo/vpn/client-3" },
        foo,
        { store, log },
      ),
    ).resolves.toMatchObject({ status: "deferred", why: expect.stringMatching(/held by/) });
    expect(sent(ec2)).toEqual([]);
  });

  it("keeps a lease when only its mirror tag could not be written, and says so", async () => {
    ec2.on(CreateTagsCommand).rejects(awsError("RequestLimitExceeded", "Request limit exceeded.", 503));

    await expect(
      apply(
        { ...base, kind: "lease-credential", instanceId: A3, parameter: "/labgate/foo/vpn/client-3" },
        foo,
        { store, log },
      ),
    ).resolves.toEqual({ status: "done" });
    expect((await store.read("foo")).leases.get("/labgate/foo/vpn/client-3")?.holder).toBe(A3);
    expect(log.warn).toHaveBeenCalledWith(
      expect.stringMatching(/could not mirror/),
      expect.objectContaining({ instanceId: A3 }),
    );
  });

  it("releases a credential only if the runner holds it, and removes its mirror tag", async () => {
    ec2.on(DeleteTagsCommand).resolves({});
    await store.lease("foo", "/labgate/foo/vpn/client-1", B1, NOW);

    await apply(
      { ...base, kind: "release-credential", instanceId: A1, parameter: "/labgate/foo/vpn/client-1" },
      foo,
      { store, log },
    );

    expect((await store.read("foo")).leases.get("/labgate/foo/vpn/client-1")?.holder).toBe(B1);
    expect(sent(ec2)).toEqual([
      ["DeleteTagsCommand", { Resources: [A1], Tags: [{ Key: "labgate:credential" }] }],
    ]);
  });

  it("records the intent in the store, sends the setup with the lab's marker first, then records it as pending", async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: COMMAND_A3 } });
    ec2.on(CreateTagsCommand).resolves({});
    await store.lease("foo", "/labgate/foo/vpn/client-3", A3, NOW);

    await expect(
      apply(
        {
          ...base,
          kind: "push-setup",
          instanceId: A3,
          hash: NEW_SETUP_HASH,
          credential: "/labgate/foo/vpn/client-3",
          expected: { commandId: undefined },
          script: setupScript,
        },
        foo,
        { store, log },
      ),
    ).resolves.toEqual({ status: "done" });

    expect(sent(ssm)).toEqual([
      [
        "SendCommandCommand",
        {
          DocumentName: "AWS-RunShellScript",
          InstanceIds: [A3],
          Parameters: {
            commands: [`# labgate lab=foo kind=setup hash=${NEW_SETUP_HASH}`, setupScript],
            executionTimeout: ["900"],
          },
          TimeoutSeconds: 600,
          Comment: `labgate foo setup ${NEW_SETUP_HASH}`,
        },
      ],
    ]);
    expect((await store.read("foo")).runners.get(A3)?.command).toEqual({
      kind: "setup",
      hash: NEW_SETUP_HASH,
      commandId: COMMAND_A3,
      status: "pending",
      sentAt: NOW,
    });
    expect(sent(ec2)).toEqual([
      [
        "CreateTagsCommand",
        {
          Resources: [A3],
          Tags: [{ Key: "labgate:command", Value: `setup ${NEW_SETUP_HASH} ${COMMAND_A3} pending ${NOW}` }],
        },
      ],
    ]);
  });

  it("never sends a setup for a key the runner no longer holds in the store", async () => {
    await expect(
      apply(
        {
          ...base,
          kind: "push-setup",
          instanceId: A3,
          hash: NEW_SETUP_HASH,
          credential: "/labgate/foo/vpn/client-3",
          expected: { commandId: undefined },
          script: setupScript,
        },
        foo,
        { store, log },
      ),
    ).resolves.toMatchObject({ status: "deferred" });
    expect(sent(ssm)).toEqual([]);
  });

  it("sends the stop-vpn script the same way, marked as stop-vpn", async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: COMMAND_A3 } });
    ec2.on(CreateTagsCommand).resolves({});

    await apply(
      {
        ...base,
        kind: "stop-vpn",
        instanceId: A1,
        hash: STOP_HASH,
        expected: { commandId: undefined },
        script: "nmcli c down labgate-foo\n",
      },
      foo,
      { store, log },
    );

    expect(ssm).toHaveReceivedCommandExactlyOnceWith(SendCommandCommand, {
      Parameters: {
        commands: [`# labgate lab=foo kind=stop-vpn hash=${STOP_HASH}`, "nmcli c down labgate-foo\n"],
        executionTimeout: ["900"],
      },
      Comment: `labgate foo stop-vpn ${STOP_HASH}`,
    });
    expect(ec2).toHaveReceivedCommandExactlyOnceWith(CreateTagsCommand, {
      Resources: [A1],
      Tags: [{ Key: "labgate:command", Value: `stop-vpn ${STOP_HASH} ${COMMAND_A3} pending ${NOW}` }],
    });
  });

  it("records a finished setup and its hash as the applied setup, then mirrors both in one request", async () => {
    ec2.on(CreateTagsCommand).resolves({});
    await store.lease("foo", "/labgate/foo/vpn/client-3", A3, NOW);
    await store.beginCommand(
      "foo",
      A3,
      { kind: "setup", hash: NEW_SETUP_HASH, sentAt: NOW },
      undefined,
      undefined,
    );
    const pending = {
      kind: "setup",
      hash: NEW_SETUP_HASH,
      commandId: COMMAND_A3,
      status: "pending",
      sentAt: NOW,
    } as const;
    await store.commandSent("foo", A3, pending);
    const record = { ...pending, status: "success" } as const;

    await apply(
      { ...base, kind: "record-command", instanceId: A3, record, appliedSetup: NEW_SETUP_HASH },
      foo,
      { store, log },
    );

    expect((await store.read("foo")).runners.get(A3)).toMatchObject({
      appliedSetup: NEW_SETUP_HASH,
      command: record,
    });
    expect(sent(ec2)).toEqual([
      [
        "CreateTagsCommand",
        {
          Resources: [A3],
          Tags: [
            { Key: "labgate:command", Value: `setup ${NEW_SETUP_HASH} ${COMMAND_A3} success ${NOW}` },
            { Key: "labgate:setup", Value: NEW_SETUP_HASH },
          ],
        },
      ],
    ]);
  });

  it("takes the outcome of a command that is no longer the runner's latest as history", async () => {
    const record = {
      kind: "setup",
      hash: NEW_SETUP_HASH,
      commandId: COMMAND_A3,
      status: "failed",
      sentAt: NOW,
    } as const;

    await expect(
      apply({ ...base, kind: "record-command", instanceId: A3, record, appliedSetup: undefined }, foo, {
        store,
        log,
      }),
    ).resolves.toEqual({ status: "done" });
    expect((await store.read("foo")).runners.get(A3)).toBeUndefined();
    expect(sent(ec2)).toEqual([]);
  });

  it("creates a missing route to the runner's primary interface", async () => {
    ec2.on(CreateRouteCommand).resolves({ Return: true });

    await apply(
      {
        ...base,
        kind: "create-route",
        routeTableId: TABLE_C,
        cidr: CIDR,
        target: { instanceId: B1, eniId: eni(B1) },
        previous: undefined,
        failover: false,
      },
      foo,
      { store, log },
    );

    expect(sent(ec2)).toEqual([
      [
        "CreateRouteCommand",
        { RouteTableId: TABLE_C, DestinationCidrBlock: CIDR, NetworkInterfaceId: eni(B1) },
      ],
    ]);
  });

  it("replaces a route to point at another runner", async () => {
    ec2.on(ReplaceRouteCommand).resolves({});

    await apply(
      {
        ...base,
        kind: "replace-route",
        routeTableId: TABLE_A,
        cidr: CIDR,
        target: { instanceId: A3, eniId: eni(A3) },
        previous: A1,
        failover: true,
      },
      foo,
      { store, log },
    );

    expect(sent(ec2)).toEqual([
      [
        "ReplaceRouteCommand",
        { RouteTableId: TABLE_A, DestinationCidrBlock: CIDR, NetworkInterfaceId: eni(A3) },
      ],
    ]);
  });

  it("completes a lifecycle hook with the planned result", async () => {
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});

    await apply(
      { ...base, kind: "complete-lifecycle", instanceId: A1, hook: "labgate-terminate", result: "CONTINUE" },
      foo,
      { store, log },
    );

    expect(sent(autoScaling)).toEqual([
      [
        "CompleteLifecycleActionCommand",
        {
          AutoScalingGroupName: "foo-runners",
          LifecycleHookName: "labgate-terminate",
          InstanceId: A1,
          LifecycleActionResult: "CONTINUE",
        },
      ],
    ]);
  });

  it("puts a tunnel health alarm that fires after two unhealthy or silent minutes", async () => {
    cloudWatch.on(PutMetricAlarmCommand).resolves({});

    await apply(
      { ...base, kind: "put-health-alarm", instanceId: A3, alarmName: `labgate-foo-tunnel-${A3}` },
      foo,
      { store, log },
    );

    expect(sent(cloudWatch)).toEqual([
      [
        "PutMetricAlarmCommand",
        {
          AlarmName: `labgate-foo-tunnel-${A3}`,
          AlarmDescription: `labgate foo: tunnel of runner ${A3} is down or the lab's DNS does not answer`,
          Namespace: "labgate/foo",
          MetricName: "TunnelHealthy",
          Dimensions: [
            { Name: "Lab", Value: "foo" },
            { Name: "InstanceId", Value: A3 },
          ],
          Statistic: "Minimum",
          Period: 10,
          EvaluationPeriods: 3,
          DatapointsToAlarm: 3,
          Threshold: 1,
          ComparisonOperator: "LessThanThreshold",
          TreatMissingData: "breaching",
          Tags: [{ Key: "labgate:lab", Value: "foo" }],
        },
      ],
    ]);
  });

  it("deletes health alarms in batches of 100", async () => {
    cloudWatch.on(DeleteAlarmsCommand).resolves({});
    const names = Array.from(
      { length: 201 },
      (_, i) => `labgate-foo-tunnel-i-0f000000000${String(i).padStart(6, "0")}`,
    );

    await apply({ ...base, kind: "delete-health-alarms", alarmNames: names }, foo, { store, log });

    expect(sent(cloudWatch)).toEqual([
      ["DeleteAlarmsCommand", { AlarmNames: names.slice(0, 100) }],
      ["DeleteAlarmsCommand", { AlarmNames: names.slice(100, 200) }],
      ["DeleteAlarmsCommand", { AlarmNames: names.slice(200) }],
    ]);
  });
});

describe("apply under faults", () => {
  const replace: Action = {
    ...base,
    kind: "replace-route",
    routeTableId: TABLE_A,
    cidr: CIDR,
    target: { instanceId: A3, eniId: eni(A3) },
    previous: A1,
    failover: true,
  };
  const create: Action = { ...replace, kind: "create-route", previous: undefined, failover: false };
  const route = { RouteTableId: TABLE_A, DestinationCidrBlock: CIDR, NetworkInterfaceId: eni(A3) };

  it("creates the route when the route to replace was deleted meanwhile", async () => {
    ec2
      .on(ReplaceRouteCommand)
      .rejects(
        awsError(
          "InvalidRoute.NotFound",
          `no route with destination-cidr-block ${CIDR} in route table ${TABLE_A}`,
        ),
      )
      .on(CreateRouteCommand)
      .resolves({ Return: true });

    await expect(apply(replace, foo, { store, log })).resolves.toEqual({ status: "done" });

    expect(sent(ec2)).toEqual([
      ["ReplaceRouteCommand", route],
      ["CreateRouteCommand", route],
    ]);
  });

  // EC2 answers a replacement of a missing route with InvalidParameterValue (test/aws/apply.moto.test.ts
  // shows the fallback on it); any other invalid parameter is a failure, not a reason to create.
  it("fails, creating nothing, on an invalid parameter of a replacement other than a missing route", async () => {
    ec2
      .on(ReplaceRouteCommand)
      .rejects(awsError("InvalidParameterValue", "Value (10.200.0.0/33) is invalid"));

    await expect(apply(replace, foo, { store, log })).rejects.toBeInstanceOf(ApplyError);

    expect(ec2).not.toHaveReceivedCommand(CreateRouteCommand);
  });

  it("replaces the route when the route to create appeared meanwhile", async () => {
    ec2
      .on(CreateRouteCommand)
      .rejects(awsError("RouteAlreadyExists", `The route identified by ${CIDR} already exists.`))
      .on(ReplaceRouteCommand)
      .resolves({});

    await expect(apply(create, foo, { store, log })).resolves.toEqual({ status: "done" });

    expect(sent(ec2)).toEqual([
      ["CreateRouteCommand", route],
      ["ReplaceRouteCommand", route],
    ]);
  });

  it("fails with an ApplyError naming the action when the target runner vanished before the route moved", async () => {
    const gone = awsError(
      "InvalidNetworkInterfaceID.NotFound",
      `The networkInterface ID '${eni(A3)}' does not exist`,
    );
    ec2.on(ReplaceRouteCommand).rejects(gone);

    const error = await apply(replace, foo, { store, log }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ApplyError);
    expect(error).toMatchObject({
      name: "ApplyError",
      actionId: "a-1",
      cause: gone,
      message: expect.stringMatching(/^replace-route a-1 .*InvalidNetworkInterfaceID\.NotFound/),
    });
    expect(ec2).not.toHaveReceivedCommand(CreateRouteCommand);
  });

  it("takes a lifecycle hook completed already (a repeated event) as done", async () => {
    autoScaling
      .on(CompleteLifecycleActionCommand)
      .rejects(awsError("ValidationError", `No active Lifecycle Action found with instance ID ${A1}`));

    await expect(
      apply(
        {
          ...base,
          kind: "complete-lifecycle",
          instanceId: A1,
          hook: "labgate-terminate",
          result: "CONTINUE",
        },
        foo,
        { store, log },
      ),
    ).resolves.toEqual({ status: "done" });

    expect(log.info).toHaveBeenCalledWith("lifecycle action already completed or timed out", {
      actionId: "a-1",
      instanceId: A1,
      hook: "labgate-terminate",
    });
  });

  it("fails on any other validation error of a lifecycle hook", async () => {
    autoScaling
      .on(CompleteLifecycleActionCommand)
      .rejects(
        awsError("ValidationError", "No Lifecycle Hook named labgate-terminate found for group foo-runners"),
      );

    await expect(
      apply(
        {
          ...base,
          kind: "complete-lifecycle",
          instanceId: A1,
          hook: "labgate-terminate",
          result: "CONTINUE",
        },
        foo,
        { store, log },
      ),
    ).rejects.toBeInstanceOf(ApplyError);
  });

  it("defers a setup while the runner's SSM agent is not registered, dropping its intent", async () => {
    ssm
      .on(SendCommandCommand)
      .rejects(new InvalidInstanceId({ $metadata: { httpStatusCode: 400 }, message: "" }));
    await store.lease("foo", "/labgate/foo/vpn/client-3", A3, NOW);

    await expect(
      apply(
        {
          ...base,
          kind: "push-setup",
          instanceId: A3,
          hash: NEW_SETUP_HASH,
          credential: "/labgate/foo/vpn/client-3",
          expected: { commandId: undefined },
          script: setupScript,
        },
        foo,
        { store, log },
      ),
    ).resolves.toEqual({ status: "deferred", why: `the SSM agent of ${A3} is not registered yet` });

    expect(ec2).not.toHaveReceivedAnyCommand();
    const stored = (await store.read("foo")).runners.get(A3);
    expect(stored?.sending).toBeUndefined();
    expect(stored?.command).toBeUndefined();
  });

  it("names the holder on the credential's parameter before the setup goes out, and sends nothing when it cannot", async () => {
    const account = { partition: "aws", region: "eu-central-1", account: "123456789012" };
    await store.lease("foo", "/labgate/foo/vpn/client-3", A3, NOW);
    ssm.on(AddTagsToResourceCommand).rejects(awsError("AccessDeniedException", "not allowed"));
    const push = {
      ...base,
      kind: "push-setup" as const,
      instanceId: A3,
      hash: NEW_SETUP_HASH,
      credential: "/labgate/foo/vpn/client-3",
      expected: { commandId: undefined },
      script: setupScript,
    };

    await expect(apply(push, foo, { store, log, account })).rejects.toThrow(ApplyError);
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect((await store.read("foo")).runners.get(A3)?.sending).toBeUndefined();

    ssm.on(AddTagsToResourceCommand).resolves({});
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: COMMAND_A3 } });
    ec2.on(CreateTagsCommand).resolves({});
    await expect(apply(push, foo, { store, log, account })).resolves.toEqual({ status: "done" });
    expect(ssm).toHaveReceivedCommandWith(AddTagsToResourceCommand, {
      ResourceType: "Parameter",
      ResourceId: "/labgate/foo/vpn/client-3",
      Tags: [{ Key: "labgate:holder", Value: `arn:aws:ec2:eu-central-1:123456789012:instance/${A3}` }],
    });
  });

  it("takes the holder's read right back when a lease ends, and releases even when that fails", async () => {
    const account = { partition: "aws", region: "eu-central-1", account: "123456789012" };
    await store.lease("foo", "/labgate/foo/vpn/client-1", A1, NOW);
    ec2.on(DeleteTagsCommand).resolves({});
    ssm.on(ListTagsForResourceCommand).rejects(awsError("ThrottlingException", "Rate exceeded"));

    await expect(
      apply(
        { ...base, kind: "release-credential", instanceId: A1, parameter: "/labgate/foo/vpn/client-1" },
        foo,
        { store, log, account },
      ),
    ).resolves.toEqual({ status: "done" });
    expect((await store.read("foo")).leases.has("/labgate/foo/vpn/client-1")).toBe(false);
    expect(log.warn).toHaveBeenCalledWith(
      expect.stringMatching(/read right back/),
      expect.objectContaining({ instanceId: A1 }),
    );
  });
});
