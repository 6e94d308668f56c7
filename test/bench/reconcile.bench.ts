// `npm run bench`: AWS calls, sequential round trips and time of one reconcile, through the real handler and
// the real SDK clients, with every AWS call answered after 50 ms by a stand-in placed after the SDK's retry
// middleware (so the whole client stack runs). Lab foo, 3 AZs, 2 runners and 3 worker subnets per AZ, unless
// a scenario says otherwise.
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { Context } from "aws-lambda";
import { formatTable } from "../../functions/cli/report-table.ts";

process.env.AWS_REGION = "eu-central-1";
process.env.AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE";
process.env.AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
process.env.POWERTOOLS_METRICS_DISABLED = "true";

const { convergedWorld, labNamed, runnerId, withPool, withRunner } = await import(
  "../../functions/local/sample-world.ts"
);
// The worker subnets by tag: the worlds below have 3 or 30 per AZ.
const lab = {
  ...withPool(labNamed("foo"), 12),
  workerSubnets: { tag: { key: "labgate:worker-subnet", value: "foo" } },
};
process.env.LABGATE_CONFIG = JSON.stringify(lab);
process.env.LABGATE_STORE_TABLE = "labgate-bench-store";
// The lab's requeue schedule: a reconcile that must come again soon records its episode and creates it.
process.env.LABGATE_REQUEUE = JSON.stringify({
  schedule: "labgate-bench-foo-requeue",
  functionArn: "arn:aws:lambda:eu-central-1:123456789012:function:labgate-bench-foo",
  roleArn: "arn:aws:iam::123456789012:role/labgate-bench-foo-requeue-invoke",
});
process.env.LABGATE_AWS_ACCOUNT = JSON.stringify({
  partition: "aws",
  region: "eu-central-1",
  account: "123456789012",
});

const { clients } = await import("../../functions/aws/clients.ts");
const { readAnswers } = await import("../support/aws-world.ts");
type World = import("../../functions/core/world.ts").World;

const DELAY_MS = 50;
const READS = new Set(
  Object.keys(readAnswers(convergedWorld(lab, { azs: [], runnersPerAz: 0, subnetsPerAz: 0 }), lab)),
);

let world: World;
/** Reads that fail on every attempt (throttled past the SDK's retries), by command name. */
const failing = new Set<string>();
const stats = { reads: 0, writes: 0, rounds: 0, inflight: 0, byCommand: new Map<string, number>() };

// The stand-in for AWS: counts the call, waits, answers from `world`; writes succeed.
for (const client of clients) {
  client.middlewareStack.addRelativeTo(
    (_next: unknown, context: { commandName?: string }) => async (args: { input: object }) => {
      const name = context.commandName ?? "?";
      if (stats.inflight === 0) stats.rounds++;
      stats.inflight++;
      stats.byCommand.set(name, (stats.byCommand.get(name) ?? 0) + 1);
      if (READS.has(name)) stats.reads++;
      else stats.writes++;
      await sleep(DELAY_MS);
      stats.inflight--;
      if (failing.has(name)) {
        throw Object.assign(new Error("Rate exceeded"), {
          name: "ThrottlingException",
          $fault: "client",
          $metadata: { httpStatusCode: 400 },
        });
      }
      const answers = readAnswers(world, lab) as Record<string, (input: object) => object>;
      const output =
        answers[name]?.(args.input) ??
        (name === "SendCommandCommand"
          ? { Command: { CommandId: "11111111-2222-3333-4444-555555555555" } }
          : {});
      return { output: { $metadata: {}, ...output }, response: {} };
    },
    { name: "benchStandIn", relation: "after", toMiddleware: "retryMiddleware", override: true },
  );
}

const sample = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../events/${name}.json`, import.meta.url), "utf8"));
const context = {
  functionName: "labgate-foo",
  awsRequestId: "bench",
  getRemainingTimeInMillis: () => 60_000,
} as unknown as Context;

type Handler = (
  event: unknown,
  context: Context,
) => Promise<{ actions: readonly unknown[]; errors: readonly string[] }>;
let warmHandler: Handler | undefined;
let coldImports = 0;
const loadHandler = async (cold: boolean): Promise<Handler> => {
  if (!cold && warmHandler) return warmHandler;
  // A fresh copy of the handler module plays a new Lambda container: it has seen no runner yet.
  const mod = await import(`../../functions/reconcile/handler.ts?container=${coldImports++}`);
  const h = mod.handler as Handler;
  if (!cold) warmHandler = h;
  return h;
};

interface Row {
  scenario: string;
  reads: number;
  writes: number;
  rounds: number;
  ms: number;
  actions: number;
}

const measure = async (
  scenario: string,
  w: World,
  event: string,
  cold = false,
  fail: readonly string[] = [],
): Promise<Row> => {
  const handler = await loadHandler(cold);
  world = w;
  failing.clear();
  for (const name of fail) failing.add(name);
  stats.reads = stats.writes = stats.rounds = 0;
  stats.byCommand.clear();
  const started = performance.now();
  const report = await handler(sample(event), context);
  const ms = performance.now() - started;
  if (report.errors.length > 0) throw new Error(`${scenario}: ${report.errors.join("; ")}`);
  return {
    scenario,
    reads: stats.reads,
    writes: stats.writes,
    rounds: stats.rounds,
    ms: Math.round(ms),
    actions: report.actions.length,
  };
};

const azs = ["eu-central-1a", "eu-central-1b", "eu-central-1c"];
const standard = convergedWorld(lab, { azs, runnersPerAz: 2, subnetsPerAz: 3 });
const large = convergedWorld(lab, { azs, runnersPerAz: 2, subnetsPerAz: 30 });
const A1 = runnerId("eu-central-1a", 1);
const A2 = runnerId("eu-central-1a", 2);

// Warm the container up as Lambda would have: one scheduled reconcile.
await measure("warm-up", standard, "scheduled");

const rows: Row[] = [];
for (let i = 0; i < 5; i++) {
  rows.push(await measure("converged lab (schedule)", standard, "scheduled"));
  rows.push(
    await measure(
      "failover: runner stopped",
      withRunner(standard, A1, { state: "stopping" }),
      "ec2-state-change",
    ),
  );
  rows.push(
    await measure(
      "failover: runner stopped, cold container",
      withRunner(standard, A1, { state: "stopping" }),
      "ec2-state-change",
      true,
    ),
  );
  rows.push(
    await measure(
      "failover: AZ a lost (cross-AZ)",
      withRunner(withRunner(standard, A1, { state: "stopping" }), A2, { state: "stopped" }),
      "ec2-state-change",
    ),
  );
  rows.push(
    await measure(
      "failover: tunnel alarm",
      withRunner(standard, runnerId("eu-central-1b", 1), { healthAlarm: "ALARM" }),
      "alarm-state-change",
    ),
  );
  rows.push(
    await measure(
      "failover while one read fails (alarms throttled past retries)",
      withRunner(standard, A1, { state: "stopping" }),
      "ec2-state-change",
      false,
      ["DescribeAlarmsCommand"],
    ),
  );
  rows.push(
    await measure(
      "failover: runner stopped, 30 subnets/AZ",
      withRunner(large, A1, { state: "stopping" }),
      "ec2-state-change",
    ),
  );
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const scenarios = [...new Set(rows.map((r) => r.scenario))];
const lines = [
  ["scenario", "reads", "writes", "round trips", "time (ms, median of 5)", "actions"],
  ...scenarios.map((s) => {
    const of = rows.filter((r) => r.scenario === s);
    const first = of[0] as Row;
    return [
      s,
      String(first.reads),
      String(first.writes),
      String(first.rounds),
      String(median(of.map((r) => r.ms))),
      String(first.actions),
    ];
  }),
];
console.log(
  `reconcile benchmark: every AWS call answered after ${DELAY_MS} ms (lab foo, 3 AZs x 2 runners x 3 subnets unless said)`,
);
console.log(formatTable(lines, "markdown"));

const degraded = rows.filter((r) => r.scenario.includes("read fails"));
const failovers = rows.filter((r) => r.scenario.startsWith("failover") && !degraded.includes(r));
const converged = rows.filter((r) => r.scenario.startsWith("converged"));
const goals = [
  [
    "failover in at most 3 sequential round trips (every read answering)",
    failovers.every((r) => r.rounds <= 3),
  ],
  ["a converged lab costs reads only", converged.every((r) => r.writes === 0)],
  // The failed read's own retries (the SDK's backoff for throttling) come before the plan: that is its cost.
  [
    "a failover still happens while one read fails (routes moved, nothing failed)",
    degraded.every((r) => r.actions >= 2),
  ],
] as const;
for (const [goal, met] of goals) console.log(`goal: ${goal}: ${met ? "met" : "MISSED"}`);
process.exitCode = goals.every(([, met]) => met) ? 0 : 1;
