// The lab-level CloudWatch alarms, as data (infra/alarms.ts deploys them, the README explains each).
// They are built on the metrics the reconciler publishes (namespace METRIC_NAMESPACE, with exactly the
// dimensions of core/names.ts metricDimensions: an alarm must name all of a metric's dimensions) and
// on the function's and the dead-letter queue's own metrics. The per-runner tunnel health alarms are not
// here: the reconciler creates and deletes them with its runners (core/names.ts healthAlarmName).
import { METRIC_NAMESPACE, METRICS, metricDimensions } from "../functions/core/names.ts";
import { LAB_ALARMS, type LabAlarm, labAlarmName } from "./naming.ts";

export interface AlarmSpec {
  readonly kind: LabAlarm;
  readonly name: string;
  readonly description: string;
  readonly namespace: string;
  readonly metricName: string;
  readonly dimensions: Readonly<Record<string, string>>;
  readonly statistic: "Sum" | "Maximum" | "Minimum";
  readonly period: number;
  readonly evaluationPeriods: number;
  readonly datapointsToAlarm: number;
  readonly comparison: "GreaterThanOrEqualToThreshold" | "LessThanThreshold";
  readonly threshold: number;
  readonly treatMissingData: "missing" | "notBreaching" | "breaching" | "ignore";
  /** Whether the return to OK is worth a message too (a failover is over the moment it happened). */
  readonly notifyOk: boolean;
}

export interface AlarmTargets {
  readonly lab: string;
  readonly functionName: string;
  readonly deadLetterQueueName: string;
}

export const labAlarmSpecs = ({ lab, functionName, deadLetterQueueName }: AlarmTargets): AlarmSpec[] => {
  const labMetric = { namespace: METRIC_NAMESPACE, dimensions: metricDimensions(lab) };
  const fn = { namespace: "AWS/Lambda", dimensions: { FunctionName: functionName } };
  const spec = (kind: LabAlarm, rest: Omit<AlarmSpec, "kind" | "name">): AlarmSpec => ({
    kind,
    name: labAlarmName(lab, kind),
    ...rest,
  });
  /**
   * A state the reconciler reports at least every 5 minutes (the schedule): one report of 1 is enough; a
   * 5-minute bucket without a report keeps the last state (the not-running alarm covers silence).
   */
  const reportedEachReconcile = (metricName: string) =>
    ({
      ...labMetric,
      metricName,
      statistic: "Maximum",
      period: 300,
      evaluationPeriods: 2,
      datapointsToAlarm: 1,
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: 1,
      treatMissingData: "missing",
      notifyOk: true,
    }) as const;
  return [
    spec(LAB_ALARMS.unreachable, {
      description: `labgate ${lab}: no runner can carry the lab; CI jobs cannot reach its Beaker servers. See infra/README.md, runbook "A lab is unreachable".`,
      ...reportedEachReconcile(METRICS.labUnreachable),
    }),
    spec(LAB_ALARMS.rolloutHalted, {
      description: `labgate ${lab}: a new runner setup failed and its rollout is halted; the other runners keep their working setup. Read the failed command's output (SSM Run Command history, or the reconciler's rollout-halted finding), then fix the configuration or the runner: the rollout resumes by itself. See infra/README.md, runbook "A rollout is halted".`,
      ...reportedEachReconcile(METRICS.rolloutHalted),
    }),
    spec(LAB_ALARMS.failover, {
      description: `labgate ${lab}: routes moved off a runner that could no longer carry them. Check that runner's tunnel health alarm and its VPN.`,
      ...labMetric,
      metricName: METRICS.failovers,
      statistic: "Sum",
      period: 60,
      evaluationPeriods: 1,
      datapointsToAlarm: 1,
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: 1,
      treatMissingData: "notBreaching",
      notifyOk: false,
    }),
    spec(LAB_ALARMS.errors, {
      description: `labgate ${lab}: the reconciler function failed (an exception or a timeout). Read its logs.`,
      ...fn,
      metricName: "Errors",
      statistic: "Sum",
      period: 300,
      evaluationPeriods: 1,
      datapointsToAlarm: 1,
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: 1,
      treatMissingData: "notBreaching",
      notifyOk: true,
    }),
    spec(LAB_ALARMS.actionsFailed, {
      description: `labgate ${lab}: AWS calls of the reconciler keep failing (in 2 of the last 3 periods of 5 minutes). Read the errors in its logs or run npm run resync -- --dry-run.`,
      ...labMetric,
      metricName: METRICS.actionsFailed,
      statistic: "Sum",
      period: 300,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: 1,
      treatMissingData: "notBreaching",
      notifyOk: true,
    }),
    spec(LAB_ALARMS.notRunning, {
      description: `labgate ${lab}: the reconciler has not run for 15 minutes although its schedule runs it every 5; check the schedule rule and the function's reserved concurrency.`,
      ...fn,
      metricName: "Invocations",
      statistic: "Sum",
      period: 900,
      evaluationPeriods: 1,
      datapointsToAlarm: 1,
      comparison: "LessThanThreshold",
      threshold: 1,
      treatMissingData: "breaching",
      notifyOk: true,
    }),
    spec(LAB_ALARMS.deadLetters, {
      description: `labgate ${lab}: events or invocations failed every retry and wait in the dead-letter queue ${deadLetterQueueName}. Read them, fix the cause, then purge the queue.`,
      namespace: "AWS/SQS",
      dimensions: { QueueName: deadLetterQueueName },
      metricName: "ApproximateNumberOfMessagesVisible",
      statistic: "Maximum",
      period: 300,
      evaluationPeriods: 1,
      datapointsToAlarm: 1,
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: 1,
      treatMissingData: "notBreaching",
      notifyOk: true,
    }),
  ];
};
