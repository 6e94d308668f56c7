// apply (functions/aws/apply.ts) against a real AWS API: moto, started and stopped by this suite; each test
// builds a fresh lab in it, carries out actions with the real adapter, and looks at the result with the
// real observe (and, where observe does not read it, with moto's own describe calls).
//
// Where moto lacks or fakes an API, the mock-based test/aws/apply.test.ts covers the adapter:
// - CompleteLifecycleAction: moto does not implement it ("completes a lifecycle hook with the planned
//   result", "takes a lifecycle hook completed already ... as done", "fails on any other validation error").
// - CreateRoute to an interface over an existing route: moto overwrites it instead of answering
//   RouteAlreadyExists ("replaces the route when the route to create appeared meanwhile").
// - SendCommand to an instance whose SSM agent is not registered: moto accepts any instance id instead of
//   answering InvalidInstanceId ("defers a setup while the runner's SSM agent is not registered").
import { DescribeAlarmsCommand, ListTagsForResourceCommand } from "@aws-sdk/client-cloudwatch";
import {
  CreateRouteCommand,
  DeleteNetworkInterfaceCommand,
  DeleteRouteCommand,
  DescribeInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { ListCommandsCommand } from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { apply as Apply } from "../../functions/aws/apply.ts";
import type { ApplyError as ApplyErrorClass } from "../../functions/aws/errors.ts";
import type { observe as Observe } from "../../functions/aws/observe.ts";
import type { Action } from "../../functions/core/actions.ts";
import {
  COMMAND_TAG,
  CREDENTIAL_TAG,
  commandMarker,
  HEALTH_DIMENSION_INSTANCE,
  HEALTH_DIMENSION_LAB,
  healthAlarmName,
  LAB_TAG,
  runnerHealthNamespace,
  SETUP_TAG,
  TUNNEL_HEALTH_METRIC,
} from "../../functions/core/names.ts";
import type { Runner, World } from "../../functions/core/world.ts";
import { type Moto, motoUnavailableReason, startMoto, useMoto } from "../support/moto.ts";
import {
  buildLab,
  CIDR_1,
  CIDR_2,
  type MotoClients,
  type MotoLab,
  motoClients,
  resetMoto,
} from "../support/moto-lab.ts";

const skip = await motoUnavailableReason();
if (skip && process.env.CI === "true") throw new Error(`the moto apply suite cannot run in CI: ${skip}`);
if (skip) console.warn(`SKIPPED moto apply suite: ${skip}`);

let moto: Moto | undefined;
let restoreEnv: (() => void) | undefined;
let clients: MotoClients;
let apply: typeof Apply;
let observe: typeof Observe;
let ApplyError: typeof ApplyErrorClass;
let foo: MotoLab;
const infos: string[] = [];
const log = { info: (message: string) => infos.push(message), warn: () => {} };

beforeAll(async () => {
  if (skip) return;
  moto = await startMoto();
  restoreEnv = useMoto(moto);
  clients = motoClients(moto);
  // The adapters' clients read the endpoint from the environment when their module loads: load them now.
  ({ apply } = await import("../../functions/aws/apply.ts"));
  ({ observe } = await import("../../functions/aws/observe.ts"));
  ({ ApplyError } = await import("../../functions/aws/errors.ts"));
}, 60_000);

afterAll(async () => {
  clients?.destroy();
  await moto?.stop();
  restoreEnv?.();
});

beforeEach(async () => {
  if (skip || !moto) return;
  await resetMoto(moto);
  foo = await buildLab(clients, "foo");
  infos.length = 0;
});

const base = { after: [], reason: "test" } as const;
const SETUP_HASH = "3f2a9c1d0b7e4a56";
const STOP_HASH = "5c0d1e2f3a4b6c7d";
const run = (action: Action) => apply(action, foo.lab, { store: foo.store, log });
const look = () => observe(foo.lab, { store: foo.store, log });

const runner = (w: World, instanceId: string): Runner => {
  const found = w.runners.find((r) => r.instanceId === instanceId);
  if (!found) throw new Error(`${instanceId} is not in the world`);
  return found;
};

const key = (n: 1 | 2 | 3): string => {
  const parameter = foo.credentials[n - 1];
  if (!parameter) throw new Error(`lab foo has no credential ${n}`);
  return parameter;
};

/** The tags EC2 holds on an instance, as a record. */
const tagsOf = async (instanceId: string): Promise<Record<string, string | undefined>> => {
  const out = await clients.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  const tags = out.Reservations?.[0]?.Instances?.[0]?.Tags ?? [];
  return Object.fromEntries(tags.flatMap((t) => (t.Key ? [[t.Key, t.Value]] : [])));
};

const route = (
  kind: "create-route" | "replace-route",
  routeTableId: string,
  cidr: string,
  target: { instanceId: string; eniId: string },
): Action => ({
  ...base,
  id: `${kind}-${routeTableId}-${cidr}`,
  kind,
  routeTableId,
  cidr,
  target: { instanceId: target.instanceId, eniId: target.eniId },
  previous: undefined,
  failover: false,
});

const describeIf = skip ? describe.skip : describe;

describeIf("apply against moto: runners and routes", () => {
  it("turns off a runner's source/destination check", async () => {
    const { b1 } = foo.runners;
    expect(runner(await look(), b1.instanceId).sourceDestCheck).toBe(true);
    const outcome = await run({
      ...base,
      id: "sdc",
      kind: "disable-source-dest-check",
      instanceId: b1.instanceId,
    });
    expect(outcome).toEqual({ status: "done" });
    expect(runner(await look(), b1.instanceId).sourceDestCheck).toBe(false);
  });

  it("creates a missing route to the runner's primary interface", async () => {
    const { a1 } = foo.runners;
    expect(await run(route("create-route", foo.tables.a, CIDR_2, a1))).toEqual({ status: "done" });
    expect((await look()).routeTables[foo.tables.a]?.routes[CIDR_2]).toMatchObject({ eniId: a1.eniId });
  });

  it("replaces a route to point at another runner, leaving the other CIDRs and tables alone", async () => {
    const { a2, b1 } = foo.runners;
    const before = await look();
    expect(await run(route("replace-route", foo.tables.a, CIDR_1, a2))).toEqual({ status: "done" });
    const after = await look();
    expect(after.routeTables[foo.tables.a]?.routes[CIDR_1]).toMatchObject({ eniId: a2.eniId });
    expect(after.routeTables[foo.tables.b]).toEqual(before.routeTables[foo.tables.b]);
    expect(after.routeTables[foo.tables.b]?.routes[CIDR_1]).toMatchObject({ eniId: b1.eniId });
  });

  it("creates the route when the route to replace was deleted meanwhile (EC2 answers InvalidParameterValue)", async () => {
    const { a2 } = foo.runners;
    await clients.ec2.send(
      new DeleteRouteCommand({ RouteTableId: foo.tables.a, DestinationCidrBlock: CIDR_1 }),
    );
    expect(await run(route("replace-route", foo.tables.a, CIDR_1, a2))).toEqual({ status: "done" });
    expect((await look()).routeTables[foo.tables.a]?.routes[CIDR_1]).toMatchObject({ eniId: a2.eniId });
    expect(infos).toEqual(["route to replace is gone, creating it"]);
  });

  it("deletes a route labgate made for a CIDR no longer in intranetCidrs, which observe reports apart", async () => {
    const { a1 } = foo.runners;
    const removed = "10.99.0.0/16";
    await clients.ec2.send(
      new CreateRouteCommand({
        RouteTableId: foo.tables.a,
        DestinationCidrBlock: removed,
        NetworkInterfaceId: a1.eniId,
      }),
    );
    const seen = (await look()).routeTables[foo.tables.a];
    expect(seen?.routes[removed]).toBeUndefined();
    expect(seen?.others?.[removed]).toMatchObject({ eniId: a1.eniId, blackhole: false });
    const del: Action = {
      ...base,
      id: `delete-route:${foo.tables.a}:${removed}`,
      kind: "delete-route",
      routeTableId: foo.tables.a,
      cidr: removed,
      instanceId: a1.instanceId,
    };
    expect(await run(del)).toEqual({ status: "done" });
    const after = (await look()).routeTables[foo.tables.a];
    expect(after?.others?.[removed]).toBeUndefined();
    expect(after?.routes[CIDR_1]).toMatchObject({ eniId: a1.eniId });
    // Gone already (a repeated reconcile): done.
    expect(await run(del)).toEqual({ status: "done" });
  });

  it("fails with an ApplyError naming the action when the target's interface vanished, and moves nothing", async () => {
    const { a2 } = foo.runners;
    // The runner is terminated and its interface deleted with it (moto keeps an instance's interfaces
    // after termination, so the test deletes it as EC2 does for a primary interface).
    await clients.ec2.send(new TerminateInstancesCommand({ InstanceIds: [a2.instanceId] }));
    await clients.ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: a2.eniId }));
    const before = await look();
    const action = route("replace-route", foo.tables.a, CIDR_1, a2);
    const failure = await run(action).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ApplyError);
    expect(failure).toMatchObject({ actionId: action.id, message: expect.stringContaining(a2.eniId) });
    expect(String((failure as Error).message)).toMatch(/InvalidNetworkInterfaceID\.NotFound/);
    expect((await look()).routeTables).toEqual(before.routeTables);
  });
});

describeIf("apply against moto: leases in the store, mirrored in the tags", () => {
  it("leases a free key to a runner, mirrors it in its tag, and releases it again", async () => {
    const { a1 } = foo.runners;
    const lease = {
      ...base,
      id: "lease",
      kind: "lease-credential",
      instanceId: a1.instanceId,
      parameter: key(1),
    } as const;
    expect(await run(lease)).toEqual({ status: "done" });
    expect(runner(await look(), a1.instanceId)).toMatchObject({
      credential: key(1),
      mirror: { credential: key(1) },
    });
    expect((await foo.store.read("foo")).leases.get(key(1))?.holder).toBe(a1.instanceId);

    expect(await run({ ...lease, id: "release", kind: "release-credential" })).toEqual({ status: "done" });
    expect(runner(await look(), a1.instanceId)).toMatchObject({
      credential: undefined,
      mirror: { credential: undefined },
    });
    expect((await foo.store.read("foo")).leases.has(key(1))).toBe(false);
    expect(await tagsOf(a1.instanceId)).not.toHaveProperty(CREDENTIAL_TAG);
  });

  it("defers a lease of a key another runner holds (the conditional write fails), tagging nothing", async () => {
    const { a1, b1 } = foo.runners;
    await run({ ...base, id: "l1", kind: "lease-credential", instanceId: a1.instanceId, parameter: key(1) });
    const outcome = await run({
      ...base,
      id: "l2",
      kind: "lease-credential",
      instanceId: b1.instanceId,
      parameter: key(1),
    });
    expect(outcome).toMatchObject({ status: "deferred", why: expect.stringMatching(/lease of .* to/) });
    const w = await look();
    expect(runner(w, a1.instanceId).credential).toBe(key(1));
    expect(runner(w, b1.instanceId)).toMatchObject({
      credential: undefined,
      mirror: { credential: undefined },
    });
  });

  it("defers a second key for a runner that holds one, and keeps the first", async () => {
    const { a1 } = foo.runners;
    await run({ ...base, id: "l1", kind: "lease-credential", instanceId: a1.instanceId, parameter: key(1) });
    const outcome = await run({
      ...base,
      id: "l2",
      kind: "lease-credential",
      instanceId: a1.instanceId,
      parameter: key(2),
    });
    expect(outcome).toMatchObject({ status: "deferred" });
    const stored = await foo.store.read("foo");
    expect([...stored.leases.keys()]).toEqual([key(1)]);
    expect(runner(await look(), a1.instanceId).mirror.credential).toBe(key(1));
  });

  it("releases nothing of a key the runner does not hold", async () => {
    const { a1, b1 } = foo.runners;
    await run({ ...base, id: "l1", kind: "lease-credential", instanceId: a1.instanceId, parameter: key(1) });
    const release = {
      ...base,
      id: "r",
      kind: "release-credential",
      instanceId: b1.instanceId,
      parameter: key(1),
    } as const;
    expect(await run(release)).toEqual({ status: "done" });
    expect((await foo.store.read("foo")).leases.get(key(1))?.holder).toBe(a1.instanceId);
    expect(runner(await look(), a1.instanceId).mirror.credential).toBe(key(1));
  });

  it("drops a lease whose holder is gone, only while that holder still has it", async () => {
    const gone = "i-0000000000000dead";
    await foo.store.lease("foo", key(3), gone, 0);
    expect((await look()).orphanLeases).toEqual([{ credential: key(3), holder: gone, since: 0 }]);
    const orphan = { ...base, id: "o", kind: "release-orphan-lease", parameter: key(3) } as const;
    expect(await run({ ...orphan, holder: "i-00000000000000bad" })).toEqual({ status: "done" });
    expect((await look()).orphanLeases).toHaveLength(1);
    expect(await run({ ...orphan, holder: gone })).toEqual({ status: "done" });
    expect((await look()).orphanLeases).toEqual([]);
  });

  it("writes and removes mirror tags as planned", async () => {
    const { a1 } = foo.runners;
    await run({
      ...base,
      id: "m1",
      kind: "mirror-tags",
      instanceId: a1.instanceId,
      tags: { [CREDENTIAL_TAG]: key(2), [SETUP_TAG]: "abc" },
    });
    expect(await tagsOf(a1.instanceId)).toMatchObject({ [CREDENTIAL_TAG]: key(2), [SETUP_TAG]: "abc" });
    await run({
      ...base,
      id: "m2",
      kind: "mirror-tags",
      instanceId: a1.instanceId,
      tags: { [CREDENTIAL_TAG]: null },
    });
    const tags = await tagsOf(a1.instanceId);
    expect(tags).not.toHaveProperty(CREDENTIAL_TAG);
    expect(tags).toMatchObject({ [SETUP_TAG]: "abc", "aws:autoscaling:groupName": "foo-runners" });
  });
});

describeIf("apply against moto: commands through SSM Run Command", () => {
  const script = "#!/bin/bash\nset -euo pipefail\necho setup\n";
  const pushSetup = (instanceId: string, credential: string): Action => ({
    ...base,
    id: "push",
    kind: "push-setup",
    instanceId,
    hash: SETUP_HASH,
    credential,
    expected: { commandId: undefined },
    script,
  });

  it("sends a setup marked for the lab, records it as pending, and a second observe reads its outcome", async () => {
    const { a1 } = foo.runners;
    await run({ ...base, id: "l", kind: "lease-credential", instanceId: a1.instanceId, parameter: key(1) });
    expect(await run(pushSetup(a1.instanceId, key(1)))).toEqual({ status: "done" });

    const sent = await clients.ssm.send(new ListCommandsCommand({ InstanceId: a1.instanceId }));
    expect(sent.Commands).toHaveLength(1);
    const command = sent.Commands?.[0];
    expect(command).toMatchObject({
      DocumentName: "AWS-RunShellScript",
      // moto adds every instance of the region to a command sent without Targets: the exact request is
      // checked in test/aws/apply.test.ts.
      InstanceIds: expect.arrayContaining([a1.instanceId]),
      Comment: `labgate foo setup ${SETUP_HASH}`,
      TimeoutSeconds: 600,
      Parameters: {
        commands: [commandMarker("foo", "setup", SETUP_HASH), script],
        executionTimeout: ["900"],
      },
    });
    const commandId = command?.CommandId;

    const w = await look();
    expect(runner(w, a1.instanceId)).toMatchObject({
      command: { kind: "setup", hash: SETUP_HASH, commandId, status: "pending" },
      // moto ends every command with Success at once; Failed and InProgress are in test/aws/observe.test.ts.
      commandOutcome: "success",
      mirror: { command: expect.stringContaining(String(commandId)) },
    });

    const pending = runner(w, a1.instanceId).command;
    if (!pending) throw new Error("no command recorded");
    expect(
      await run({
        ...base,
        id: "rec",
        kind: "record-command",
        instanceId: a1.instanceId,
        record: { ...pending, status: "success" },
        appliedSetup: SETUP_HASH,
      }),
    ).toEqual({ status: "done" });
    expect(runner(await look(), a1.instanceId)).toMatchObject({
      appliedSetup: SETUP_HASH,
      command: { commandId, status: "success" },
      // Not pending any more: observe does not ask SSM about it again.
      commandOutcome: undefined,
      mirror: { appliedSetup: SETUP_HASH },
    });
    expect(await tagsOf(a1.instanceId)).toMatchObject({ [SETUP_TAG]: SETUP_HASH });
  });

  it("sends nothing for a setup rendered for a key the runner does not hold (the store refuses the intent)", async () => {
    const { a1 } = foo.runners;
    const outcome = await run(pushSetup(a1.instanceId, key(1)));
    expect(outcome).toMatchObject({ status: "deferred" });
    expect((await clients.ssm.send(new ListCommandsCommand({}))).Commands).toEqual([]);
    expect(runner(await look(), a1.instanceId)).toMatchObject({
      command: undefined,
      mirror: { command: undefined },
    });
  });

  it("sends a stop-vpn the same way, marked as stop-vpn", async () => {
    const { b1 } = foo.runners;
    const stop: Action = {
      ...base,
      id: "stop",
      kind: "stop-vpn",
      instanceId: b1.instanceId,
      hash: STOP_HASH,
      expected: { commandId: undefined },
      script,
    };
    expect(await run(stop)).toEqual({ status: "done" });
    const command = (await clients.ssm.send(new ListCommandsCommand({ InstanceId: b1.instanceId })))
      .Commands?.[0];
    expect(command?.Parameters?.commands?.[0]).toBe(commandMarker("foo", "stop-vpn", STOP_HASH));
    expect(runner(await look(), b1.instanceId)).toMatchObject({
      command: { kind: "stop-vpn", hash: STOP_HASH, commandId: command?.CommandId, status: "pending" },
    });
    expect(await tagsOf(b1.instanceId)).toHaveProperty(COMMAND_TAG);
  });
});

describeIf("apply against moto: health alarms", () => {
  it("puts a runner's tunnel health alarm that observe then finds, and deletes it", async () => {
    const { a1 } = foo.runners;
    const alarmName = healthAlarmName("foo", a1.instanceId);
    const put = {
      ...base,
      id: "put",
      kind: "put-health-alarm",
      instanceId: a1.instanceId,
      alarmName,
    } as const;
    expect(await run(put)).toEqual({ status: "done" });

    const alarm = (await clients.cloudWatch.send(new DescribeAlarmsCommand({ AlarmNames: [alarmName] })))
      .MetricAlarms?.[0];
    expect(alarm).toMatchObject({
      Namespace: runnerHealthNamespace("foo"),
      MetricName: TUNNEL_HEALTH_METRIC,
      Dimensions: expect.arrayContaining([
        { Name: HEALTH_DIMENSION_LAB, Value: "foo" },
        { Name: HEALTH_DIMENSION_INSTANCE, Value: a1.instanceId },
      ]),
      Statistic: "Minimum",
      Period: 10,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      Threshold: 1,
      ComparisonOperator: "LessThanThreshold",
      TreatMissingData: "breaching",
    });
    const tags = await clients.cloudWatch.send(
      new ListTagsForResourceCommand({ ResourceARN: alarm?.AlarmArn }),
    );
    expect(tags.Tags).toEqual([{ Key: LAB_TAG, Value: "foo" }]);
    const w = await look();
    expect(w.healthAlarms).toEqual([{ name: alarmName, instanceId: a1.instanceId, outdated: false }]);
    // moto creates an alarm in OK (AWS: INSUFFICIENT_DATA until it has evaluated).
    expect(runner(w, a1.instanceId).healthAlarm).toBe("OK");

    const del = { ...base, id: "del", kind: "delete-health-alarms", alarmNames: [alarmName] } as const;
    expect(await run(del)).toEqual({ status: "done" });
    const after = await look();
    expect(after.healthAlarms).toEqual([]);
    expect(runner(after, a1.instanceId).healthAlarm).toBeUndefined();
  });
});
