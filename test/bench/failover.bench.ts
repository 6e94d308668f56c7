// `npm run bench:failover [-- --rounds N] [--scenarios replace,kill,cut-tunnel,rotate,config-change,bad-config]`
// (root, Linux): the lab in a box, each failover scenario played N times (default 2) on the runner that carries
// a worker subnet, while that subnet's job worker (started from that very runner) pings Beaker and looks its
// name up every 100 ms: requests lost, lookups failed, the longest silence, how long after the event reached
// labgate the worker subnet's routes were on a working runner, and how long after that the lookups were back.
// With the same intervals as in AWS, a cut tunnel's detection by the runner's own watch is timed too. A round
// that lost a request or a lookup prints the evidence: each one and what happened to the lab around it.
import { join } from "node:path";
import { parseArgs } from "node:util";
import { formatTable } from "../../functions/cli/report-table.ts";
import { TUNNEL_WATCH } from "../../functions/core/names.ts";
import { missingPrograms } from "../../functions/local/hosts.ts";
import { LocalLab } from "../../functions/local/lab/lab.ts";
import {
  explainLosses,
  playScenario,
  type ScenarioKind,
  type ScenarioResult,
} from "../../functions/local/lab/scenarios.ts";
import { labObservability } from "../../functions/reconcile/observability.ts";

const PLAN: readonly (readonly [ScenarioKind, string])[] = [
  ["replace", "eu-local-1a"],
  ["kill", "eu-local-1b"],
  ["cut-tunnel", "eu-local-1a"],
  ["rotate", "eu-local-1b"],
  ["config-change", "eu-local-1a"],
  ["bad-config", "eu-local-1a"],
];

const { values } = parseArgs({
  options: { rounds: { type: "string", default: "2" }, scenarios: { type: "string" } },
});
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer`);
const wanted = values.scenarios?.split(",") ?? PLAN.map(([kind]) => kind);
const unknown = wanted.filter((w) => !PLAN.some(([kind]) => kind === w));
if (unknown.length > 0)
  throw new Error(`unknown scenario(s) ${unknown.join(", ")}: use ${PLAN.map(([k]) => k)}`);
const plan = PLAN.filter(([kind]) => wanted.includes(kind));

if (process.getuid?.() !== 0) throw new Error("bench:failover needs root (network namespaces)");
const missing = await missingPrograms();
if (missing.length > 0)
  throw new Error(`bench:failover needs ${missing.join(", ")} (see .ci/apt-packages.txt)`);

process.env.POWERTOOLS_METRICS_DISABLED = "true";
const dir = join(process.cwd(), ".bench", `lab-${process.pid}`);
const lab = await LocalLab.up(dir, labObservability("foo", { quiet: true }));
const results: { round: number; result: ScenarioResult }[] = [];
try {
  for (let round = 1; round <= rounds; round++) {
    for (const [kind, az] of plan) {
      const result = await playScenario(lab, kind, az, `${kind}-${round}`);
      results.push({ round, result });
      if (result.pings.some((p) => p.lost > 0) || result.lookups.some((l) => l.failed > 0))
        console.log(`round ${round}: ${explainLosses(result)}\n`);
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
    "lookups failed (a / b)",
    "longest silence, ping / lookup (s)",
    "fault -> reported (s)",
    "event -> repaired (s)",
    "fault -> repaired (s)",
    "repaired -> lookups back (s)",
    "by name after (job / early)",
    "runners out per AZ at the end",
  ],
  ...results.map(({ round, result: r }) => [
    `${r.kind} (${r.az})`,
    String(round),
    r.pings.map((p) => `${p.lost}/${p.judged}`).join("  "),
    r.lookups.map((l) => `${l.failed}/${l.sent}`).join("  "),
    r.pings
      .map((p) => {
        const l = r.lookups.find((x) => x.az === p.az);
        return `${p.longestGapSeconds.toFixed(1)}/${l?.longestGapSeconds.toFixed(1) ?? "-"}`;
      })
      .join("  "),
    r.faultToReportSeconds?.toFixed(2) ?? "-",
    r.eventToRepairSeconds?.toFixed(2) ?? "-",
    r.faultToRepairSeconds?.toFixed(2) ?? "-",
    r.lookupsBackSeconds?.toFixed(2) ?? "-",
    `${r.reachedBeakerByName ? "yes" : "NO"} / ${r.earlyWorkersResolve ? "yes" : "NO"}`,
    Object.values(r.outOfServiceByAz).join("  "),
  ]),
];
console.log(
  `failover benchmark: lab in a box, 2 AZs x 2 runners, each job worker (started from the runner the scenario takes away) pinging Beaker and looking its name up every 100 ms, ${rounds} round(s); tunnel watch: a probe every ${TUNNEL_WATCH.periodSeconds} s, down after ${TUNNEL_WATCH.downAfter} failed`,
);
console.log(formatTable(rows, "markdown"));

const of = (kind: ScenarioKind) => results.filter((r) => r.result.kind === kind);
// What a deployment changed is named in its event (config-change adds a domain, then takes it away again):
// the same actions on either count as the same thing.
const done = (r: ScenarioResult) =>
  r.actions.map((a) => a.replace(/^configuration deployed: [^:]*:/, "configuration deployed:")).join(" | ");
const differing = plan
  .filter(([kind]) => new Set(of(kind).map((r) => done(r.result))).size > 1)
  .map(([kind]) => kind);
const unplanned = [...of("kill"), ...of("cut-tunnel")];
const verdicts = [
  [
    `a planned replacement loses no packet and no lookup (${of("replace").length} played)`,
    of("replace").every(
      (r) => r.result.pings.every((p) => p.lost === 0) && r.result.lookups.every((l) => l.failed === 0),
    ),
  ],
  [
    `a key rotation loses no packet (${of("rotate").length} played)`,
    of("rotate").every((r) => r.result.pings.every((p) => p.lost === 0)),
  ],
  [
    `a configuration change that restarts every tunnel is rolled out with no packet lost (${of("config-change").length} played)`,
    of("config-change").every(
      (r) => r.result.pings.every((p) => p.lost === 0) && r.result.setupsPending === 0,
    ),
  ],
  [
    `a bad configuration halts its rollout, reported, with the lab reachable and at most one runner per AZ out (${of("bad-config").length} played)`,
    of("bad-config").every(
      (r) =>
        r.result.findings.includes("rollout-halted") &&
        Object.values(r.result.outOfServiceByAz).every((n) => n <= 1) &&
        r.result.pings.every((p) => p.lost === 0),
    ),
  ],
  [
    "a kill or a cut tunnel is repaired within 2 s of the event",
    unplanned.every((r) => (r.result.eventToRepairSeconds ?? 99) <= 2),
  ],
  [
    "after a kill or a cut tunnel, lookups are back within 2 s of the repair",
    unplanned.every((r) => (r.result.lookupsBackSeconds ?? 99) <= 2),
  ],
  [
    `a cut tunnel is acted on within 10 s of the fault (${of("cut-tunnel").length} played)`,
    of("cut-tunnel").every((r) => (r.result.faultToRepairSeconds ?? 99) <= 10),
  ],
  [
    "every job worker reaches Beaker by name after every scenario",
    results.every((r) => r.result.reachedBeakerByName),
  ],
  [
    "every early worker (started before any failover) reaches Beaker by name after every scenario",
    results.every((r) => r.result.earlyWorkersResolve),
  ],
  [
    `each scenario did the same thing every round${differing.length > 0 ? ` (not: ${differing.join(", ")})` : ""}`,
    differing.length === 0,
  ],
] as const;
for (const [goal, met] of verdicts) console.log(`goal: ${goal}: ${met ? "met" : "MISSED"}`);
for (const { round, result } of results.filter((r) => r.round === 1 || differing.includes(r.result.kind))) {
  console.log(`\n${result.kind} (round ${round}), what labgate did:\n  ${result.actions.join("\n  ")}`);
}
process.exitCode = verdicts.every(([, met]) => met) ? 0 : 1;
