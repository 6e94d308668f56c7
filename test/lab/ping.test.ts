import { describe, expect, it } from "vitest";
import { parsePing } from "../../functions/local/lab/scenarios.ts";

const reply = (seq: number) =>
  `[1795664000.${seq}] 64 bytes from 10.200.0.10: icmp_seq=${seq} ttl=63 time=0.9 ms`;
const summary = (sent: number, received: number) =>
  `--- 10.200.0.10 ping statistics ---\n${sent} packets transmitted, ${received} received, 0% packet loss, time 1000ms`;

describe("ping results", () => {
  it("count no loss when every request got its reply but the last one, still on its way when ping stopped", () => {
    const text = [1, 2, 3, 4].map(reply).concat(summary(5, 4)).join("\n");
    expect(parsePing("a", text)).toEqual({ az: "a", sent: 5, received: 4, lost: 0, longestGapSeconds: 0.1 });
  });

  it("count the requests lost in an outage and its length", () => {
    const text = [1, 2, 6, 7, 8].map(reply).concat(summary(8, 5)).join("\n");
    expect(parsePing("a", text)).toMatchObject({ lost: 3, longestGapSeconds: 0.4 });
  });

  it("count an outage that lasted until ping stopped", () => {
    const text = [1, 2].map(reply).concat(summary(10, 2)).join("\n");
    expect(parsePing("a", text)).toMatchObject({ lost: 7, longestGapSeconds: 0.8 });
  });
});
