// The requeue decision (functions/core/retry.ts): episodes, backoff, the cap, and what does not start one.
import { describe, expect, it } from "vitest";
import {
  decideRequeue,
  REQUEUE_LATENESS_MS,
  REQUEUE_MAX_ATTEMPTS,
  type RequeueEpisode,
  requeueDelay,
} from "../../functions/core/retry.ts";

const T = Date.parse("2026-11-26T09:00:00Z");
const DEFERRED = "push-setup:i-0f0000000000a0003 deferred";
const UNREAD = "alarms: read failed";

/** Plays the requeue invocations of an episode, each arriving when it is due; returns the decisions. */
const playRequeues = (reasons: readonly string[], start: number) => {
  const decisions = [decideRequeue(undefined, reasons, start)];
  for (;;) {
    const last = decisions.at(-1);
    if (last?.requeueAt === undefined) return decisions;
    decisions.push(decideRequeue(last.episode, reasons, last.requeueAt, last.attempt));
  }
};

describe("decideRequeue", () => {
  it("asks for nothing when nothing waits and no episode runs", () => {
    expect(decideRequeue(undefined, [], T)).toEqual({ outcome: "none", episode: undefined, changed: false });
  });

  it("starts an episode on a new reason: attempt 1, 30 s later", () => {
    const d = decideRequeue(undefined, [DEFERRED], T);
    expect(d).toEqual({
      outcome: "requeue",
      episode: { reasons: [DEFERRED], attempts: 1, dueAt: T + 30_000 },
      changed: true,
      requeueAt: T + 30_000,
      attempt: 1,
    });
  });

  it("backs off 30 s, 60 s, 120 s, then stops at the cap and the schedule takes over", () => {
    const decisions = playRequeues([DEFERRED], T);
    expect(decisions.map((d) => d.outcome)).toEqual(["requeue", "requeue", "requeue", "exhausted"]);
    expect(decisions.flatMap((d) => (d.attempt === undefined ? [] : [d.attempt]))).toEqual([1, 2, 3]);
    expect(REQUEUE_MAX_ATTEMPTS).toBe(3);
    expect([1, 2, 3].map(requeueDelay)).toEqual([30_000, 60_000, 120_000]);
    // Each requeue is due its delay after the requeue before it ran.
    expect(decisions.slice(0, 3).map((d) => d.requeueAt)).toEqual([T + 30_000, T + 90_000, T + 210_000]);
    const exhausted = decisions.at(-1);
    expect(exhausted?.episode).toEqual({ reasons: [DEFERRED], attempts: 3, dueAt: undefined });
    expect(exhausted?.changed).toBe(true);
  });

  it("starts nothing when the schedule (or any event) reconciles the same cause after the cap", () => {
    const spent: RequeueEpisode = { reasons: [DEFERRED], attempts: 3, dueAt: undefined };
    for (let tick = 1; tick <= 36; tick++) {
      // Three hours of the 5-minute schedule: the bug was a new chain of requeues from each of these.
      const d = decideRequeue(spent, [DEFERRED], T + tick * 300_000);
      expect(d).toEqual({ outcome: "spent", episode: spent, changed: false });
    }
  });

  it("asks for nothing while a requeue is pending: the schedule, events and Lambda's retries in between", () => {
    const pending: RequeueEpisode = { reasons: [DEFERRED], attempts: 2, dueAt: T + 60_000 };
    for (const now of [T, T + 59_000, T + 60_000, T + 60_000 + REQUEUE_LATENESS_MS - 1]) {
      expect(decideRequeue(pending, [DEFERRED], now).outcome).toBe("pending");
    }
    // A stale requeue (an earlier attempt's) is not the one the episode waits for.
    expect(decideRequeue(pending, [DEFERRED], T + 61_000, 1).outcome).toBe("pending");
  });

  it("takes the next attempt when the pending requeue runs, even early (the scheduler's minute)", () => {
    const pending: RequeueEpisode = { reasons: [DEFERRED], attempts: 1, dueAt: T + 30_000 };
    const d = decideRequeue(pending, [DEFERRED], T + 5_000, 1);
    expect(d).toMatchObject({ outcome: "requeue", attempt: 2, requeueAt: T + 5_000 + 60_000 });
  });

  it("counts any reconcile as the requeue once it is a minute late (a lost requeue does not stop the episode)", () => {
    const pending: RequeueEpisode = { reasons: [DEFERRED], attempts: 1, dueAt: T + 30_000 };
    const now = T + 30_000 + REQUEUE_LATENESS_MS;
    expect(decideRequeue(pending, [DEFERRED], now)).toMatchObject({ outcome: "requeue", attempt: 2 });
  });

  it("starts a new episode (attempt 1) when a reason the episode does not know appears", () => {
    const spent: RequeueEpisode = { reasons: [DEFERRED], attempts: 3, dueAt: undefined };
    const d = decideRequeue(spent, [UNREAD, DEFERRED], T);
    expect(d).toMatchObject({
      outcome: "requeue",
      attempt: 1,
      episode: { reasons: [UNREAD, DEFERRED].sort(), attempts: 1 },
    });
  });

  it("continues the episode when some of its reasons went away (progress is not a new cause)", () => {
    const episode: RequeueEpisode = { reasons: [UNREAD, DEFERRED].sort(), attempts: 3, dueAt: undefined };
    expect(decideRequeue(episode, [DEFERRED], T).outcome).toBe("spent");
    const pending: RequeueEpisode = { ...episode, attempts: 1, dueAt: T + 30_000 };
    expect(decideRequeue(pending, [DEFERRED], T + 10_000).outcome).toBe("pending");
  });

  it("keys the episode on the set of reasons: order and duplicates do not matter", () => {
    const first = decideRequeue(undefined, [DEFERRED, UNREAD, DEFERRED], T);
    const again = decideRequeue(first.episode, [UNREAD, DEFERRED], T + 1_000);
    expect(first.episode?.reasons).toEqual([UNREAD, DEFERRED].sort());
    expect(again.outcome).toBe("pending");
  });

  it("clears the episode when nothing waits any more, and a later recurrence starts afresh", () => {
    const spent: RequeueEpisode = { reasons: [DEFERRED], attempts: 3, dueAt: undefined };
    const ended = decideRequeue(spent, [], T);
    expect(ended).toEqual({ outcome: "ended", episode: undefined, changed: true });
    expect(decideRequeue(ended.episode, [DEFERRED], T + 1_000)).toMatchObject({
      outcome: "requeue",
      attempt: 1,
    });
  });

  it("asks for nothing, and writes nothing, when the store (and so the episode) could not be read", () => {
    expect(decideRequeue("unread", [DEFERRED, "store: read failed"], T)).toEqual({
      outcome: "unread",
      episode: undefined,
      changed: false,
    });
  });
});
