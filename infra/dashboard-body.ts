// The CloudWatch dashboard of one lab, as data (infra/dashboard.ts deploys it): what an operator watches, on
// exactly the metrics the reconciler and the runners publish (core/names.ts: namespace, names, dimensions),
// and the dead-letter queue's own. test/infra/dashboard.test.ts checks every series against what is really
// published.
import {
  HEALTH_DIMENSION_INSTANCE,
  HEALTH_DIMENSION_LAB,
  METRIC_NAMESPACE,
  METRICS,
  metricDimensions,
  runnerHealthNamespace,
  TUNNEL_HEALTH_METRIC,
} from "../functions/core/names.ts";

export interface DashboardTargets {
  readonly lab: string;
  readonly region: string;
  readonly deadLetterQueueName: string;
}

/** One line on a graph: a metric with all of its dimensions; with `by`, one line per value of that one. */
export interface Series {
  readonly label: string;
  readonly namespace: string;
  readonly metricName: string;
  /** Every dimension the metric is published with, and its value (all but `by`). */
  readonly dimensions: Readonly<Record<string, string>>;
  /** A dimension whose values come and go (an AZ, a runner): its lines are found by a metric SEARCH. */
  readonly by?: string;
  readonly stat: "Sum" | "Minimum" | "Maximum";
  readonly period: number;
}

export interface Panel {
  readonly title: string;
  readonly series: readonly Series[];
}

export const dashboardPanels = ({ lab, deadLetterQueueName }: DashboardTargets): Panel[] => {
  const reconciler = (metricName: string, stat: Series["stat"], label: string): Series => ({
    label,
    namespace: METRIC_NAMESPACE,
    metricName,
    dimensions: metricDimensions(lab),
    stat,
    period: 60,
  });
  return [
    {
      title: "Eligible runners per AZ (0: the AZ's subnets fall back to another AZ, or wait)",
      series: [{ ...reconciler(METRICS.eligibleRunners, "Minimum", "eligible runners"), by: "AZ" }],
    },
    {
      title: "Failovers and routes changed",
      series: [
        reconciler(METRICS.failovers, "Sum", "failovers"),
        reconciler(METRICS.routesChanged, "Sum", "routes changed"),
      ],
    },
    {
      title: "Tunnel health per runner (1 healthy, 0 not; reported every 10 s)",
      series: [
        {
          label: "tunnel healthy",
          namespace: runnerHealthNamespace(lab),
          metricName: TUNNEL_HEALTH_METRIC,
          dimensions: { [HEALTH_DIMENSION_LAB]: lab },
          by: HEALTH_DIMENSION_INSTANCE,
          stat: "Minimum",
          period: 10,
        },
      ],
    },
    {
      title: "Credentials free (0: a new runner gets no tunnel)",
      series: [reconciler(METRICS.credentialsFree, "Minimum", "credentials free")],
    },
    {
      title: "Lab unreachable (1: no runner can carry it)",
      series: [reconciler(METRICS.labUnreachable, "Maximum", "lab unreachable")],
    },
    {
      title: "Rejected events and failed reads",
      series: [
        reconciler(METRICS.rejectedEvents, "Sum", "rejected events"),
        reconciler(METRICS.observeFailed, "Sum", "reads of the lab that failed"),
      ],
    },
    {
      title: "Dead-letter queue depth (events and invocations that failed every retry)",
      series: [
        {
          label: "messages",
          namespace: "AWS/SQS",
          metricName: "ApproximateNumberOfMessagesVisible",
          dimensions: { QueueName: deadLetterQueueName },
          stat: "Maximum",
          period: 300,
        },
      ],
    },
  ];
};

/** The SEARCH expression of a series with `by`: its metric with exactly its dimensions, for this lab. */
export const searchExpression = (s: Series): string => {
  const keys = [...Object.keys(s.dimensions), s.by ?? ""].filter(Boolean).sort();
  const values = Object.entries(s.dimensions)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => ` ${k}="${v}"`)
    .join("");
  return `SEARCH('{${[s.namespace, ...keys].join(",")}} MetricName="${s.metricName}"${values}', '${s.stat}', ${s.period})`;
};

// https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html
const metricEntry = (s: Series, id: string): unknown[] =>
  s.by
    ? [{ expression: searchExpression(s), id, period: s.period }]
    : [
        s.namespace,
        s.metricName,
        ...Object.entries(s.dimensions).flat(),
        { stat: s.stat, period: s.period, label: s.label },
      ];

const WIDTH = 12;
const HEIGHT = 6;

/** The dashboard body: a line of text, then the panels two by two, each a time-series graph. */
export const dashboardBody = (targets: DashboardTargets) => {
  const text = {
    type: "text",
    x: 0,
    y: 0,
    width: 2 * WIDTH,
    height: 2,
    properties: {
      markdown: `## labgate: lab ${targets.lab}\nThe reconciler's metrics and the runners' tunnel health. What to do about an alarm: infra/README.md, "Alarms". The lab now: \`npm run status -- --stage <stage> --lab ${targets.lab}\`.`,
    },
  };
  const graphs = dashboardPanels(targets).map((panel, i) => ({
    type: "metric",
    x: (i % 2) * WIDTH,
    y: 2 + Math.floor(i / 2) * HEIGHT,
    width: WIDTH,
    height: HEIGHT,
    properties: {
      title: panel.title,
      region: targets.region,
      view: "timeSeries",
      stacked: false,
      metrics: panel.series.map((s, j) => metricEntry(s, `e${i}${j}`)),
      yAxis: { left: { min: 0 } },
    },
  }));
  return { widgets: [text, ...graphs] };
};
