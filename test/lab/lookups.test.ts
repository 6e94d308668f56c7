// How the lab's failover measurements count a worker's name lookups: one failed when it did not bring Beaker's
// address in time; lookups are back for good at the first success after the last failure.
import { describe, expect, it } from "vitest";
import { LOOKUP_INTERVAL_MS, parseLookups } from "../../functions/local/lab/lookups.ts";

const T0 = 1_795_664_000_000;
/** Lookup k is sent at T0 + (k - 1) * 100 ms and ends `tookMs` later, with Beaker's address or an error. */
const line = (seq: number, ok: boolean, tookMs = 3) => {
  const sentAt = T0 + (seq - 1) * LOOKUP_INTERVAL_MS;
  return JSON.stringify({
    seq,
    sentAt,
    endedAt: sentAt + tookMs,
    ok,
    answer: ok ? "10.200.0.10" : "ETIMEOUT",
  });
};
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("lookup results", () => {
  it("count none failed when every lookup got Beaker's address, in whatever order they ended", () => {
    const text = [...range(1, 30).map((k) => line(k, true))].reverse().join("\n");
    expect(parseLookups("a", text)).toMatchObject({
      sent: 30,
      failed: 0,
      longestGapSeconds: 0.1,
      backAt: undefined,
    });
  });

  it("count the lookups of an outage, when each was sent, and when lookups were back for good", () => {
    const text = [
      ...range(1, 10).map((k) => line(k, true)),
      ...range(11, 14).map((k) => line(k, false, 2_000)),
      line(15, true, 900),
      line(16, false, 2_000),
      ...range(17, 30).map((k) => line(k, true)),
    ].join("\n");
    const result = parseLookups("b", text);
    expect(result.failed).toBe(5);
    expect(result.failures.map((f) => f.seq)).toEqual([11, 12, 13, 14, 16]);
    expect(result.backAt).toBe(T0 + 16 * LOOKUP_INTERVAL_MS);
    expect(result.longestGapSeconds).toBe(0.5);
  });

  it("say lookups never came back when the last ones failed", () => {
    const text = [...range(1, 5).map((k) => line(k, true)), ...range(6, 8).map((k) => line(k, false))].join(
      "\n",
    );
    expect(parseLookups("a", text).backAt).toBe(Number.POSITIVE_INFINITY);
  });

  it("ignore what is not a lookup's line (the prober's own messages)", () => {
    expect(parseLookups("a", `node: warning\n${line(1, true)}\n`).sent).toBe(1);
  });
});
