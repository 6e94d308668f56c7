// The offline matcher follows EventBridge's documented semantics for the operators labgate's rules use.
import { describe, expect, it } from "vitest";
import type { EventPattern } from "../../infra/patterns.ts";
import { matchesPattern, UnsupportedPatternError } from "./event-pattern.ts";

const event = {
  source: "aws.ssm",
  "detail-type": "EC2 Command Status-change Notification",
  detail: { status: "Success", count: 3, parameters: { commands: ["# marker a", "set -e"] } },
};

describe("matchesPattern", () => {
  it("matches when every field matches one of its listed values", () => {
    expect(matchesPattern({ source: ["aws.ec2", "aws.ssm"] }, event)).toBe(true);
    expect(matchesPattern({ source: ["aws.ssm"], "detail-type": ["Other"] }, event)).toBe(false);
  });

  it("compares numbers and strings exactly, without coercion", () => {
    expect(matchesPattern({ detail: { count: [3] } }, event)).toBe(true);
    expect(matchesPattern({ detail: { count: ["3"] } }, event)).toBe(false);
  });

  it("descends into nested objects and fails on a missing field", () => {
    expect(matchesPattern({ detail: { status: ["Success"] } }, event)).toBe(true);
    expect(matchesPattern({ detail: { missing: ["x"] } }, event)).toBe(false);
    expect(matchesPattern({ detail: { parameters: { nope: { deeper: ["x"] } } } }, event)).toBe(false);
  });

  it("matches an array field when any element matches", () => {
    expect(matchesPattern({ detail: { parameters: { commands: ["set -e"] } } }, event)).toBe(true);
    expect(matchesPattern({ detail: { parameters: { commands: [{ prefix: "# marker" }] } } }, event)).toBe(
      true,
    );
    expect(matchesPattern({ detail: { parameters: { commands: [{ prefix: "# other" }] } } }, event)).toBe(
      false,
    );
  });

  it("applies prefix to strings only", () => {
    expect(matchesPattern({ detail: { status: [{ prefix: "Succ" }] } }, event)).toBe(true);
    expect(matchesPattern({ detail: { count: [{ prefix: "3" }] } }, event)).toBe(false);
  });

  it("matches anything-but on a present value that is none of the listed ones", () => {
    expect(matchesPattern({ detail: { status: [{ "anything-but": ["InProgress"] }] } }, event)).toBe(true);
    expect(matchesPattern({ detail: { status: [{ "anything-but": ["Success"] }] } }, event)).toBe(false);
    expect(matchesPattern({ detail: { absent: [{ "anything-but": ["x"] }] } }, event)).toBe(false);
  });

  it("refuses operators and shapes it does not implement instead of guessing", () => {
    const numeric = { detail: { count: [{ numeric: [">", 1] }] } } as unknown as EventPattern;
    expect(() => matchesPattern(numeric, event)).toThrow(UnsupportedPatternError);
    const scalar = { source: "aws.ssm" } as unknown as EventPattern;
    expect(() => matchesPattern(scalar, event)).toThrow(UnsupportedPatternError);
    expect(() => matchesPattern({ source: [] }, event)).toThrow(UnsupportedPatternError);
  });
});
