// The pure core: from the observed world of one lab and its configuration, the actions that take the world
// to the desired state, each with a reason. No SDK, no environment, no clock: `world.now` is the time.
import { renderRunnerSetup, renderStopVpn } from "../render/index.ts";
import type { Action, Finding, Plan, RouteAction, RouteTarget } from "./actions.ts";
import type { LabConfig } from "./config.ts";
import { CREDENTIAL_TAG, healthAlarmName, LAB_TAG, LAUNCH_HOOK, TERMINATE_HOOK } from "./names.ts";
import type { Route, Runner, World } from "./world.ts";

/** A setup that failed on an in-service runner is tried again after this long. */
export const SETUP_RETRY_MS = 10 * 60_000;

type Status = "pending" | "success" | "failed";

/** The status of a runner's last command: what the tag says, refreshed by what SSM reports now. */
const commandStatus = (r: Runner): Status | undefined =>
  r.command && (r.command.status === "pending" ? (r.commandOutcome ?? "pending") : r.command.status);

/** Hash of the setup in place on the runner, counting a setup that SSM just reported successful. */
const appliedSetup = (r: Runner): string | undefined =>
  r.command?.kind === "setup" && commandStatus(r) === "success" ? r.command.hash : r.appliedSetup;

const setupFailed = (r: Runner): boolean => r.command?.kind === "setup" && commandStatus(r) === "failed";

/** Member of the group in a state where it should hold a tunnel (launching, in service, standby). */
const inGroup = (r: Runner): boolean =>
  r.lifecycle !== undefined && !/^(Terminat|Detach|Warmed)/.test(r.lifecycle);

const isLive = (r: Runner): boolean => r.state !== "terminated";
const isUp = (r: Runner): boolean => r.state === "running" || r.state === "pending";

/** Why a runner may not carry a subnet's traffic; undefined when it may. */
export const ineligibility = (r: Runner): string | undefined => {
  if (r.state !== "running") return `it is ${r.state}`;
  if (r.lifecycle !== "InService") return `it is ${r.lifecycle ?? "not in the group"}, not InService`;
  if (r.sourceDestCheck) return "its source/destination check is on";
  if (r.credential === undefined) return "it holds no VPN credential";
  if (r.eniId === undefined) return "it has no network interface";
  if (setupFailed(r)) return "its last setup failed";
  if (appliedSetup(r) === undefined) return "its setup has not been applied";
  if (r.healthAlarm === "ALARM") return "its tunnel health alarm is in ALARM";
  return undefined;
};

const targets = (route: Route | undefined, r: Runner): boolean =>
  route !== undefined &&
  !route.blackhole &&
  ((route.eniId !== undefined && route.eniId === r.eniId) ||
    (route.instanceId !== undefined && route.instanceId === r.instanceId));

const byId = (a: Runner, b: Runner): number => a.instanceId.localeCompare(b.instanceId);

export const plan = (world: World, lab: LabConfig): Plan => {
  const actions: Action[] = [];
  const findings: Finding[] = [];
  const add = (action: Action): string => {
    actions.push(action);
    return action.id;
  };
  const live = world.runners.filter(isLive).sort(byId);
  const workerCidrs = [...new Set(world.subnets.map((s) => s.cidr))].sort();

  // Routes first: every other decision about a runner going away waits on its routes having moved.
  const routes = planRoutes(world, lab, live, findings);
  for (const a of routes) add(a);
  const movedOff = (instanceId: string): string[] =>
    routes.filter((a) => a.previous === instanceId).map((a) => a.id);

  // Source/destination check: a runner forwards the workers' packets, which EC2 drops while the check is on.
  const srcDst = new Map<string, string>();
  for (const r of live.filter((r) => isUp(r) && inGroup(r) && r.sourceDestCheck)) {
    srcDst.set(
      r.instanceId,
      add({
        kind: "disable-source-dest-check",
        id: `disable-source-dest-check:${r.instanceId}`,
        after: [],
        instanceId: r.instanceId,
        reason: `runner ${r.instanceId} forwards worker traffic but its source/destination check is on`,
      }),
    );
  }

  // Credentials: a static key serves one client at a time, so a lease lives on its holder until the holder
  // is terminated or has stopped its VPN.
  const holders = new Map<string, Runner[]>();
  for (const r of live.filter((r) => r.credential !== undefined)) {
    const list = holders.get(r.credential as string) ?? [];
    holders.set(r.credential as string, [...list, r]);
  }
  for (const [parameter, list] of holders) {
    if (list.length > 1) {
      findings.push({
        kind: "credential-conflict",
        message: `credential ${parameter} is leased by ${list.map((r) => r.instanceId).join(" and ")}; fix the ${CREDENTIAL_TAG} tags by hand`,
      });
    }
  }
  const free = lab.vpn.credentials.filter((p) => !holders.has(p));
  const credentialOf = new Map<string, string>();
  const leaseIds = new Map<string, string>();
  const starved: Runner[] = [];
  for (const r of live) {
    if (r.credential !== undefined) credentialOf.set(r.instanceId, r.credential);
    else if (isUp(r) && (r.lifecycle === "Pending:Wait" || r.lifecycle === "InService")) {
      const parameter = free.shift();
      if (parameter === undefined) {
        starved.push(r);
        continue;
      }
      credentialOf.set(r.instanceId, parameter);
      leaseIds.set(
        r.instanceId,
        add({
          kind: "lease-credential",
          id: `lease-credential:${r.instanceId}`,
          after: [],
          instanceId: r.instanceId,
          parameter,
          reason: `runner ${r.instanceId} needs a VPN credential and ${parameter} is free`,
        }),
      );
    }
  }
  const releasing = live.some(
    (r) => r.credential !== undefined && (r.state === "shutting-down" || r.lifecycle === "Terminating:Wait"),
  );
  for (const r of starved) {
    findings.push({
      kind: "credential-pool-empty",
      instanceId: r.instanceId,
      message: `no free VPN credential for runner ${r.instanceId}: all ${lab.vpn.credentials.length} are leased${releasing ? " (one is being released)" : ""}; add a parameter to vpn.credentials or reduce the group`,
    });
  }

  // Command outcomes: keep on the instance what SSM reported, so the next reconcile need not ask again.
  const recordIds = new Map<string, string>();
  for (const r of live) {
    if (r.command?.status !== "pending" || r.commandOutcome === undefined) continue;
    const succeeded = r.command.kind === "setup" && r.commandOutcome === "success";
    recordIds.set(
      r.instanceId,
      add({
        kind: "record-command",
        id: `record-command:${r.instanceId}`,
        after: [],
        instanceId: r.instanceId,
        record: { ...r.command, status: r.commandOutcome },
        appliedSetup: succeeded ? r.command.hash : undefined,
        reason: `${r.command.kind} command ${r.command.commandId} on ${r.instanceId} finished: ${r.commandOutcome}`,
      }),
    );
    if (r.commandOutcome === "failed") {
      findings.push({
        kind: "setup-failed",
        instanceId: r.instanceId,
        message: `${r.command.kind} command ${r.command.commandId} failed on ${r.instanceId}; its output is in SSM Run Command history`,
      });
    }
  }

  // Setup: pushed whenever what would be rendered differs from what was applied, and only then.
  const desiredSetup = new Map<string, string>();
  for (const r of live) {
    const parameter = credentialOf.get(r.instanceId);
    if (r.state !== "running" || !(r.lifecycle === "Pending:Wait" || r.lifecycle === "InService")) continue;
    if (parameter === undefined || r.privateIp === undefined) continue;
    const setup = renderRunnerSetup({
      lab,
      instanceId: r.instanceId,
      privateIp: r.privateIp,
      credentialParameter: parameter,
      workerCidrs,
    });
    desiredSetup.set(r.instanceId, setup.hash);
    const status = commandStatus(r);
    if (r.command?.kind === "setup" && status === "pending") continue;
    if (appliedSetup(r) === setup.hash) continue;
    const failedThis = r.command?.kind === "setup" && r.command.hash === setup.hash && status === "failed";
    if (
      failedThis &&
      (r.lifecycle === "Pending:Wait" || world.now - (r.command?.sentAt ?? 0) < SETUP_RETRY_MS)
    ) {
      continue;
    }
    const lease = leaseIds.get(r.instanceId);
    add({
      kind: "push-setup",
      id: `push-setup:${r.instanceId}`,
      after: lease ? [lease] : [],
      instanceId: r.instanceId,
      hash: setup.hash,
      script: setup.script,
      reason: failedThis
        ? `retrying setup ${setup.hash} on ${r.instanceId}, which failed ${Math.round((world.now - (r.command?.sentAt ?? 0)) / 60_000)} min ago`
        : appliedSetup(r) === undefined
          ? `runner ${r.instanceId} has no setup yet`
          : `setup of ${r.instanceId} changed (${appliedSetup(r)} -> ${setup.hash})`,
    });
  }

  // Lifecycle hooks.
  for (const r of live) {
    if (r.lifecycle === "Pending:Wait") {
      const complete = (result: "CONTINUE" | "ABANDON", reason: string, after: string[]): void => {
        add({
          kind: "complete-lifecycle",
          id: `complete-lifecycle:${r.instanceId}`,
          after,
          instanceId: r.instanceId,
          hook: LAUNCH_HOOK,
          result,
          reason,
        });
      };
      const desired = desiredSetup.get(r.instanceId);
      if (!isUp(r)) complete("ABANDON", `launching runner ${r.instanceId} is ${r.state}`, []);
      else if (starved.includes(r) && !releasing)
        complete("ABANDON", `no VPN credential is free for launching runner ${r.instanceId}`, []);
      else if (desired !== undefined && setupFailed(r) && r.command?.hash === desired)
        complete("ABANDON", `setup ${desired} failed on launching runner ${r.instanceId}`, []);
      else if (desired !== undefined && appliedSetup(r) === desired) {
        const after = [recordIds.get(r.instanceId), srcDst.get(r.instanceId)].filter((x) => x !== undefined);
        complete("CONTINUE", `setup ${desired} succeeded on launching runner ${r.instanceId}`, after);
      }
    }
    if (r.lifecycle === "Terminating:Wait") {
      const after = movedOff(r.instanceId);
      const complete = (reason: string, deps: string[]): void => {
        add({
          kind: "complete-lifecycle",
          id: `complete-lifecycle:${r.instanceId}`,
          after: deps,
          instanceId: r.instanceId,
          hook: TERMINATE_HOOK,
          result: "CONTINUE",
          reason,
        });
      };
      const status = commandStatus(r);
      if (r.state !== "running" || r.credential === undefined) {
        complete(`terminating runner ${r.instanceId} has no running VPN to stop`, after);
      } else if (r.command?.kind === "stop-vpn" && status === "success") {
        const release = add({
          kind: "release-credential",
          id: `release-credential:${r.instanceId}`,
          after: [],
          instanceId: r.instanceId,
          parameter: r.credential,
          reason: `terminating runner ${r.instanceId} stopped its VPN; ${r.credential} is free again`,
        });
        complete(`terminating runner ${r.instanceId} has stopped its VPN and released its credential`, [
          release,
        ]);
      } else if (r.command?.kind === "stop-vpn" && status === "failed") {
        complete(
          `stopping the VPN of ${r.instanceId} failed; it terminates anyway and ${r.credential} is free once it is gone`,
          after,
        );
      } else if (!(r.command?.kind === "stop-vpn" && status === "pending")) {
        const stop = renderStopVpn(lab);
        add({
          kind: "stop-vpn",
          id: `stop-vpn:${r.instanceId}`,
          after,
          instanceId: r.instanceId,
          hash: stop.hash,
          script: stop.script,
          reason: `runner ${r.instanceId} is terminating: stop its VPN so that ${r.credential} can be leased again`,
        });
      }
    }
  }

  // Health alarms: one per live runner once its setup is in place (its reporter publishes from then on).
  const alarmNames = new Set(world.healthAlarms.map((a) => a.name));
  for (const r of live) {
    const name = healthAlarmName(lab.name, r.instanceId);
    if (alarmNames.has(name) || r.healthAlarm !== undefined || appliedSetup(r) === undefined) continue;
    add({
      kind: "put-health-alarm",
      id: `put-health-alarm:${r.instanceId}`,
      after: [],
      instanceId: r.instanceId,
      alarmName: name,
      reason: `runner ${r.instanceId} is set up and has no tunnel health alarm`,
    });
  }
  const liveIds = new Set(live.map((r) => r.instanceId));
  const orphans = world.healthAlarms
    .filter((a) => !liveIds.has(a.instanceId))
    .map((a) => a.name)
    .sort();
  if (orphans.length > 0) {
    add({
      kind: "delete-health-alarms",
      id: "delete-health-alarms",
      after: [],
      alarmNames: orphans,
      reason: `their runners are gone: ${orphans.join(", ")}`,
    });
  }

  const eligible = live.filter((r) => ineligibility(r) === undefined);
  if (eligible.length === 0) {
    findings.push({
      kind: "lab-unreachable",
      message: `lab ${lab.name} is unreachable: no runner can carry its traffic (${live.length} live runner(s))`,
    });
  }
  const eligibleByAz: Record<string, number> = {};
  for (const az of [...world.subnets.map((s) => s.az), ...live.map((r) => r.az)].sort()) eligibleByAz[az] = 0;
  for (const r of eligible) eligibleByAz[r.az] = (eligibleByAz[r.az] ?? 0) + 1;

  return { actions, findings, eligibleByAz, credentialsFree: free.length };
};

/** Each worker subnet's route for each intranet CIDR targets an eligible runner, in its AZ when one exists. */
const planRoutes = (
  world: World,
  lab: LabConfig,
  live: readonly Runner[],
  findings: Finding[],
): RouteAction[] => {
  const eligible = live.filter((r) => ineligibility(r) === undefined);
  const tables = new Map<string, { az: string; subnets: string[] }>();
  for (const s of [...world.subnets].sort((a, b) => a.subnetId.localeCompare(b.subnetId))) {
    if (s.routeTableId === undefined || world.routeTables[s.routeTableId] === undefined) {
      findings.push({
        kind: "route-table-missing",
        subnetId: s.subnetId,
        message:
          s.routeTableId === undefined
            ? `worker subnet ${s.subnetId} has no associated route table tagged ${LAB_TAG}=${lab.name}; associate one and tag it`
            : `route table ${s.routeTableId} of worker subnet ${s.subnetId} was not observed (is it tagged ${LAB_TAG}=${lab.name}?)`,
      });
      continue;
    }
    const entry = tables.get(s.routeTableId) ?? { az: s.az, subnets: [] };
    entry.subnets.push(s.subnetId);
    tables.set(s.routeTableId, entry);
  }

  const runnerOf = (route: Route | undefined): Runner | undefined => live.find((r) => targets(route, r));
  const poolFor = (az: string): readonly Runner[] => {
    const inAz = eligible.filter((r) => r.az === az);
    return inAz.length > 0 || !lab.crossAzFallback ? inAz : eligible;
  };

  // Routes already on a runner of their pool stay there (no flapping); they count towards that runner's load.
  const load = new Map<string, number>();
  const ordered = [...tables.entries()].sort(([a], [b]) => a.localeCompare(b));
  for (const [id, { az }] of ordered) {
    const pool = poolFor(az);
    const carriers = new Set(
      lab.intranetCidrs
        .map((cidr) => runnerOf(world.routeTables[id]?.routes[cidr]))
        .filter((r): r is Runner => r !== undefined && pool.includes(r)),
    );
    for (const r of carriers) load.set(r.instanceId, (load.get(r.instanceId) ?? 0) + 1);
  }

  const actions: RouteAction[] = [];
  for (const [id, { az, subnets }] of ordered) {
    const table = world.routeTables[id];
    const pool = poolFor(az);
    if (table === undefined) continue;
    if (pool.length === 0) {
      findings.push({
        kind: "subnet-unreachable",
        subnetId: subnets[0],
        message: `no runner can carry worker subnet(s) ${subnets.join(", ")} in ${az}${lab.crossAzFallback ? "" : " (cross-AZ fallback is off)"}; routes left as they are`,
      });
      continue;
    }
    const kept = lab.intranetCidrs
      .map((cidr) => runnerOf(table.routes[cidr]))
      .find((r) => r && pool.includes(r));
    const chosen =
      kept ??
      [...pool].sort(
        (a, b) => (load.get(a.instanceId) ?? 0) - (load.get(b.instanceId) ?? 0) || byId(a, b),
      )[0];
    if (chosen === undefined || chosen.eniId === undefined) continue;
    if (kept === undefined) load.set(chosen.instanceId, (load.get(chosen.instanceId) ?? 0) + 1);
    const target: RouteTarget = { instanceId: chosen.instanceId, eniId: chosen.eniId };

    for (const cidr of lab.intranetCidrs) {
      const route = table.routes[cidr];
      const current = runnerOf(route);
      if (current && pool.includes(current)) continue;
      const where = `${cidr} in ${id} (${subnets.join(", ")}, ${az})`;
      const to = `${chosen.instanceId} in ${chosen.az}`;
      const why =
        route === undefined
          ? `${where} has no route`
          : route.blackhole
            ? `${where} is a blackhole (its target is gone)`
            : current === undefined
              ? `${where} points at ${route.eniId ?? route.instanceId ?? "something"}, which is not a runner of lab ${lab.name}`
              : ineligibility(current) === undefined
                ? `${where} is carried by ${current.instanceId} in ${current.az}, but ${az} has an eligible runner again`
                : `${where} is carried by ${current.instanceId}, which can no longer carry it: ${ineligibility(current)}`;
      actions.push({
        kind: route === undefined ? "create-route" : "replace-route",
        id: `route:${id}:${cidr}`,
        after: [],
        routeTableId: id,
        cidr,
        target,
        previous: route?.instanceId ?? current?.instanceId,
        failover: route !== undefined && (current === undefined || ineligibility(current) !== undefined),
        reason: `${why}; point it at ${to}`,
      });
    }
  }
  return actions;
};
