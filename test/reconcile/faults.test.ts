import "aws-sdk-client-mock-vitest/extend";
// One failed read at a time, through the real observe and apply (SDK clients mocked to describe a lab where
// runner A1 has just stopped): what each failure costs, and that a stopped runner's routes still move
// wherever the rest of the world allows it (README "When a read fails").
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { DescribeAlarmsCommand } from "@aws-sdk/client-cloudwatch";
import {
  DescribeInstancesCommand,
  DescribeRouteTablesCommand,
  DescribeSubnetsCommand,
  ReplaceRouteCommand,
} from "@aws-sdk/client-ec2";
import { GetCommandInvocationCommand, SendCommandCommand } from "@aws-sdk/client-ssm";
import { beforeEach, describe, expect, it } from "vitest";
import { createAwsProvider } from "../../functions/aws/provider.ts";
import type { World } from "../../functions/core/world.ts";
import { MemoryStore } from "../../functions/local/memory-store.ts";
import {
  convergedWorld,
  labNamed,
  runnerId,
  subnetId,
  tableId,
  withPool,
  withRunner,
} from "../../functions/local/sample-world.ts";
import { labObservability } from "../../functions/reconcile/observability.ts";
import { reconcile } from "../../functions/reconcile/reconcile.ts";
import type { LabStore } from "../../functions/reconcile/store.ts";
import { answerWith, mocks } from "../support/aws-world.ts";

process.env.POWERTOOLS_METRICS_DISABLED = "true";
const shape = { azs: ["eu-central-1a", "eu-central-1b"], runnersPerAz: 2, subnetsPerAz: 3 };
const lab = {
  ...withPool(labNamed("foo"), 6),
  workerSubnets: { ids: shape.azs.flatMap((az) => [1, 2, 3].map((n) => subnetId(az, n))) },
};
const A1 = runnerId("eu-central-1a", 1);
const A2 = runnerId("eu-central-1a", 2);
const B1 = runnerId("eu-central-1b", 1);
const eni = (id: string) => `eni-${id.slice(2)}`;
const converged = convergedWorld(lab, shape);
/**
 * A1 stopped; it carried the routes of subnets 1 and 3 of AZ a. B1 has a setup command pending: its own
 * setup again (one that restarted its tunnel would take it out of service meanwhile).
 */
const world: World = withRunner(withRunner(converged, A1, { state: "stopped" }), B1, {
  command: {
    kind: "setup",
    hash: converged.runners.find((r) => r.instanceId === B1)?.appliedSetup ?? "",
    commandId: "e8d3c0e4-0c3b-4d8e-9a5f-1c2d3e4f5a06",
    status: "pending",
    sentAt: 0,
  },
});
const m = mocks();
const { logger, metrics } = labObservability("foo", { quiet: true });

const seeded = async (): Promise<MemoryStore> => {
  const store = new MemoryStore();
  for (const r of world.runners) {
    await store.adopt(
      "foo",
      r.instanceId,
      { credential: r.credential, appliedSetup: r.appliedSetup, command: r.command },
      0,
    );
    if (r.recordedHealth) await store.recordHealth("foo", r.instanceId, r.recordedHealth);
  }
  return store;
};

const failing = (name: string) =>
  Object.assign(new Error(`${name} failed after the SDK's retries`), {
    name,
    $metadata: { httpStatusCode: 503 },
  });

/** A store whose reads fail (DynamoDB unavailable or throttled past its retries). */
const unreadable = (store: LabStore): LabStore =>
  new Proxy(store, {
    get: (target, key) =>
      key === "read"
        ? () => Promise.reject(failing("ProvisionedThroughputExceededException"))
        : Reflect.get(target, key),
  });

const run = async (store: LabStore) => {
  const {
    runnerIds: _ids,
    again: _again,
    ...report
  } = await reconcile(lab, createAwsProvider(store, logger), {
    dryRun: false,
    trigger: "ec2 state change (test)",
    logger,
    metrics,
  });
  return report;
};

const routesTo = () =>
  m.ec2
    .commandCalls(ReplaceRouteCommand)
    .map((c) => [c.args[0].input.RouteTableId, c.args[0].input.NetworkInterfaceId]);

const movedOffA1 = [
  [tableId("eu-central-1a", 1), eni(A2)],
  [tableId("eu-central-1a", 3), eni(A2)],
];

beforeEach(() => {
  for (const mock of Object.values(m)) mock.reset();
  answerWith(m, world, lab);
});

describe("when one read fails", () => {
  it("with nothing failing, A1's routes move to A2 (the baseline)", async () => {
    const report = await run(await seeded());
    expect(routesTo()).toEqual(movedOffA1);
    expect(report.findings.filter((f) => f.kind === "observe-degraded")).toEqual([]);
  });

  it.each([
    [
      "the runner group (DescribeAutoScalingGroups)",
      () => m.asg.on(DescribeAutoScalingGroupsCommand).rejects(failing("Throttling")),
    ],
    [
      "the worker subnets (DescribeSubnets)",
      () => m.ec2.on(DescribeSubnetsCommand).rejects(failing("RequestLimitExceeded")),
    ],
    [
      "the health alarms (DescribeAlarms)",
      () => m.cw.on(DescribeAlarmsCommand).rejects(failing("Throttling")),
    ],
    [
      "one command's outcome (GetCommandInvocation)",
      () => m.ssm.on(GetCommandInvocationCommand).rejects(failing("ThrottlingException")),
    ],
  ])("%s: the stopped runner's routes still move", async (_what, inject) => {
    inject();
    const report = await run(await seeded());
    expect(routesTo()).toEqual(movedOffA1);
    expect(report.errors).toEqual([]);
    // Nothing is sent to a runner whose command may still be running.
    expect(m.ssm).not.toHaveReceivedCommand(SendCommandCommand);
  });

  it("labgate's store: routes move only onto a runner that carries routes now (A2 does), and no key or command moves", async () => {
    const report = await run(unreadable(await seeded()));
    expect(routesTo()).toEqual(movedOffA1);
    expect(report.findings).toContainEqual(
      expect.objectContaining({
        kind: "observe-degraded",
        message: expect.stringMatching(/^could not read store/),
      }),
    );
    expect(report.actions.filter((a) => !String(a.kind).endsWith("-route"))).toEqual([]);
  });

  it("the instances (DescribeInstances): nothing is known of the runners, so nothing moves, and it says so", async () => {
    m.ec2.on(DescribeInstancesCommand).rejects(failing("RequestLimitExceeded"));
    const report = await run(await seeded());
    expect(report.actions).toEqual([]);
    expect(report.findings).toContainEqual(
      expect.objectContaining({
        kind: "observe-degraded",
        message: expect.stringMatching(/^could not read instances/),
      }),
    );
  });

  it("the route tables (DescribeRouteTables): nowhere to move from, so no route moves and no VPN stops; it says so", async () => {
    m.ec2.on(DescribeRouteTablesCommand).rejects(failing("RequestLimitExceeded"));
    const report = await run(await seeded());
    expect(routesTo()).toEqual([]);
    expect(report.actions.filter((a) => a.kind === "stop-vpn")).toEqual([]);
    expect(report.findings).toContainEqual(
      expect.objectContaining({
        kind: "observe-degraded",
        message: expect.stringMatching(/^could not read route-tables/),
      }),
    );
  });
});
