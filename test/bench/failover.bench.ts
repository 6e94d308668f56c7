// `npm run bench:failover` (root, Linux): the lab in a box, each failover scenario played twice while every
// worker pings Beaker every 100 ms: packets lost, the longest silence, and how long after the event reached
// labgate the worker subnet's route was on a working runner.
import { join } from "node:path";
import { formatTable } from "../../functions/cli/report-table.ts";
import { missingPrograms } from "../../functions/local/hosts.ts";
import { LocalLab } from "../../functions/local/lab/lab.ts";
import { playScenario, type ScenarioKind, type ScenarioResult } from "../../functions/local/lab/scenarios.ts";
import { labObservability } from "../../functions/reconcile/observability.ts";

if (process.getuid?.() !== 0) throw new Error("bench:failover needs root (network namespaces)");
const missing = await missingPrograms();
if (missing.length > 0)
  throw new Error(`bench:failover needs ${missing.join(", ")} (see .ci/apt-packages.txt)`);

process.env.POWERTOOLS_METRICS_DISABLED = "true";
const dir = join(process.cwd(), ".bench", `lab-${process.pid}`);
const lab = await LocalLab.up(dir, labObservability("foo", { quiet: true }));
const plan: [ScenarioKind, string][] = [
  ["replace", "eu-local-1a"],
  ["kill", "eu-local-1b"],
  ["cut-tunnel", "eu-local-1a"],
];
const results: { round: number; result: ScenarioResult }[] = [];
try {
  for (const round of [1, 2]) {
    for (const [kind, az] of plan) {
      results.push({ round, result: await playScenario(lab, kind, az, `${kind}-${round}`) });
    }
  }
} finally {
  await lab.down();
}

const rows = [
  [
    "scenario",
    "round",
    "pings lost (worker a / b)",
    "longest silence (s)",
    "event -> repaired (s)",
    "fault -> repaired (s)",
    "Beaker by name after",
  ],
  ...results.map(({ round, result: r }) => [
    `${r.kind} (${r.az})`,
    String(round),
    r.pings.map((p) => `${p.lost}/${p.sent}`).join("  "),
    r.pings.map((p) => p.longestGapSeconds.toFixed(1)).join("  "),
    r.eventToRepairSeconds?.toFixed(2) ?? "-",
    r.faultToRepairSeconds?.toFixed(2) ?? "-",
    r.reachedBeakerByName ? "yes" : "NO",
  ]),
];
console.log("failover benchmark: lab in a box, 2 AZs x 2 runners, each worker pinging Beaker every 100 ms");
console.log(formatTable(rows, "markdown"));

const planned = results.filter((r) => r.result.kind === "replace");
const unplanned = results.filter((r) => r.result.kind !== "replace");
const sameTwice = plan.every(([kind]) => {
  const [a, b] = results.filter((r) => r.result.kind === kind).map((r) => r.result.actions.join(" | "));
  return a === b;
});
const verdicts = [
  ["a planned replacement loses no packet", planned.every((r) => r.result.pings.every((p) => p.lost === 0))],
  [
    "a kill or a cut tunnel is repaired within 2 s of the event",
    unplanned.every((r) => (r.result.eventToRepairSeconds ?? 99) <= 2),
  ],
  [
    "every worker reaches Beaker by name after every scenario",
    results.every((r) => r.result.reachedBeakerByName),
  ],
  ["each scenario did the same thing both times", sameTwice],
] as const;
for (const [goal, met] of verdicts) console.log(`goal: ${goal}: ${met ? "met" : "MISSED"}`);
for (const { round, result } of results.filter((r) => r.round === 1)) {
  console.log(`\n${result.kind} (round ${round}), what labgate did:\n  ${result.actions.join("\n  ")}`);
}
process.exitCode = verdicts.every(([, met]) => met) ? 0 : 1;
