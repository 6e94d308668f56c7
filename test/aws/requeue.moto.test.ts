// The lab's requeue schedule (functions/aws/requeue.ts) against a real EventBridge Scheduler API: moto, started
// and stopped by this suite. What the scheduler then holds: one schedule of the lab's name, whatever was asked.
import { GetScheduleCommand, ListSchedulesCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type * as Requeue from "../../functions/aws/requeue.ts";
import { type Moto, motoUnavailableReason, startMoto, useMoto } from "../support/moto.ts";
import { resetMoto } from "../support/moto-lab.ts";

const skip = await motoUnavailableReason();
if (skip && process.env.CI === "true") throw new Error(`the moto requeue suite cannot run in CI: ${skip}`);
if (skip) console.warn(`SKIPPED moto requeue suite: ${skip}`);

const TARGET = {
  schedule: "labgate-test-foo-requeue",
  functionArn: "arn:aws:lambda:eu-central-1:123456789012:function:labgate-test-foo",
  roleArn: "arn:aws:iam::123456789012:role/labgate-test-foo-requeue-invoke",
};
const T = Date.parse("2026-11-26T09:00:00.250Z");

let moto: Moto | undefined;
let restoreEnv: (() => void) | undefined;
let scheduler: SchedulerClient;
let requeue: typeof Requeue;

beforeAll(async () => {
  if (skip) return;
  moto = await startMoto();
  restoreEnv = useMoto(moto);
  scheduler = new SchedulerClient({});
  // The adapters' scheduler client reads the endpoint from the environment when its module loads.
  requeue = await import("../../functions/aws/requeue.ts");
}, 60_000);

afterAll(async () => {
  scheduler?.destroy();
  await moto?.stop();
  restoreEnv?.();
});

beforeEach(async () => {
  if (!skip && moto) await resetMoto(moto);
});

const schedules = async () => (await scheduler.send(new ListSchedulesCommand({}))).Schedules ?? [];
const schedule = () => scheduler.send(new GetScheduleCommand({ Name: TARGET.schedule }));

describe.skipIf(skip !== undefined)(
  "the lab's requeue schedule, against moto's EventBridge Scheduler",
  () => {
    it("is a one-time schedule in UTC that invokes the function once, with the reason and the attempt, then goes", async () => {
      expect(
        await requeue.scheduleRequeue(TARGET, {
          at: T + 30_000,
          attempt: 1,
          reason: "push-setup:i-0f1 deferred",
        }),
      ).toBe("created");
      expect(await schedule()).toMatchObject({
        Name: TARGET.schedule,
        ScheduleExpression: "at(2026-11-26T09:00:31)",
        ScheduleExpressionTimezone: "UTC",
        FlexibleTimeWindow: { Mode: "OFF" },
        ActionAfterCompletion: "DELETE",
        Target: {
          Arn: TARGET.functionArn,
          RoleArn: TARGET.roleArn,
          RetryPolicy: { MaximumEventAgeInSeconds: 300, MaximumRetryAttempts: 2 },
        },
      });
      expect(JSON.parse((await schedule()).Target?.Input ?? "null")).toEqual({
        source: "labgate.requeue",
        reason: "push-setup:i-0f1 deferred",
        attempt: 1,
      });
    });

    it("is refused a second time by its name (ConflictException), so the adapter replaces it: one pending, the latest", async () => {
      await requeue.scheduleRequeue(TARGET, { at: T, attempt: 1, reason: "a" });
      const again = requeue.scheduleRequeue(TARGET, { at: T + 60_000, attempt: 2, reason: "a" });
      await expect(again).resolves.toBe("replaced");
      expect((await schedules()).map((s) => s.Name)).toEqual([TARGET.schedule]);
      expect((await schedule()).ScheduleExpression).toBe("at(2026-11-26T09:01:01)");
      expect(JSON.parse((await schedule()).Target?.Input ?? "null")).toMatchObject({ attempt: 2 });
    });

    it("shows the scheduler's own answer to a second schedule of the same name", async () => {
      const { CreateScheduleCommand } = await import("@aws-sdk/client-scheduler");
      const create = () =>
        scheduler.send(
          new CreateScheduleCommand({
            Name: TARGET.schedule,
            ScheduleExpression: "at(2026-11-26T09:00:30)",
            FlexibleTimeWindow: { Mode: "OFF" },
            Target: { Arn: TARGET.functionArn, RoleArn: TARGET.roleArn },
          }),
        );
      await create();
      await expect(create()).rejects.toMatchObject({ name: "ConflictException" });
    });
  },
);
