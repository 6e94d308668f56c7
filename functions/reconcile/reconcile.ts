// One reconcile of one lab: observe, plan, apply (unless dry run), report. Shared by the Lambda handler and
// the local lab, which differ only in the provider they pass.
import type { Logger } from "@aws-lambda-powertools/logger";
import { type Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { type Action, describeAction, type Finding } from "../core/actions.ts";
import type { LabConfig } from "../core/config.ts";
import { METRICS } from "../core/names.ts";
import { plan } from "../core/plan.ts";
import type { RequeueEpisode } from "../core/retry.ts";
import type { World } from "../core/world.ts";
import { execute, type Result } from "./execute.ts";
import type { LabProvider } from "./ports.ts";

export interface Report {
  readonly lab: string;
  readonly dryRun: boolean;
  /** What caused this reconcile, e.g. "lifecycle launch i-0123" or "schedule". */
  readonly trigger: string;
  readonly actions: readonly (Record<string, unknown> & {
    readonly outcome: Result["outcome"] | "planned";
  })[];
  readonly findings: readonly Finding[];
  readonly errors: readonly string[];
  /** Why another reconcile should follow soon (Plan.followUp); the handler requeues one. */
  readonly followUp?: readonly string[];
  /** Set when the event was not acted upon (malformed, or about another lab's resources). */
  readonly ignored?: string;
}

/** What a reconcile tells the requeue decision (functions/reconcile/requeue.ts), beside its report. */
export interface Again {
  /**
   * What wants another reconcile soon, one reason per cause, each stable for its cause: a deferred action
   * (`push-setup:i-... deferred`), a failed read (`alarms: read failed`), a Plan.followUp text.
   */
  readonly reasons: readonly string[];
  /** The lab's requeue episode as observed; "unread" when the store could not be read. */
  readonly episode: RequeueEpisode | undefined | "unread";
}

export interface Observability {
  readonly logger: Logger;
  readonly metrics: Metrics;
}

const subject = (a: Action): Record<string, string> =>
  "instanceId" in a
    ? { instanceId: a.instanceId }
    : "routeTableId" in a
      ? { routeTableId: a.routeTableId, instanceId: a.target.instanceId }
      : {};

export const reconcile = async (
  lab: LabConfig,
  provider: LabProvider,
  options: { readonly dryRun: boolean; readonly trigger: string } & Observability,
): Promise<Report & { readonly runnerIds: readonly string[]; readonly again: Again }> => {
  const { logger, metrics, dryRun, trigger } = options;
  const started = performance.now();
  let world: World;
  try {
    world = await provider.observe(lab);
  } catch (error) {
    // Counted, so that a lab labgate cannot even read shows on its dashboard (and the invocation publishes
    // a metric rather than none).
    metrics.addMetric(METRICS.observeFailed, MetricUnit.Count, 1);
    throw error;
  }
  const decided = plan(world, lab);

  for (const f of decided.findings) {
    const line = {
      finding: f.kind,
      ...(f.instanceId && { instanceId: f.instanceId }),
      ...(f.subnetId && { subnetId: f.subnetId }),
    };
    logger.error(f.message, line);
  }

  const results = dryRun
    ? new Map<string, Result>()
    : await execute(decided.actions, (a) => provider.apply(a, lab));
  const errors: string[] = [];
  const actions = decided.actions.map((a) => {
    const r = results.get(a.id);
    const outcome: Result["outcome"] | "planned" = r?.outcome ?? "planned";
    const line = { ...describeAction(a), ...subject(a), outcome };
    if (r?.outcome === "failed") {
      errors.push(`${a.id}: ${r.error}`);
      logger.error(`failed: ${a.reason}`, { ...line, error: r.error });
    } else if (r?.outcome === "skipped" || r?.outcome === "deferred") {
      logger.warn(`${r.outcome}: ${a.reason} (${r.why})`, { ...line, why: r.why });
    } else {
      logger.info(dryRun ? `would: ${a.reason}` : a.reason, line);
    }
    return r && "error" in r ? { ...line, error: r.error } : r && "why" in r ? { ...line, why: r.why } : line;
  });

  const done = (a: Action): boolean => results.get(a.id)?.outcome === "done";
  const routes = decided.actions.filter(
    (a) => (a.kind === "replace-route" || a.kind === "create-route") && done(a),
  );
  metrics.addMetric(METRICS.routesChanged, MetricUnit.Count, routes.length);
  metrics.addMetric(
    METRICS.failovers,
    MetricUnit.Count,
    routes.filter((a) => "failover" in a && a.failover).length,
  );
  metrics.addMetric(METRICS.actionsFailed, MetricUnit.Count, errors.length);
  metrics.addMetric(
    METRICS.labUnreachable,
    MetricUnit.Count,
    decided.findings.some((f) => f.kind === "lab-unreachable") ? 1 : 0,
  );
  metrics.addMetric(
    METRICS.rolloutHalted,
    MetricUnit.Count,
    decided.findings.some((f) => f.kind === "rollout-halted") ? 1 : 0,
  );
  metrics.addMetric(METRICS.credentialsFree, MetricUnit.Count, decided.credentialsFree);
  metrics.addMetric(
    METRICS.reconcileDuration,
    MetricUnit.Milliseconds,
    Math.round(performance.now() - started),
  );
  for (const [az, count] of Object.entries(decided.eligibleByAz)) {
    metrics.singleMetric().addDimension("AZ", az).addMetric(METRICS.eligibleRunners, MetricUnit.Count, count);
  }
  logger.info(`reconciled: ${decided.actions.length} action(s), ${errors.length} error(s)`, {
    trigger,
    instanceIds: world.runners.filter((r) => r.state !== "terminated").map((r) => r.instanceId),
    dryRun,
    eligibleByAz: decided.eligibleByAz,
    credentialsFree: decided.credentialsFree,
  });
  return {
    lab: lab.name,
    dryRun,
    trigger,
    actions,
    findings: decided.findings,
    followUp: decided.followUp,
    errors,
    runnerIds: world.runners.map((r) => r.instanceId),
    again: {
      reasons: [
        ...decided.actions
          .filter((a) => results.get(a.id)?.outcome === "deferred")
          .map((a) => `${a.id} deferred`),
        ...world.unknown.map((u) => `${u.read}: read failed`),
        ...decided.followUp,
      ],
      episode: world.unknown.some((u) => u.read === "store") ? "unread" : world.requeue,
    },
  };
};
