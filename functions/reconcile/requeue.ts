// After a reconcile: whether to reconcile the lab again soon (functions/core/retry.ts decides), carried out
// through a port: the handler keeps the one pending requeue in an EventBridge Scheduler schedule, the lab in a
// box in a timer, the simulation (test/support/simulation.ts) in its model of time. All three run this code.
import {
  decideRequeue,
  REQUEUE_MAX_ATTEMPTS,
  type RequeueDecision,
  type RequeueEpisode,
} from "../core/retry.ts";
import type { Again } from "./reconcile.ts";

/** The one pending requeue of a lab: when, which attempt, and why (for the log of the reconcile it causes). */
export interface RequeueRequest {
  readonly at: number;
  readonly attempt: number;
  readonly reason: string;
}

export interface Requeuer {
  /** Keeps the episode in the lab's store (undefined: none). */
  record(episode: RequeueEpisode | undefined): Promise<void>;
  /** Makes `request` the lab's one pending requeue, replacing any other. */
  schedule(request: RequeueRequest): Promise<void>;
}

/** What this needs of a logger: Powertools' Logger fits. */
export interface RequeueLog {
  info(message: string, extra: Record<string, unknown>): void;
  warn(message: string, extra: Record<string, unknown>): void;
}

/**
 * Decides and carries out the decision: the episode is written before the requeue is scheduled (and only when
 * it changed), so that a requeue is never asked for without its attempt being counted: a store that cannot
 * be written stops the requeues instead of letting them run uncounted. A requeue that cannot be scheduled is
 * only logged: the episode takes any reconcile a minute after it was due as that attempt.
 */
export const requeueAfter = async (
  again: Again,
  options: {
    readonly now: number;
    /** For a requeue invocation: the attempt it carries. */
    readonly firedAttempt?: number | undefined;
    readonly requeuer: Requeuer;
    readonly log: RequeueLog;
  },
): Promise<RequeueDecision> => {
  const { now, firedAttempt, requeuer, log } = options;
  const decision = decideRequeue(again.episode, again.reasons, now, firedAttempt);
  const reason = (decision.episode?.reasons ?? again.reasons).join("; ");
  const line = { requeue: decision.outcome, reasons: again.reasons, attempt: decision.attempt };
  if (decision.changed) {
    try {
      await requeuer.record(decision.episode);
    } catch (error) {
      log.warn(
        `could not record the requeue episode, so no requeue is asked for (the schedule takes over): ${describe(error)}`,
        line,
      );
      return decision;
    }
  }
  switch (decision.outcome) {
    case "requeue": {
      const at = decision.requeueAt ?? now;
      const attempt = decision.attempt ?? 1;
      try {
        await requeuer.schedule({ at, attempt, reason });
        log.info(
          `reconciling again in ${Math.round((at - now) / 1000)} s (attempt ${attempt} of ${REQUEUE_MAX_ATTEMPTS}): ${reason}`,
          line,
        );
      } catch (error) {
        log.warn(`could not schedule the requeue (attempt ${attempt}): ${describe(error)}; ${reason}`, line);
      }
      break;
    }
    case "exhausted":
      log.info(`retries exhausted for ${reason}: the schedule takes over`, line);
      break;
    case "ended":
      log.info("nothing waits for another reconcile any more: the requeue episode is closed", line);
      break;
    case "unread":
      if (again.reasons.length > 0)
        log.info(
          `the store could not be read, so no requeue is asked for (the schedule takes over): ${again.reasons.join("; ")}`,
          line,
        );
      break;
    case "pending":
      log.info(`a requeue is pending already (attempt ${decision.episode?.attempts}): ${reason}`, line);
      break;
    case "spent":
      log.info(`retries were exhausted earlier for ${reason}: the schedule reconciles`, line);
      break;
    case "none":
      break;
  }
  return decision;
};

const describe = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);
