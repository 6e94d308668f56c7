// The requeue adapter's pure parts: the schedule's at() expression and the target infra passes.
import { describe, expect, it } from "vitest";
import { atExpression, parseRequeueTarget } from "../../functions/aws/requeue.ts";
import { ConfigError } from "../../functions/core/config.ts";

describe("atExpression", () => {
  it("writes the time in UTC as at(yyyy-mm-ddThh:mm:ss), rounded up to the second", () => {
    expect(atExpression(Date.parse("2026-11-26T09:00:30Z"))).toBe("at(2026-11-26T09:00:30)");
    expect(atExpression(Date.parse("2026-11-26T09:00:30.001Z"))).toBe("at(2026-11-26T09:00:31)");
    expect(atExpression(Date.parse("2026-12-31T23:59:59.500Z"))).toBe("at(2027-01-01T00:00:00)");
  });
});

describe("parseRequeueTarget", () => {
  const target = {
    schedule: "labgate-prod-foo-requeue",
    functionArn: "arn:aws:lambda:eu-central-1:123456789012:function:labgate-prod-foo",
    roleArn: "arn:aws:iam::123456789012:role/labgate-prod-foo-requeue-invoke",
  };

  it("reads what infra sets, and nothing when it is unset", () => {
    expect(parseRequeueTarget(JSON.stringify(target))).toEqual(target);
    expect(parseRequeueTarget(undefined)).toBeUndefined();
    expect(parseRequeueTarget("")).toBeUndefined();
  });

  it("fails the cold start naming what is wrong", () => {
    expect(() => parseRequeueTarget("{")).toThrow(ConfigError);
    expect(() => parseRequeueTarget(JSON.stringify({ ...target, schedule: "a b" }))).toThrow(
      /LABGATE_REQUEUE is invalid: schedule/,
    );
    expect(() => parseRequeueTarget(JSON.stringify({ ...target, extra: 1 }))).toThrow(ConfigError);
  });
});
