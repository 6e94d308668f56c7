// Names of the AWS resources infra creates for a lab, shared by infra/ and the resync CLI. Resources that
// SST would otherwise name get fixed names here, so an operator (and `npm run resync`) can find them.
import { alarmPrefix, healthAlarmName } from "../functions/core/names.ts";

/** Lambda allows 64 characters of letters, digits, hyphens and underscores in a function name. */
const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** EventBridge rule names: 64 characters of letters, digits, and . - _ */
const RULE_NAME = /^[A-Za-z0-9._-]{1,64}$/;
/** CloudWatch dashboard names: 255 characters of letters, digits, - and _. */
const DASHBOARD_NAME = /^[A-Za-z0-9_-]{1,255}$/;
/** EventBridge Scheduler schedule names: 64 characters of letters, digits, and . - _ */
const SCHEDULE_NAME = /^[0-9a-zA-Z._-]{1,64}$/;
/** IAM role names: 64 characters of letters, digits, and + = , . @ _ - */
const ROLE_NAME = /^[\w+=,.@-]{1,64}$/;

export class NamingError extends Error {
  override name = "NamingError";
}

const checked = (name: string, pattern: RegExp, what: string): string => {
  if (!pattern.test(name)) {
    throw new NamingError(`${what} name "${name}" is not valid (${pattern}); use a shorter stage name`);
  }
  return name;
};

/** The lab's reconciler function: one per lab and stage. */
export const functionName = (stage: string, lab: string): string =>
  checked(`labgate-${stage}-${lab}`, FUNCTION_NAME, "Lambda function");

/** The EventBridge rules of a lab; see infra/patterns.ts for what each one matches. */
export type RuleKind =
  | "autoscaling"
  | "instance-state"
  | "health-alarm"
  | "tunnel-report"
  | "command-status"
  | "schedule";
export const ruleName = (stage: string, lab: string, kind: RuleKind): string =>
  checked(`labgate-${stage}-${lab}-${kind}`, RULE_NAME, "EventBridge rule");

/** The deployment's store table: every lab's leases and records, each lab's under its own partition key. */
export const storeTableName = (stage: string): string => `labgate-${stage}-store`;

/** Failed asynchronous invocations and undeliverable events of a lab end up here. */
export const deadLetterQueueName = (stage: string, lab: string): string =>
  `labgate-${stage}-${lab}-dead-letters`;
/**
 * The lab's one pending requeue (functions/aws/requeue.ts): a one-time EventBridge Scheduler schedule of this
 * name in the default group, created by the function itself. One name, so at most one is pending.
 */
export const requeueScheduleName = (stage: string, lab: string): string =>
  checked(`labgate-${stage}-${lab}-requeue`, SCHEDULE_NAME, "EventBridge Scheduler schedule");
/** The role EventBridge Scheduler assumes to invoke the lab's function for its requeue. */
export const requeueRoleName = (stage: string, lab: string): string =>
  checked(`labgate-${stage}-${lab}-requeue-invoke`, ROLE_NAME, "IAM role");
export const alarmTopicName = (stage: string, lab: string): string => `labgate-${stage}-${lab}-alarms`;
export const runnerPolicyName = (stage: string, lab: string): string => `labgate-${stage}-${lab}-runner`;
/** The alias of the lab's credential key: operators encrypt its credential parameters with it (--key-id). */
export const credentialKeyAlias = (stage: string, lab: string): string =>
  `alias/labgate-${stage}-${lab}-credentials`;

/** The lab's CloudWatch dashboard (infra/dashboard-body.ts). */
export const dashboardName = (stage: string, lab: string): string =>
  checked(`labgate-${stage}-${lab}`, DASHBOARD_NAME, "CloudWatch dashboard");

/**
 * The lab-level alarms infra creates. They share the lab's alarm prefix (so the console lists a lab's
 * alarms together) but never start with the per-runner `tunnel-` prefix: the reconciler's EventBridge
 * rule and its IAM policy only cover `labgate-<lab>-tunnel-*`, so these neither trigger reconciles nor can
 * be changed by the function.
 */
export const LAB_ALARMS = {
  unreachable: "unreachable",
  failover: "failover",
  errors: "errors",
  actionsFailed: "actions-failed",
  notRunning: "not-running",
  deadLetters: "dead-letters",
  rolloutHalted: "rollout-halted",
} as const;
export type LabAlarm = (typeof LAB_ALARMS)[keyof typeof LAB_ALARMS];
export const labAlarmName = (lab: string, alarm: LabAlarm): string => `${alarmPrefix(lab)}${alarm}`;

/** Prefix of the per-runner tunnel health alarms the reconciler creates (core/names.ts healthAlarmName). */
export const healthAlarmPrefix = (lab: string): string => healthAlarmName(lab, "");
