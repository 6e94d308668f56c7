// Whether to reconcile a lab again soon, and when to stop asking: a pure decision over the lab's requeue
// episode (kept in its store) and what wants another reconcile now. No clock, no SDK: `now` is an argument.
//
// An episode is one cause of "again soon" (an action deferred, a read failed, Plan.followUp), retried with
// backoff up to a cap; then the schedule (rate(5 minutes)) takes over, and reconciles of the same cause start
// nothing new. At most one requeue is pending per lab: the handler keeps it in one schedule with a fixed name.

/** Where a requeue invocation says it comes from (the input of the lab's requeue schedule). */
export const REQUEUE_EVENT_SOURCE = "labgate.requeue";

/**
 * The first requeue of an episode comes 30 s after the reconcile that asked for it: long enough for an SSM
 * agent that has just booted, short next to the launch hook's 30 minutes. Each further one waits twice as
 * long: 30 s, 60 s, 120 s.
 */
export const REQUEUE_FIRST_DELAY_MS = 30_000;

/**
 * Three requeues per episode (due 30 s, 1.5 min and 3.5 min after the cause appeared). A fourth would be due
 * after 7.5 min, by when the 5-minute schedule has reconciled at least once: it would add an invocation, not
 * speed. So after the third the schedule takes over.
 */
export const REQUEUE_MAX_ATTEMPTS = 3;

/**
 * EventBridge Scheduler invokes its target within the minute of the schedule's time ("60 second precision",
 * Scheduler User Guide, Schedule types). A requeue not seen a minute after it was due is taken as lost or
 * spent: any reconcile after that counts as it.
 */
export const REQUEUE_LATENESS_MS = 60_000;

/** The delay before attempt `n` (1-based) of an episode. */
export const requeueDelay = (attempt: number): number => REQUEUE_FIRST_DELAY_MS * 2 ** (attempt - 1);

/** The lab's current requeue episode, as the store keeps it. */
export interface RequeueEpisode {
  /** What wanted another reconcile when the episode began, sorted and without duplicates: its identity. */
  readonly reasons: readonly string[];
  /** Requeues asked for in this episode so far (1 once the first is asked for). */
  readonly attempts: number;
  /** When the last requeue asked for is due (ms since the epoch); undefined once the schedule took over. */
  readonly dueAt: number | undefined;
}

export interface RequeueDecision {
  /**
   * none: nothing wants another reconcile, and no episode runs. ended: nothing wants one any more; the episode
   * is closed. requeue: one more, at `requeueAt`. pending: one is pending already. exhausted: the cap is
   * reached now; the schedule takes over. spent: it was reached earlier. unread: the store could not be read,
   * so the episode is unknown; nothing is asked for (the schedule takes over, and no chain of requeues can
   * start from a store that keeps failing).
   */
  readonly outcome: "none" | "ended" | "requeue" | "pending" | "exhausted" | "spent" | "unread";
  /** The episode the store must hold after this decision (undefined: none). */
  readonly episode: RequeueEpisode | undefined;
  /** Whether that differs from what the store holds: write only then. */
  readonly changed: boolean;
  /** When the one pending requeue must run (outcome requeue). */
  readonly requeueAt?: number;
  /** Which attempt of the episode it is (outcome requeue). */
  readonly attempt?: number;
}

/**
 * Decides whether to requeue, from the episode the store holds ("unread" when the store could not be read),
 * the reasons this reconcile found (deferred action ids, failed reads, Plan.followUp texts: each stable for
 * its cause), the time, and, for a requeue invocation, the attempt it carries.
 *
 * A reason the episode does not know starts a new episode (attempt 1). Reasons the episode knows continue it,
 * also when some of its reasons went away: a cause that resolves is progress, not a new cause, and starting
 * over then would retry the causes that remain twice. The next attempt is asked for only once the pending one
 * ran (the requeue invocation of that attempt, or any reconcile a minute after it was due); every other
 * reconcile in between (the schedule, an event, Lambda's retry of a failed invocation) asks for nothing.
 */
export const decideRequeue = (
  episode: RequeueEpisode | undefined | "unread",
  reasons: readonly string[],
  now: number,
  firedAttempt?: number,
): RequeueDecision => {
  if (episode === "unread") return { outcome: "unread", episode: undefined, changed: false };
  const wanted = [...new Set(reasons)].sort();
  if (wanted.length === 0) {
    return episode === undefined
      ? { outcome: "none", episode: undefined, changed: false }
      : { outcome: "ended", episode: undefined, changed: true };
  }
  const known = episode !== undefined && wanted.every((r) => episode.reasons.includes(r));
  if (!known) return requeue({ reasons: wanted, attempts: 0, dueAt: undefined }, now);
  if (episode.dueAt === undefined) return { outcome: "spent", episode, changed: false };
  const ran = firedAttempt === episode.attempts || now >= episode.dueAt + REQUEUE_LATENESS_MS;
  if (!ran) return { outcome: "pending", episode, changed: false };
  if (episode.attempts >= REQUEUE_MAX_ATTEMPTS)
    return { outcome: "exhausted", episode: { ...episode, dueAt: undefined }, changed: true };
  return requeue(episode, now);
};

const requeue = (episode: RequeueEpisode, now: number): RequeueDecision => {
  const attempt = episode.attempts + 1;
  const requeueAt = now + requeueDelay(attempt);
  return {
    outcome: "requeue",
    episode: { reasons: episode.reasons, attempts: attempt, dueAt: requeueAt },
    changed: true,
    requeueAt,
    attempt,
  };
};
