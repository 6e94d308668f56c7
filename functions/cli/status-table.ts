// The live lab as an operator reads it (`npm run status`): runners, worker subnets, what labgate would do now
// and why. A pure function of what was read: the observed world, the core's plan of it, the dead letters.
import { describeAction, type Plan } from "../core/actions.ts";
import type { LabConfig } from "../core/config.ts";
import { eligibility } from "../core/plan.ts";
import { routedCidrs } from "../core/routed.ts";
import { appliedSetup, commandStatus, targets } from "../core/rules/runner.ts";
import type { Runner, World } from "../core/world.ts";
import { formatReport, formatTable } from "./report-table.ts";

export interface LabStatus {
  readonly stage: string;
  readonly lab: LabConfig;
  readonly world: World;
  /** plan(world, lab): read only, nothing of it was applied. */
  readonly plan: Plan;
  /** Messages waiting in the lab's dead-letter queue, or why they could not be counted. */
  readonly deadLetters: number | string;
}

const short = (hash: string | undefined): string => hash?.slice(0, 8) ?? "none";

/** The setup in place, and the command in flight or that failed. */
const setupOf = (r: Runner, now: number): string => {
  const status = commandStatus(r, now);
  // After a failed setup nothing is known to be in place: it may have stopped half way.
  const unknown = r.command?.kind === "setup" && status === "failed";
  const applied = unknown ? "unknown" : short(appliedSetup(r, now));
  if (!r.command || status === "success") return applied;
  const command = `${r.command.kind} ${short(r.command.hash)}`;
  return status === "failed" ? `${applied}; ${command} FAILED` : `${applied}; ${command} running`;
};

const HEALTH: Readonly<Record<NonNullable<Runner["healthAlarm"]>, string>> = {
  OK: "healthy",
  ALARM: "UNHEALTHY (alarm)",
  INSUFFICIENT_DATA: "no reports yet",
};

/** The alarm's view, and the runner's own last report of its tunnel when it made one. */
const healthOf = (r: Runner, gone: boolean): string => {
  const alarm = r.healthAlarm ? HEALTH[r.healthAlarm] : gone ? "-" : "no alarm";
  const report = r.tunnelReport;
  return report && !gone ? `${alarm}; reported ${report.state} ${new Date(report.at).toISOString()}` : alarm;
};

const carriedBy = (world: World, r: Runner): string[] =>
  world.subnets.flatMap((s) => {
    const routes = s.routeTableId ? world.routeTables[s.routeTableId]?.routes : undefined;
    return Object.entries(routes ?? {})
      .filter(([, route]) => targets(route, r))
      .map(([cidr]) => `${s.subnetId} ${cidr}`);
  });

const runnerRows = ({ world, lab }: LabStatus): string[][] => {
  const verdicts = eligibility(world, lab);
  return [
    ["RUNNER", "AZ", "STATE", "LIFECYCLE", "CREDENTIAL", "SETUP", "TUNNEL HEALTH", "CARRIES", "ELIGIBLE"],
    ...[...world.runners]
      .sort((a, b) => a.az.localeCompare(b.az) || a.instanceId.localeCompare(b.instanceId))
      .map((r) => {
        const gone = r.state === "terminated";
        const why = verdicts.get(r.instanceId);
        return [
          r.instanceId,
          r.az,
          r.state,
          r.lifecycle ?? "-",
          gone ? "-" : (r.credential ?? "-"),
          gone ? "-" : setupOf(r, world.now),
          healthOf(r, gone),
          carriedBy(world, r).join(", ") || "-",
          gone ? "-" : why === undefined ? "yes" : `no: ${why}`,
        ];
      }),
  ];
};

const subnetRows = ({ world, lab }: LabStatus): string[][] => [
  ["WORKER SUBNET", "AZ", "ROUTE TABLE", ...routedCidrs(lab)],
  ...world.subnets.map((s) => {
    const table = s.routeTableId ? world.routeTables[s.routeTableId] : undefined;
    return [
      s.subnetId,
      s.az,
      table?.routeTableId ?? `${s.routeTableId ?? "the VPC's main table"} (not tagged for the lab)`,
      ...routedCidrs(lab).map((cidr) => {
        const route = table?.routes[cidr];
        if (!route) return "no route";
        const target = route.instanceId ?? route.eniId ?? "?";
        return route.blackhole ? `BLACKHOLE (${target} is gone)` : `-> ${target}`;
      }),
    ];
  }),
];

export const formatStatus = (status: LabStatus): string => {
  const { lab, stage, world, plan, deadLetters } = status;
  const eligible = Object.entries(plan.eligibleByAz)
    .map(([az, n]) => `${az} ${n}`)
    .join(", ");
  const dryRun = formatReport({
    lab: lab.name,
    dryRun: true,
    trigger: "what labgate would do now",
    actions: plan.actions.map((a) => ({ ...describeAction(a), outcome: "planned" as const })),
    findings: plan.findings,
    errors: [],
  });
  return [
    `lab ${lab.name}, stage ${stage}, read at ${new Date(world.now).toISOString()} (read only: nothing was changed)`,
    "",
    formatTable(runnerRows(status)),
    "",
    formatTable(subnetRows(status)),
    "",
    `eligible runners: ${eligible || "none"}; credentials free: ${plan.credentialsFree} of ${lab.vpn.credentials.length}; dead letters: ${deadLetters}`,
    "",
    dryRun,
  ].join("\n");
};
