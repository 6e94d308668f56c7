// Each lab's alarm topic (its subscribers are the lab's alarmEmails) and its lab-level alarms
// (infra/alarm-specs.ts). The per-runner tunnel health alarms are created and deleted by the reconciler.
import type { LabConfig } from "../functions/core/config.ts";
import { componentName, pascal } from "./account.ts";
import { labAlarmSpecs } from "./alarm-specs.ts";
import { labs } from "./labs.ts";
import { alarmTopicName, deadLetterQueueName, functionName } from "./naming.ts";

const createAlarms = (lab: LabConfig) => {
  const stage = $app.stage;
  const name = (what: string) => componentName(lab.name, what);

  const topic = new aws.sns.Topic(name("AlarmTopic"), { name: alarmTopicName(stage, lab.name) });
  // E-mail subscriptions stay "pending confirmation" until each address follows the link AWS sends it.
  const subscriptions = lab.alarmEmails.map(
    (email, i) =>
      new aws.sns.TopicSubscription(name(`AlarmEmail${i + 1}`), {
        topic: topic.arn,
        protocol: "email",
        endpoint: email,
      }),
  );

  const specs = labAlarmSpecs({
    lab: lab.name,
    functionName: functionName(stage, lab.name),
    deadLetterQueueName: deadLetterQueueName(stage, lab.name),
  });
  const alarms = specs.map(
    (spec) =>
      new aws.cloudwatch.MetricAlarm(name(`${pascal(spec.kind)}Alarm`), {
        name: spec.name,
        alarmDescription: spec.description,
        namespace: spec.namespace,
        metricName: spec.metricName,
        dimensions: spec.dimensions,
        statistic: spec.statistic,
        period: spec.period,
        evaluationPeriods: spec.evaluationPeriods,
        datapointsToAlarm: spec.datapointsToAlarm,
        comparisonOperator: spec.comparison,
        threshold: spec.threshold,
        treatMissingData: spec.treatMissingData,
        alarmActions: [topic.arn],
        okActions: spec.notifyOk ? [topic.arn] : [],
      }),
  );

  return { topic, subscriptions, alarms };
};

export const labAlarms = Object.fromEntries(labs.map((lab) => [lab.name, createAlarms(lab)]));
