// One reconciler function per lab, from the same code, with that lab's configuration; the EventBridge rules
// on the default bus that wake it; and the dead-letter queue for what failed every retry.
import type { LabConfig } from "../functions/core/config.ts";
import { accountContext, componentName, pascal } from "./account.ts";
import { labs } from "./labs.ts";
import { deadLetterQueueName, functionName, type RuleKind, requeueQueueName, ruleName } from "./naming.ts";
import { labEventPatterns, SCHEDULE_EXPRESSION } from "./patterns.ts";
import { reconcilerPolicy, toFunctionPermissions } from "./policy.ts";
import { store } from "./store.ts";

/** A reconcile observes the lab and applies a plan; it never waits for a command to finish on a runner. */
const TIMEOUT = "2 minutes";
/** Lambda retries a failed asynchronous invocation twice, then sends it to the dead-letter queue. */
const ASYNC_RETRIES = 2;
/** EventBridge keeps retrying a delivery it could not make for an hour; events are hints, the schedule repairs. */
const DELIVERY_MAX_AGE_SECONDS = 60 * 60;
/** A requeue is a hint too: one that could not be handled within a quarter of an hour is dropped. */
const REQUEUE_RETENTION_SECONDS = 15 * 60;

const createReconciler = (lab: LabConfig) => {
  const stage = $app.stage;
  const name = (what: string) => componentName(lab.name, what);

  const deadLetters = new aws.sqs.Queue(name("DeadLetters"), {
    name: deadLetterQueueName(stage, lab.name),
    messageRetentionSeconds: 14 * 24 * 60 * 60,
    sqsManagedSseEnabled: true,
  });

  // Delayed "reconcile again soon" messages (a launching runner whose SSM agent had not registered yet).
  const requeue = new aws.sqs.Queue(name("Requeue"), {
    name: requeueQueueName(stage, lab.name),
    messageRetentionSeconds: REQUEUE_RETENTION_SECONDS,
    // Lambda's advice for a queue feeding a function: at least six times the function's timeout.
    visibilityTimeoutSeconds: 6 * 120,
    sqsManagedSseEnabled: true,
  });

  const fn = new sst.aws.Function(name("Reconciler"), {
    name: functionName(stage, lab.name),
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
      LABGATE_REQUEUE_URL: requeue.url,
      LABGATE_STORE_TABLE: store.name,
      LABGATE_AWS_ACCOUNT: accountContext.apply((ctx) => JSON.stringify(ctx)),
    },
    permissions: $resolve({
      ctx: accountContext,
      deadLetterQueueArn: deadLetters.arn,
      requeueQueueArn: requeue.arn,
      storeTableArn: store.arn,
    }).apply(({ ctx, deadLetterQueueArn, requeueQueueArn, storeTableArn }) =>
      toFunctionPermissions(
        reconcilerPolicy(lab, { ...ctx, deadLetterQueueArn, requeueQueueArn, storeTableArn }),
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

  new aws.lambda.EventSourceMapping(name("RequeueSource"), {
    eventSourceArn: requeue.arn,
    functionName: fn.name,
    batchSize: 10,
    maximumBatchingWindowInSeconds: 1,
  });

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

  return { lab, function: fn, deadLetters, requeue, rules };
};

export const reconcilers = Object.fromEntries(labs.map((lab) => [lab.name, createReconciler(lab)]));
