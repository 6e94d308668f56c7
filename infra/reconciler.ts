// One reconciler function per lab, from the same code, with that lab's configuration; the EventBridge rules
// on the default bus that wake it; the role EventBridge Scheduler invokes it with for the lab's requeue (the
// schedule itself the function creates); and the dead-letter queue for what failed every retry.
import type { LabConfig } from "../functions/core/config.ts";
import { accountContext, componentName, pascal } from "./account.ts";
import { labs } from "./labs.ts";
import {
  deadLetterQueueName,
  functionName,
  type RuleKind,
  requeueRoleName,
  requeueScheduleName,
  ruleName,
} from "./naming.ts";
import { labEventPatterns, SCHEDULE_EXPRESSION } from "./patterns.ts";
import {
  arns,
  reconcilerPolicy,
  requeueRolePolicy,
  requeueTrustPolicy,
  toFunctionPermissions,
} from "./policy.ts";
import { store } from "./store.ts";

/** A reconcile observes the lab and applies a plan; it never waits for a command to finish on a runner. */
const TIMEOUT = "2 minutes";
/** Lambda retries a failed asynchronous invocation twice, then sends it to the dead-letter queue. */
const ASYNC_RETRIES = 2;
/** EventBridge keeps retrying a delivery it could not make for an hour; events are hints, the schedule repairs. */
const DELIVERY_MAX_AGE_SECONDS = 60 * 60;

const createReconciler = (lab: LabConfig) => {
  const stage = $app.stage;
  const name = (what: string) => componentName(lab.name, what);

  const deadLetters = new aws.sqs.Queue(name("DeadLetters"), {
    name: deadLetterQueueName(stage, lab.name),
    messageRetentionSeconds: 14 * 24 * 60 * 60,
    sqsManagedSseEnabled: true,
  });

  // "Reconcile again soon" (functions/aws/requeue.ts): the function creates a one-time schedule of a fixed name
  // that EventBridge Scheduler runs with this role, which may invoke this function and nothing else. Scheduler
  // invokes it asynchronously: a throttled requeue waits in Lambda's own queue (reserved concurrency 1).
  const fnName = functionName(stage, lab.name);
  const requeueRole = new aws.iam.Role(name("RequeueRole"), {
    name: requeueRoleName(stage, lab.name),
    description: `labgate ${lab.name}: EventBridge Scheduler invokes the reconciler for its requeue`,
    assumeRolePolicy: accountContext.apply((ctx) => JSON.stringify(requeueTrustPolicy(ctx))),
    inlinePolicies: [
      {
        name: "invoke-reconciler",
        policy: accountContext.apply((ctx) =>
          JSON.stringify(requeueRolePolicy(arns(ctx).lambdaFunction(fnName))),
        ),
      },
    ],
  });
  const requeue = $resolve({ ctx: accountContext, roleArn: requeueRole.arn }).apply(({ ctx, roleArn }) => ({
    schedule: requeueScheduleName(stage, lab.name),
    functionArn: arns(ctx).lambdaFunction(fnName),
    roleArn,
  }));

  const fn = new sst.aws.Function(name("Reconciler"), {
    name: fnName,
    description: `labgate: keeps lab ${lab.name}'s worker subnets routed through healthy runners`,
    handler: "functions/reconcile/handler.handler",
    runtime: "nodejs24.x",
    architecture: "arm64",
    memory: "512 MB",
    timeout: TIMEOUT,
    // One reconcile of a lab at a time (they would race on the same routes); labs run in parallel.
    concurrency: { reserved: 1 },
    logging: { format: "json", retention: "3 months" },
    // The function's only setting (the logger and metrics take their names from core/names.ts).
    environment: {
      LABGATE_CONFIG: JSON.stringify(lab),
      LABGATE_REQUEUE: requeue.apply((target) => JSON.stringify(target)),
      LABGATE_STORE_TABLE: store.name,
      LABGATE_AWS_ACCOUNT: accountContext.apply((ctx) => JSON.stringify(ctx)),
    },
    permissions: $resolve({
      ctx: accountContext,
      deadLetterQueueArn: deadLetters.arn,
      requeue,
      storeTableArn: store.arn,
    }).apply(({ ctx, deadLetterQueueArn, requeue: target, storeTableArn }) =>
      toFunctionPermissions(
        reconcilerPolicy(lab, {
          ...ctx,
          deadLetterQueueArn,
          requeueScheduleArn: arns(ctx).schedule(target.schedule),
          requeueRoleArn: target.roleArn,
          storeTableArn,
        }),
      ),
    ),
    retries: ASYNC_RETRIES,
    transform: {
      eventInvokeConfig: (args) => {
        args.destinationConfig = { onFailure: { destination: deadLetters.arn } };
      },
    },
  });

  const rule = (kind: RuleKind, args: { eventPattern?: string; scheduleExpression?: string }) => {
    const ruleId = name(`${pascal(kind)}Rule`);
    const r = new aws.cloudwatch.EventRule(ruleId, {
      name: ruleName(stage, lab.name, kind),
      description: `labgate ${lab.name}: ${kind}`,
      ...args,
    });
    const target = new aws.cloudwatch.EventTarget(`${ruleId}Target`, {
      rule: r.name,
      arn: fn.arn,
      retryPolicy: { maximumEventAgeInSeconds: DELIVERY_MAX_AGE_SECONDS, maximumRetryAttempts: 10 },
      deadLetterConfig: { arn: deadLetters.arn },
    });
    const permission = new aws.lambda.Permission(`${ruleId}Invoke`, {
      action: "lambda:InvokeFunction",
      function: fn.name,
      principal: "events.amazonaws.com",
      sourceArn: r.arn,
    });
    return { rule: r, target, permission };
  };

  const patterns = labEventPatterns(lab);
  const rules = [
    ...Object.entries(patterns).map(([kind, pattern]) =>
      rule(kind as RuleKind, { eventPattern: JSON.stringify(pattern) }),
    ),
    rule("schedule", { scheduleExpression: SCHEDULE_EXPRESSION }),
  ];

  // EventBridge sends an event it could not deliver to the queue; only this lab's rules may.
  new aws.sqs.QueuePolicy(name("DeadLettersPolicy"), {
    queueUrl: deadLetters.url,
    policy: $jsonStringify({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "UndeliverableEvents",
          Effect: "Allow",
          Principal: { Service: "events.amazonaws.com" },
          Action: "sqs:SendMessage",
          Resource: deadLetters.arn,
          Condition: { ArnEquals: { "aws:SourceArn": rules.map((r) => r.rule.arn) } },
        },
      ],
    }),
  });

  return { lab, function: fn, deadLetters, requeueRole, rules };
};

export const reconcilers = Object.fromEntries(labs.map((lab) => [lab.name, createReconciler(lab)]));
