// The lab's dashboard, as data: every series must be a metric that is really published, with exactly its
// namespace, name and dimensions. The reconciler's metrics are read from the EMF records a real reconcile
// and a real handler invocation print; the runners' from the health reporter they run; the dead-letter
// queue's name from infra's naming.
import type { Context } from "aws-lambda";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type LabConfig, LabConfigSchema } from "../../functions/core/config.ts";
import { METRICS } from "../../functions/core/names.ts";
import { memoryProvider } from "../../functions/local/model.ts";
import { convergedWorld, labNamed, withPool } from "../../functions/local/sample-world.ts";
import { labObservability } from "../../functions/reconcile/observability.ts";
import type { LabProvider } from "../../functions/reconcile/ports.ts";
import { reconcile } from "../../functions/reconcile/reconcile.ts";
import { renderHealthScript } from "../../functions/render/health.ts";
import { dashboardBody, dashboardPanels, type Series, searchExpression } from "../../infra/dashboard-body.ts";
import { labs } from "../../infra/labs.ts";
import { deadLetterQueueName } from "../../infra/naming.ts";

interface Published {
  readonly namespace: string;
  readonly metricName: string;
  readonly dimensions: Readonly<Record<string, string>>;
}

/** Every metric of the EMF records among `lines` (JSON objects with an _aws.CloudWatchMetrics directive). */
const fromEmf = (lines: readonly string[]): Published[] =>
  lines.flatMap((line) => {
    let record: Record<string, unknown> & {
      _aws?: {
        CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[];
      };
    };
    try {
      record = JSON.parse(line);
    } catch {
      return [];
    }
    return (record._aws?.CloudWatchMetrics ?? []).flatMap((d) =>
      d.Dimensions.flatMap((keys) =>
        d.Metrics.map((m) => ({
          namespace: d.Namespace,
          metricName: m.Name,
          dimensions: Object.fromEntries(keys.map((k) => [k, String(record[k])])),
        })),
      ),
    );
  });

/** What the rendered health reporter publishes: its namespace, metric and dimensions, values resolved. */
const fromHealthScript = (script: string): Published => {
  const vars = Object.fromEntries(
    [...script.matchAll(/^readonly (\w+)='([^']*)'$/gm)].map((m) => [m[1], m[2]]),
  );
  const namespace = /--namespace '([^']+)'/.exec(script)?.[1] ?? "";
  const metricName = /--metric-name '([^']+)'/.exec(script)?.[1] ?? "";
  const dimensions = Object.fromEntries(
    (/--dimensions "([^"]+)"/.exec(script)?.[1] ?? "").split(",").map((pair) => {
      const [key = "", value = ""] = pair.split("=");
      return [key, value.replace(/^\$(\w+)$/, (_, v: string) => vars[v] ?? `$${v}`)];
    }),
  );
  return { namespace, metricName, dimensions };
};

const lab: LabConfig = withPool(labNamed("foo"), 8);
const published: Published[] = [];
const context = {
  functionName: "labgate-prod-foo",
  awsRequestId: "req-1",
  getRemainingTimeInMillis: () => 60_000,
} as unknown as Context;

beforeAll(async () => {
  // Powertools prints EMF on the global console in dev mode; metrics are on, logs off.
  vi.stubEnv("POWERTOOLS_DEV", "true");
  vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "false");
  vi.stubEnv("POWERTOOLS_LOG_LEVEL", "SILENT");
  const lines: string[] = [];
  const log = vi.spyOn(console, "log").mockImplementation((line: unknown) => void lines.push(String(line)));

  // A reconcile of a converged lab of two AZs, as the handler runs it.
  const { logger, metrics } = labObservability("foo", { quiet: true });
  const world = convergedWorld(lab, {
    azs: ["eu-central-1a", "eu-central-1b"],
    runnersPerAz: 2,
    subnetsPerAz: 1,
  });
  await reconcile(lab, memoryProvider(world), { dryRun: true, trigger: "schedule", logger, metrics });
  metrics.publishStoredMetrics();
  // A reconcile that could not read the lab.
  const unreadable: LabProvider = {
    ...memoryProvider(world),
    observe: () => Promise.reject(new Error("throttled")),
  };
  await reconcile(lab, unreadable, { dryRun: true, trigger: "schedule", logger, metrics }).catch(
    () => undefined,
  );
  metrics.publishStoredMetrics();
  // The handler, given an event it rejects.
  vi.stubEnv("LABGATE_CONFIG", JSON.stringify(LabConfigSchema.parse(labs.find((l) => l.name === "foo"))));
  vi.stubEnv("LABGATE_STORE_TABLE", "labgate-test-store");
  vi.stubEnv(
    "LABGATE_AWS_ACCOUNT",
    JSON.stringify({ partition: "aws", region: "eu-central-1", account: "123456789012" }),
  );
  const { handler } = await import("../../functions/reconcile/handler.ts");
  await handler(null, context);

  log.mockRestore();
  published.push(...fromEmf(lines), fromHealthScript(renderHealthScript(lab, "i-0f0000000000a0001")));
});
afterEach(() => vi.restoreAllMocks());

const targets = {
  lab: "foo",
  region: "eu-central-1",
  deadLetterQueueName: deadLetterQueueName("prod", "foo"),
};
const panels = dashboardPanels(targets);
const allSeries = panels.flatMap((p) => p.series);

/** Whether a series names a published metric: same namespace and name, same dimension keys, same values. */
const isPublished = (s: Series): boolean =>
  published.some(
    (p) =>
      p.namespace === s.namespace &&
      p.metricName === s.metricName &&
      JSON.stringify(Object.keys(p.dimensions).sort()) ===
        JSON.stringify([...Object.keys(s.dimensions), ...(s.by ? [s.by] : [])].sort()) &&
      Object.entries(s.dimensions).every(([k, v]) => p.dimensions[k] === v),
  );

describe("the lab's dashboard", () => {
  it("shows what an operator needs: eligible runners per AZ, failovers, routes, tunnels, credentials, rejected events, dead letters", () => {
    const names = allSeries.map((s) => `${s.metricName}${s.by ? ` by ${s.by}` : ""}`);
    expect(names).toEqual(
      expect.arrayContaining([
        `${METRICS.eligibleRunners} by AZ`,
        METRICS.failovers,
        METRICS.routesChanged,
        "TunnelHealthy by InstanceId",
        METRICS.credentialsFree,
        METRICS.rejectedEvents,
        "ApproximateNumberOfMessagesVisible",
      ]),
    );
  });

  it("names the reconciler's and the runners' metrics exactly as they are published", () => {
    expect(published.length).toBeGreaterThan(5);
    for (const s of allSeries.filter((x) => x.namespace !== "AWS/SQS"))
      expect(
        isPublished(s),
        `${s.namespace}/${s.metricName} ${JSON.stringify(s.dimensions)} by ${s.by}`,
      ).toBe(true);
  });

  it("would catch a series whose dimensions differ from the published metric's", () => {
    const [eligible] = allSeries;
    expect(eligible && isPublished(eligible)).toBe(true);
    expect(eligible && isPublished({ ...eligible, by: undefined })).toBe(false);
    expect(eligible && isPublished({ ...eligible, dimensions: { Lab: "foo" } })).toBe(false);
  });

  it("watches the lab's own dead-letter queue, as its alarm does", () => {
    const dlq = allSeries.find((s) => s.namespace === "AWS/SQS");
    expect(dlq).toMatchObject({
      metricName: "ApproximateNumberOfMessagesVisible",
      dimensions: { QueueName: "labgate-prod-foo-dead-letters" },
    });
  });

  it("finds per-AZ and per-runner lines by a SEARCH on the exact dimensions, for this lab only", () => {
    const eligible = allSeries.find((s) => s.by === "AZ") as Series;
    expect(searchExpression(eligible)).toBe(
      `SEARCH('{labgate,AZ,Lab,service} MetricName="EligibleRunners" Lab="foo" service="labgate"', 'Minimum', 60)`,
    );
    const tunnels = allSeries.find((s) => s.by === "InstanceId") as Series;
    expect(searchExpression(tunnels)).toBe(
      `SEARCH('{labgate/foo,InstanceId,Lab} MetricName="TunnelHealthy" Lab="foo"', 'Minimum', 10)`,
    );
  });

  it("is a valid dashboard body: a graph per panel in the lab's region, on a 24-column grid", () => {
    const body = dashboardBody(targets);
    const graphs = body.widgets.filter((w) => w.type === "metric");
    expect(graphs).toHaveLength(panels.length);
    for (const w of body.widgets) expect(w.x + w.width).toBeLessThanOrEqual(24);
    for (const g of graphs) {
      const p = g.properties as { region: string; metrics: unknown[][]; title: string };
      expect(p.region).toBe("eu-central-1");
      expect(p.metrics.length).toBeGreaterThan(0);
    }
    const failovers = graphs.find((g) => (g.properties as { title: string }).title.startsWith("Failovers"));
    expect((failovers?.properties as { metrics: unknown[] } | undefined)?.metrics).toContainEqual([
      "labgate",
      "Failovers",
      "service",
      "labgate",
      "Lab",
      "foo",
      { stat: "Sum", period: 60, label: "failovers" },
    ]);
    expect(JSON.stringify(body).length).toBeLessThan(20_000);
  });
});
