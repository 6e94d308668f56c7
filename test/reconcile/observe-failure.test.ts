// A reconcile that cannot read its lab still says so in its metrics: one ObserveFailed, so that the lab's
// dashboard shows it and the invocation never publishes an empty set of metrics.
import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { describe, expect, it } from "vitest";
import { METRIC_NAMESPACE, METRICS } from "../../functions/core/names.ts";
import { labNamed } from "../../functions/local/sample-world.ts";
import type { LabProvider } from "../../functions/reconcile/ports.ts";
import { reconcile } from "../../functions/reconcile/reconcile.ts";

const throttled = Object.assign(new Error("Rate exceeded"), { name: "RequestLimitExceeded" });
const unreadable: LabProvider = {
  observe: () => Promise.reject(throttled),
  apply: () => Promise.reject(new Error("nothing may be applied")),
  ownsInstance: () => Promise.resolve(true),
};

describe("a reconcile that cannot read its lab", () => {
  it("fails with the read's error and counts one ObserveFailed", async () => {
    const metrics = new Metrics({ namespace: METRIC_NAMESPACE, serviceName: "labgate" });
    const logger = new Logger({ logLevel: "SILENT" });
    await expect(
      reconcile(labNamed("foo"), unreadable, { dryRun: false, trigger: "schedule", logger, metrics }),
    ).rejects.toBe(throttled);
    expect(metrics.hasStoredMetrics()).toBe(true);
    const emf = metrics.serializeMetrics();
    expect(emf._aws.CloudWatchMetrics[0]?.Metrics.map((m) => m.Name)).toEqual([METRICS.observeFailed]);
    expect(emf[METRICS.observeFailed]).toBe(1);
  });
});
