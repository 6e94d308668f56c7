// The reconciler of one lab. Every accepted event leads to the same thing: observe the lab, plan, apply
// (unless dry run) and report. Events are hints only (level-triggered), so a lost, repeated or late one does
// no harm; malformed ones are logged, counted and acknowledged, since a retry would not make them valid.
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import { dynamodb } from "../aws/clients.ts";
import { createAwsProvider } from "../aws/provider.ts";
import { awsRequeuer, parseRequeueTarget } from "../aws/requeue.ts";
import { SeenReports } from "../aws/seen-reports.ts";
import { DynamoStore } from "../aws/store.ts";
import { ConfigError, parseAccountContext, parseLabConfig } from "../core/config.ts";
import { METRICS } from "../core/names.ts";
import { parseTrigger } from "../events/triggers.ts";
import { labObservability } from "./observability.ts";
import { type Report, reconcile } from "./reconcile.ts";
import { concerns, describeTrigger } from "./relevance.ts";
import { requeueAfter } from "./requeue.ts";

// Cold start: an invalid configuration fails here, naming the field and the reason.
const lab = parseLabConfig(process.env.LABGATE_CONFIG);
/** The lab's requeue schedule, the function's ARN and the role that invokes it (infra sets them); without
 *  it, deferred actions wait for the schedule. */
const requeueTarget = parseRequeueTarget(process.env.LABGATE_REQUEUE);
/** The deployment's store table (infra/store.ts): leases and labgate's records of runners live there. */
const storeTable = process.env.LABGATE_STORE_TABLE;
if (!storeTable)
  throw new ConfigError("LABGATE_STORE_TABLE is not set (infra sets it to the deployment's store table)");
/** The deployment's partition, region and account (infra sets it): runners are named by ARN for IAM. */
const account = parseAccountContext(process.env.LABGATE_AWS_ACCOUNT);
const { logger, metrics } = labObservability(lab.name);
const store = new DynamoStore(dynamodb, storeTable);
/** Runners' tunnel reports seen in events: EC2 may not show the tag yet to the reconcile the event starts. */
const seenReports = new SeenReports();
const awsProvider = createAwsProvider(store, logger, account, seenReports);
const requeuer =
  requeueTarget && awsRequeuer(requeueTarget, (episode) => store.recordRequeue(lab.name, episode));

/** Runners seen by the last reconcile: an event about one of them needs no lookup to be recognised. */
let knownRunners = new Set<string>();

export class ReconcileError extends Error {
  override name = "ReconcileError";
}

const ignored = (reason: string): Report => ({
  lab: lab.name,
  dryRun: false,
  trigger: "none",
  actions: [],
  findings: [],
  errors: [],
  ignored: reason,
});

export const reconcileEvent = async (event: unknown): Promise<Report> => {
  const parsed = parseTrigger(event);
  if (!parsed.ok) {
    logger.warn(`rejected event: ${parsed.reason}`, { rejected: parsed.reason });
    metrics.addMetric(METRICS.rejectedEvents, MetricUnit.Count, 1);
    return ignored(parsed.reason);
  }
  const { trigger } = parsed;
  const relevance = await concerns(trigger, lab, knownRunners, awsProvider);
  if (relevance !== true) {
    logger.debug(`ignored: ${relevance}`, { trigger: describeTrigger(trigger) });
    metrics.addMetric(METRICS.ignoredEvents, MetricUnit.Count, 1);
    return ignored(relevance);
  }
  if (trigger.kind === "tunnel-report" && trigger.report !== undefined)
    seenReports.note(trigger.instanceId, trigger.report, Date.now());
  const dryRun = trigger.kind === "resync" && trigger.dryRun;
  const { runnerIds, again, ...report } = await reconcile(lab, awsProvider, {
    dryRun,
    trigger: describeTrigger(trigger),
    logger,
    metrics,
  });
  knownRunners = new Set(runnerIds);
  // Something could not be done or read yet, or what was done unlocks more: reconcile again soon rather than
  // wait for the schedule, backed off and capped per cause (functions/core/retry.ts). Never on a dry run.
  if (requeuer && !dryRun) {
    await requeueAfter(again, {
      now: Date.now(),
      firedAttempt: trigger.kind === "requeue" ? trigger.attempt : undefined,
      requeuer,
      log: logger,
    });
  }
  // A manual resync shows its errors to the person who ran it; an event's failure makes Lambda retry it,
  // and the retry reconciles again.
  if (report.errors.length > 0 && trigger.kind !== "resync") {
    throw new ReconcileError(`${report.errors.length} action(s) failed: ${report.errors.join("; ")}`);
  }
  return report;
};

export const handler = middy(reconcileEvent).use(injectLambdaContext(logger)).use(logMetrics(metrics));
