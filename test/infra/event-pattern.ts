// An offline EventBridge pattern matcher for the subset of the pattern language labgate uses (literal
// values, prefix, anything-but, nested objects): npm has no maintained library for it, and TestEventPattern
// is an API call. Semantics from https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html:
// every field of the pattern must match; a leaf lists alternatives (any one matches); when the event's
// value is an array, the leaf matches if any element matches. Anything else throws, so a pattern that uses
// an operator this matcher does not know fails the tests instead of matching by accident.
import type { EventPattern, PatternValue } from "../../infra/patterns.ts";

export class UnsupportedPatternError extends Error {
  override name = "UnsupportedPatternError";
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const matchesScalar = (rule: PatternValue, value: unknown): boolean => {
  if (rule === null || typeof rule !== "object") return value === rule;
  if ("prefix" in rule) return typeof value === "string" && value.startsWith(rule.prefix);
  if ("anything-but" in rule) {
    // anything-but matches a present value that is none of the listed ones (a missing field never matches).
    return value !== undefined && !rule["anything-but"].some((v) => v === value);
  }
  throw new UnsupportedPatternError(`unsupported pattern operator ${JSON.stringify(rule)}`);
};

const matchesLeaf = (rules: readonly PatternValue[], value: unknown): boolean => {
  if (value === undefined) return false;
  const values = Array.isArray(value) ? value : [value];
  return rules.some((rule) => values.some((v) => !isRecord(v) && matchesScalar(rule, v)));
};

export const matchesPattern = (pattern: EventPattern, event: unknown): boolean => {
  if (!isRecord(event)) return false;
  return Object.entries(pattern).every(([field, rule]) => {
    const value = event[field];
    if (Array.isArray(rule)) {
      if (rule.length === 0) throw new UnsupportedPatternError(`field ${field} lists no values`);
      return matchesLeaf(rule as readonly PatternValue[], value);
    }
    if (isRecord(rule)) return matchesPattern(rule as EventPattern, value);
    throw new UnsupportedPatternError(`field ${field}: a pattern value must be an array or an object`);
  });
};
