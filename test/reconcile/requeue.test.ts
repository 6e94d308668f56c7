// After a reconcile (functions/reconcile/requeue.ts): the episode is written before the requeue is asked for,
// and a store that cannot be written stops the requeues; the requeue schedule's input is parsed at the edge.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { RequeueEpisode } from "../../functions/core/retry.ts";
import { parseTrigger } from "../../functions/events/triggers.ts";
import { type RequeueRequest, requeueAfter } from "../../functions/reconcile/requeue.ts";

const T = Date.parse("2026-11-26T09:00:00Z");
const DEFERRED = "push-setup:i-0f0000000000a0003 deferred";

const recorder = (failing: { record?: boolean; schedule?: boolean } = {}) => {
  const calls: string[] = [];
  const lines: string[] = [];
  const requeuer = {
    record: async (episode: RequeueEpisode | undefined) => {
      calls.push(`record ${episode?.attempts ?? "none"}`);
      if (failing.record)
        throw Object.assign(new Error("Throughput exceeds"), { name: "ThrottlingException" });
    },
    schedule: async (request: RequeueRequest) => {
      calls.push(`schedule ${request.attempt} at +${(request.at - T) / 1000} s: ${request.reason}`);
      if (failing.schedule) throw Object.assign(new Error("denied"), { name: "AccessDeniedException" });
    },
  };
  const log = {
    info: (message: string) => lines.push(`info ${message}`),
    warn: (message: string) => lines.push(`warn ${message}`),
  };
  return { calls, lines, options: { now: T, requeuer, log } };
};

describe("requeueAfter", () => {
  it("records the episode, then schedules the one requeue, and says so in words", async () => {
    const r = recorder();
    await requeueAfter({ reasons: [DEFERRED], episode: undefined }, r.options);
    expect(r.calls).toEqual(["record 1", `schedule 1 at +30 s: ${DEFERRED}`]);
    expect(r.lines).toEqual([`info reconciling again in 30 s (attempt 1 of 3): ${DEFERRED}`]);
  });

  it("asks for no requeue when the episode cannot be recorded (no uncounted chain of requeues)", async () => {
    const r = recorder({ record: true });
    const decision = await requeueAfter({ reasons: [DEFERRED], episode: undefined }, r.options);
    expect(decision.outcome).toBe("requeue");
    expect(r.calls).toEqual(["record 1"]);
    expect(r.lines).toEqual([
      "warn could not record the requeue episode, so no requeue is asked for (the schedule takes over): ThrottlingException: Throughput exceeds",
    ]);
  });

  it("logs a requeue it could not schedule, and goes on (the episode counts a late reconcile as it)", async () => {
    const r = recorder({ schedule: true });
    await requeueAfter({ reasons: [DEFERRED], episode: undefined }, r.options);
    expect(r.lines).toEqual([
      `warn could not schedule the requeue (attempt 1): AccessDeniedException: denied; ${DEFERRED}`,
    ]);
  });

  it("says when the retries are exhausted, and writes nothing more after that", async () => {
    const r = recorder();
    const last: RequeueEpisode = { reasons: [DEFERRED], attempts: 3, dueAt: T - 1_000 };
    const exhausted = await requeueAfter(
      { reasons: [DEFERRED], episode: last },
      { ...r.options, firedAttempt: 3 },
    );
    await requeueAfter({ reasons: [DEFERRED], episode: exhausted.episode }, r.options);
    expect(r.calls).toEqual(["record 3"]);
    expect(r.lines).toEqual([
      `info retries exhausted for ${DEFERRED}: the schedule takes over`,
      `info retries were exhausted earlier for ${DEFERRED}: the schedule reconciles`,
    ]);
  });

  it("writes nothing and asks for nothing when the store could not be read", async () => {
    const r = recorder();
    await requeueAfter({ reasons: ["store: read failed"], episode: "unread" }, r.options);
    expect(r.calls).toEqual([]);
  });
});

describe("the requeue schedule's input, parsed at the edge", () => {
  const sample = JSON.parse(readFileSync(new URL("../../events/requeue.json", import.meta.url), "utf8"));

  it("is a requeue trigger with its reason and attempt", () => {
    expect(parseTrigger(sample)).toEqual({
      ok: true,
      trigger: { kind: "requeue", reason: DEFERRED, attempt: 1 },
    });
  });

  it("is rejected, saying why, when malformed", () => {
    expect(parseTrigger({ ...sample, attempt: 0 })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^requeue event is malformed: attempt:/),
    });
    expect(parseTrigger({ ...sample, extra: true })).toMatchObject({ ok: false });
    expect(parseTrigger({ source: "labgate.requeue" })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/reason: .*attempt: /),
    });
  });
});
