// Carries out one action of a plan: one small function per kind, each a call or two. Benign races with a
// concurrent change (a route that appeared or vanished, a hook already completed) are absorbed here; any
// other failure becomes an ApplyError and the next reconcile, which re-reads the world, tries again.
import { CompleteLifecycleActionCommand } from "@aws-sdk/client-auto-scaling";
import { DeleteAlarmsCommand, PutMetricAlarmCommand } from "@aws-sdk/client-cloudwatch";
import {
  CreateRouteCommand,
  CreateTagsCommand,
  DeleteRouteCommand,
  DeleteTagsCommand,
  ModifyInstanceAttributeCommand,
  ReplaceRouteCommand,
} from "@aws-sdk/client-ec2";
import { SendCommandCommand } from "@aws-sdk/client-ssm";
import type { Action } from "../core/actions.ts";
import type { LabConfig } from "../core/config.ts";
import {
  type AccountContext,
  commandMarker,
  HEALTH_DIMENSION_INSTANCE,
  HEALTH_DIMENSION_LAB,
  HEALTH_PERIOD_SECONDS,
  HEALTH_UNHEALTHY_REPORTS,
  instanceArn,
  LAB_TAG,
  runnerHealthNamespace,
  TUNNEL_HEALTH_METRIC,
} from "../core/names.ts";
import {
  applyStateAction,
  isStateAction,
  type StateAction,
  type StateEffects,
} from "../reconcile/labgate-state.ts";
import type { ApplyOutcome } from "../reconcile/ports.ts";
import type { LabStore } from "../reconcile/store.ts";
import { autoScaling, cloudWatch, ec2, ssm } from "./clients.ts";
import { ApplyError, describeError, isAwsError } from "./errors.ts";
import { consoleLog, type Log } from "./log.ts";
import { clearParameterHolder, setParameterHolder } from "./parameter-holder.ts";

type ActionOf<K extends Action["kind"]> = Extract<Action, { readonly kind: K }>;

const DONE: ApplyOutcome = { status: "done" };

export interface ApplyOptions {
  readonly store: LabStore;
  readonly log?: Log;
  /**
   * The account, to name runners by ARN in the credentials' holder tags (IAM compares them with
   * ec2:SourceInstanceARN). Without it no holder tag is written (tests of other actions).
   */
  readonly account?: AccountContext;
}

export const apply = async (action: Action, lab: LabConfig, options: ApplyOptions): Promise<ApplyOutcome> => {
  const log = options.log ?? consoleLog;
  try {
    if (isStateAction(action)) return await applyStateAction(action, lab, stateEffects(lab, options, log));
    return await carryOut(action, lab, log);
  } catch (error) {
    if (error instanceof ApplyError) throw error;
    throw new ApplyError(action.id, `${summary(action)} failed: ${describeError(error)}`, { cause: error });
  }
};

const carryOut = (action: Exclude<Action, StateAction>, lab: LabConfig, log: Log): Promise<ApplyOutcome> => {
  switch (action.kind) {
    case "disable-source-dest-check":
      return disableSourceDestCheck(action);
    case "create-route":
    case "replace-route":
      return setRoute(action, log);
    case "delete-route":
      return deleteRoute(action);
    case "complete-lifecycle":
      return completeLifecycle(action, lab, log);
    case "put-health-alarm":
      return putHealthAlarm(action, lab);
    case "delete-health-alarms":
      return deleteHealthAlarms(action);
  }
};

/** What an action does, in one line of an error message. */
const summary = (action: Action): string => {
  switch (action.kind) {
    case "create-route":
    case "replace-route":
      return `${action.kind} ${action.id} (${action.cidr} in ${action.routeTableId} to ${action.target.eniId} of ${action.target.instanceId})`;
    case "delete-health-alarms":
      return `${action.kind} ${action.id} (${action.alarmNames.join(", ")})`;
    case "delete-route":
      return `${action.kind} ${action.id} (${action.cidr} in ${action.routeTableId} to ${action.instanceId})`;
    case "release-orphan-lease":
      return `${action.kind} ${action.id} (${action.parameter} held by ${action.holder})`;
    default:
      return `${action.kind} ${action.id} (${action.instanceId})`;
  }
};

// ---- runners --------------------------------------------------------------------------------------------

// A runner forwards the workers' traffic into the tunnel, so EC2 must let through packets not addressed to it.
const disableSourceDestCheck = async (
  action: ActionOf<"disable-source-dest-check">,
): Promise<ApplyOutcome> => {
  await ec2.send(
    new ModifyInstanceAttributeCommand({ InstanceId: action.instanceId, SourceDestCheck: { Value: false } }),
  );
  return DONE;
};

// ---- labgate's state (functions/reconcile/labgate-state.ts): the store, EC2 tags, SSM Run Command -------

/** How long SSM keeps trying to deliver a command to an agent that is not connected; after that the
 *  invocation ends TimedOut, which the core sees as failed and may send again. */
const DELIVERY_TIMEOUT_SECONDS = 600;
/** How long the script may run on the runner: a setup waits for the tunnel and the lab's DNS to come up. */
const EXECUTION_TIMEOUT_SECONDS = "900";

const stateEffects = (lab: LabConfig, { store, account }: ApplyOptions, log: Log): StateEffects => ({
  store,
  ...(account && {
    grant: (parameter, instanceId) => setParameterHolder(parameter, instanceArn(account, instanceId)),
    revoke: async (parameter, instanceId) => {
      await clearParameterHolder(parameter, instanceArn(account, instanceId));
    },
  }),
  now: () => Date.now(),
  warn: (message, extra) => log.warn(message, extra),
  mirror: async (instanceId, tags) => {
    const set = Object.entries(tags).flatMap(([Key, Value]) => (Value === null ? [] : [{ Key, Value }]));
    const removed = Object.entries(tags).flatMap(([Key, Value]) => (Value === null ? [{ Key }] : []));
    if (set.length > 0) await ec2.send(new CreateTagsCommand({ Resources: [instanceId], Tags: set }));
    if (removed.length > 0) await ec2.send(new DeleteTagsCommand({ Resources: [instanceId], Tags: removed }));
  },
  send: async (action, kind) => {
    try {
      const out = await ssm.send(
        new SendCommandCommand({
          DocumentName: "AWS-RunShellScript",
          InstanceIds: [action.instanceId],
          Parameters: {
            // The marker comes first: EventBridge rules match it to route the command's status to this lab.
            commands: [commandMarker(lab.name, kind, action.hash), action.script],
            executionTimeout: [EXECUTION_TIMEOUT_SECONDS],
          },
          TimeoutSeconds: DELIVERY_TIMEOUT_SECONDS,
          Comment: `labgate ${lab.name} ${kind} ${action.hash}`,
        }),
      );
      const commandId = out.Command?.CommandId;
      if (!commandId)
        throw new ApplyError(action.id, `${summary(action)} failed: SendCommand returned no command id`);
      return { commandId };
    } catch (error) {
      // SSM answers InvalidInstanceId while the instance's agent has not registered yet (or it is not running).
      if (isAwsError(error, "InvalidInstanceId"))
        return { deferred: `the SSM agent of ${action.instanceId} is not registered yet` };
      throw error;
    }
  },
});

const completeLifecycle = async (
  action: ActionOf<"complete-lifecycle">,
  lab: LabConfig,
  log: Log,
): Promise<ApplyOutcome> => {
  try {
    await autoScaling.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: lab.runners.autoScalingGroupName,
        LifecycleHookName: action.hook,
        InstanceId: action.instanceId,
        LifecycleActionResult: action.result,
      }),
    );
  } catch (error) {
    // "ValidationError: No active Lifecycle Action found with instance ID i-..." means the hook was completed
    // already (a repeated event) or timed out: either way the instance has moved on, which is what we wanted.
    if (isAwsError(error, "ValidationError") && /No active Lifecycle Action found/i.test(error.message)) {
      log.info("lifecycle action already completed or timed out", {
        actionId: action.id,
        instanceId: action.instanceId,
        hook: action.hook,
      });
      return DONE;
    }
    throw error;
  }
  return DONE;
};

// ---- routes ---------------------------------------------------------------------------------------------

/**
 * Whether ReplaceRoute failed because the table has no route for the CIDR. EC2 answers InvalidParameterValue
 * "There is no route defined for '<cidr>' in the route table. Use CreateRoute instead.", not the
 * InvalidRoute.NotFound of DeleteRoute (checked against AWS by moto: https://github.com/getmoto/moto/pull/6425).
 */
const isRouteMissing = (error: unknown): boolean =>
  isAwsError(error, "InvalidRoute.NotFound") ||
  (isAwsError(error, "InvalidParameterValue") && /no route defined/i.test(error.message));

// The plan says create or replace from what it saw; if a concurrent change made the other one right, do that
// instead of failing until the next reconcile. Only one fallback: a route that keeps flipping is an error.
const setRoute = async (
  action: ActionOf<"create-route" | "replace-route">,
  log: Log,
): Promise<ApplyOutcome> => {
  const input = {
    RouteTableId: action.routeTableId,
    DestinationCidrBlock: action.cidr,
    NetworkInterfaceId: action.target.eniId,
  };
  const create = () => ec2.send(new CreateRouteCommand(input));
  const replace = () => ec2.send(new ReplaceRouteCommand(input));
  try {
    await (action.kind === "create-route" ? create() : replace());
  } catch (error) {
    if (action.kind === "replace-route" && isRouteMissing(error)) {
      log.info("route to replace is gone, creating it", { actionId: action.id, ...input });
      await create();
    } else if (action.kind === "create-route" && isAwsError(error, "RouteAlreadyExists")) {
      log.info("route to create exists already, replacing it", { actionId: action.id, ...input });
      await replace();
    } else {
      throw error;
    }
  }
  return DONE;
};

/** A route already gone is what was wanted. */
const deleteRoute = async (action: ActionOf<"delete-route">): Promise<ApplyOutcome> => {
  try {
    await ec2.send(
      new DeleteRouteCommand({ RouteTableId: action.routeTableId, DestinationCidrBlock: action.cidr }),
    );
  } catch (error) {
    if (!isAwsError(error, "InvalidRoute.NotFound")) throw error;
  }
  return DONE;
};

// ---- health alarms --------------------------------------------------------------------------------------

const putHealthAlarm = async (
  action: ActionOf<"put-health-alarm">,
  lab: LabConfig,
): Promise<ApplyOutcome> => {
  await cloudWatch.send(
    new PutMetricAlarmCommand({
      AlarmName: action.alarmName,
      AlarmDescription: `labgate ${lab.name}: tunnel of runner ${action.instanceId} is down or the lab's DNS does not answer`,
      Namespace: runnerHealthNamespace(lab.name),
      MetricName: TUNNEL_HEALTH_METRIC,
      // The dimensions the runner's health reporter publishes with.
      Dimensions: [
        { Name: HEALTH_DIMENSION_LAB, Value: lab.name },
        { Name: HEALTH_DIMENSION_INSTANCE, Value: action.instanceId },
      ],
      // High resolution: the runner reports every HEALTH_PERIOD_SECONDS (names.ts). Minimum: a failed probe
      // makes its period unhealthy. HEALTH_UNHEALTHY_REPORTS in a row, not one: an alarm moves the routes off
      // the runner, which cuts every connection the workers have through it, so a single late or lost report
      // (read as breaching) must not cause it; a dead tunnel is still acted on within about 30 s.
      Statistic: "Minimum",
      Period: HEALTH_PERIOD_SECONDS,
      EvaluationPeriods: HEALTH_UNHEALTHY_REPORTS,
      DatapointsToAlarm: HEALTH_UNHEALTHY_REPORTS,
      Threshold: 1,
      ComparisonOperator: "LessThanThreshold",
      // A runner that stops reporting is not known to be healthy.
      TreatMissingData: "breaching",
      Tags: [{ Key: LAB_TAG, Value: lab.name }],
    }),
  );
  return DONE;
};

/** DeleteAlarms takes at most 100 names per call. */
const DELETE_ALARMS_BATCH = 100;

const deleteHealthAlarms = async (action: ActionOf<"delete-health-alarms">): Promise<ApplyOutcome> => {
  const batches: string[][] = [];
  for (let i = 0; i < action.alarmNames.length; i += DELETE_ALARMS_BATCH) {
    batches.push(action.alarmNames.slice(i, i + DELETE_ALARMS_BATCH));
  }
  await Promise.all(batches.map((names) => cloudWatch.send(new DeleteAlarmsCommand({ AlarmNames: names }))));
  return DONE;
};
