// How the lab's failover measurements count ping's requests: a request is lost when it was never answered,
// unless it was sent in the last IN_FLIGHT_MS before ping was stopped (its reply may still be on its way).
import { describe, expect, it } from "vitest";
import { IN_FLIGHT_MS, parsePing } from "../../functions/local/lab/scenarios.ts";

const T0 = 1_795_664_000;
/** ping -D output: request k goes out at T0 + (k - 1) * 0.1 s; its reply comes 1 ms later. */
const reply = (seq: number, lateMs = 1) =>
  `[${(T0 + (seq - 1) * 0.1 + lateMs / 1000).toFixed(6)}] 64 bytes from 10.200.0.10: icmp_seq=${seq} ttl=63 time=${lateMs} ms`;
/** ping -O: printed when the next request goes out and this one has no reply yet. */
const noAnswer = (seq: number) => `[${(T0 + seq * 0.1).toFixed(6)}] no answer yet for icmp_seq=${seq}`;
const summary = (sent: number, received: number) =>
  `--- 10.200.0.10 ping statistics ---\n${sent} packets transmitted, ${received} received, 0% packet loss, time 1000ms`;
/** ping was stopped `ms` after request `seq` went out. */
const stopAfter = (seq: number, ms: number) => (T0 + (seq - 1) * 0.1) * 1000 + ms;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("ping results", () => {
  it("count no loss when every request got its reply but the last ones, still on their way when ping stopped", () => {
    // Requests 29 and 30 went out less than IN_FLIGHT_MS before the stop and have no reply yet.
    const text = [...range(1, 28).map((k) => reply(k)), noAnswer(29), summary(30, 28)].join("\n");
    const result = parsePing("a", text, stopAfter(30, 50));
    expect(result).toMatchObject({ sent: 30, received: 28, lost: 0, longestGapSeconds: 0.1 });
    expect(result.judged).toBe(30 - Math.ceil(IN_FLIGHT_MS / 100));
  });

  it("count two requests in flight at the stop as not lost, where the old count called one of them lost", () => {
    // The reply to 29 is 150 ms late (a busy machine): two requests are unanswered when ping stops.
    const text = [...range(1, 28).map((k) => reply(k)), summary(30, 28)].join("\n");
    expect(parsePing("a", text, stopAfter(30, 20)).lost).toBe(0);
  });

  it("count the requests lost in an outage, when they were sent, and the outage's length", () => {
    const text = [...range(1, 20).map((k) => reply(k)), ...range(21, 23).map(noAnswer)]
      .concat(
        range(24, 40).map((k) => reply(k)),
        summary(40, 37),
      )
      .join("\n");
    const result = parsePing("a", text, stopAfter(40, 2_000));
    expect(result).toMatchObject({ lost: 3, longestGapSeconds: 0.4 });
    expect(result.lostAt.map((l) => l.seq)).toEqual([21, 22, 23]);
    expect(result.lostAt[0]?.sentAt).toBeCloseTo((T0 + 2.0) * 1000, -1);
  });

  it("count a late reply as received", () => {
    const text = [...range(1, 9).map((k) => reply(k)), noAnswer(10), reply(10, 900)]
      .concat(
        range(11, 30).map((k) => reply(k)),
        summary(30, 30),
      )
      .join("\n");
    expect(parsePing("a", text, stopAfter(30, 2_000)).lost).toBe(0);
  });

  it("count an outage that lasted until ping stopped, up to the requests still in flight", () => {
    const text = [...range(1, 2).map((k) => reply(k)), ...range(3, 39).map(noAnswer), summary(40, 2)].join(
      "\n",
    );
    const result = parsePing("a", text, stopAfter(40, 50));
    expect(result.lost).toBe(result.judged - 2);
    expect(result.lost).toBeGreaterThanOrEqual(40 - 2 - Math.ceil(IN_FLIGHT_MS / 100) - 1);
  });

  it("count every request lost when ping printed no timestamp at all", () => {
    expect(parsePing("a", summary(3, 0), stopAfter(3, 50)).lost).toBe(3);
  });
});
