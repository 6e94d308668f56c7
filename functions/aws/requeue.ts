// The lab's one pending requeue, in AWS: a one-time EventBridge Scheduler schedule with a fixed name per lab,
// which invokes the reconciler (asynchronously) with `{ source, reason, attempt }` and deletes itself once it
// ran. One name, so at most one requeue is pending by construction: scheduling another replaces it.
// https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html (one-time schedules)
import { CreateScheduleCommand, DeleteScheduleCommand } from "@aws-sdk/client-scheduler";
import { z } from "zod";
import { ConfigError } from "../core/config.ts";
import { REQUEUE_EVENT_SOURCE } from "../core/retry.ts";
import type { RequeueRequest, Requeuer } from "../reconcile/requeue.ts";
import { scheduler } from "./clients.ts";
import { isAwsError } from "./errors.ts";

/** What infra tells the function (LABGATE_REQUEUE): its schedule's name, its own ARN, the role that invokes it. */
const RequeueTargetSchema = z.strictObject({
  schedule: z.string().regex(/^[0-9a-zA-Z._-]{1,64}$/),
  functionArn: z.string().startsWith("arn:"),
  roleArn: z.string().startsWith("arn:"),
});
export type RequeueTarget = z.infer<typeof RequeueTargetSchema>;

/** The requeue target from the environment; undefined when unset (deferred actions then wait for the schedule). */
export const parseRequeueTarget = (value: string | undefined): RequeueTarget | undefined => {
  if (!value) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    throw new ConfigError("LABGATE_REQUEUE is not JSON");
  }
  const parsed = RequeueTargetSchema.safeParse(json);
  if (!parsed.success)
    throw new ConfigError(
      `LABGATE_REQUEUE is invalid: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  return parsed.data;
};

/**
 * The schedule expression of a one-time schedule at `at`: `at(yyyy-mm-ddThh:mm:ss)` in the time zone of
 * ScheduleExpressionTimezone (UTC here), rounded up to the second.
 */
export const atExpression = (at: number): string =>
  `at(${new Date(Math.ceil(at / 1000) * 1000).toISOString().slice(0, 19)})`;

/** The requeue is a hint: one Scheduler could not deliver within 5 minutes is dropped (the schedule repairs). */
const DELIVERY_MAX_AGE_SECONDS = 300;

const createSchedule = (target: RequeueTarget, request: RequeueRequest) =>
  scheduler.send(
    new CreateScheduleCommand({
      Name: target.schedule,
      Description: `labgate: reconcile again (attempt ${request.attempt})`,
      ScheduleExpression: atExpression(request.at),
      ScheduleExpressionTimezone: "UTC",
      FlexibleTimeWindow: { Mode: "OFF" },
      ActionAfterCompletion: "DELETE",
      Target: {
        Arn: target.functionArn,
        RoleArn: target.roleArn,
        Input: JSON.stringify({
          source: REQUEUE_EVENT_SOURCE,
          reason: request.reason,
          attempt: request.attempt,
        }),
        RetryPolicy: { MaximumEventAgeInSeconds: DELIVERY_MAX_AGE_SECONDS, MaximumRetryAttempts: 2 },
      },
    }),
  );

/**
 * Makes `request` the lab's pending requeue. The schedule may exist: the one that invoked this reconcile (not
 * deleted yet) or one that an earlier decision left; it is deleted and created again with this request, so
 * that the pending requeue is always the one the store's episode counts. Returns whether one was replaced.
 */
export const scheduleRequeue = async (
  target: RequeueTarget,
  request: RequeueRequest,
): Promise<"created" | "replaced"> => {
  try {
    await createSchedule(target, request);
    return "created";
  } catch (error) {
    if (!isAwsError(error, "ConflictException")) throw error;
  }
  try {
    await scheduler.send(new DeleteScheduleCommand({ Name: target.schedule }));
  } catch (error) {
    if (!isAwsError(error, "ResourceNotFoundException")) throw error;
  }
  await createSchedule(target, request);
  return "replaced";
};

/** The requeue port over the lab's store and its schedule. */
export const awsRequeuer = (target: RequeueTarget, record: Requeuer["record"]): Requeuer => ({
  record,
  schedule: async (request) => {
    await scheduleRequeue(target, request);
  },
});
