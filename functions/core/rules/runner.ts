// What the core reads off a runner: the state of its last command, its setup, its health, its place in the
// group, and whether it may carry a worker subnet's traffic.

import { tunnelOf } from "../../render/index.ts";
import { TUNNEL_REPORT_TRUST_MS } from "../tunnel-report.ts";
import type { AlarmState, Route, Runner } from "../world.ts";
import type { Planning } from "./planning.ts";

type Status = "pending" | "success" | "failed";

/**
 * A command whose sending began (its intent is in the store) but whose id was never recorded, because the
 * reconcile died between the two writes, is taken as failed after this long: it may or may not have run.
 */
export const SEND_GRACE_MS = 15 * 60_000;

/** The status of a runner's last command: the store's record, refreshed by what SSM reports now. */
export const commandStatus = (r: Runner, now: number): Status | undefined => {
  const c = r.command;
  if (c === undefined) return undefined;
  if (c.status !== "pending") return c.status;
  if (c.commandId === undefined) return now - c.sentAt > SEND_GRACE_MS ? "failed" : "pending";
  return r.commandOutcome ?? "pending";
};

export const commandPending = (r: Runner, now: number): boolean => commandStatus(r, now) === "pending";

/**
 * Hash of the setup in place on the runner, counting a setup that SSM just reported successful. After a failed
 * setup nothing is known to be in place (it may have stopped half way, with some files new): the same setup
 * as before is pushed again, not taken as applied.
 */
export const appliedSetup = (r: Runner, now: number): string | undefined => {
  const c = r.command;
  if (c?.kind === "setup" && commandStatus(r, now) === "success") return c.hash;
  if (c?.kind === "setup" && commandStatus(r, now) === "failed") return undefined;
  if (c?.kind === "stop-vpn" && commandStatus(r, now) === "success") return undefined;
  return r.appliedSetup;
};

/** Whether applying setup `next` over `applied` restarts the VPN (it rewrites the connection). */
export const changesTunnel = (applied: string | undefined, next: string): boolean =>
  applied === undefined || tunnelOf(applied) !== tunnelOf(next);

export const setupFailed = (r: Runner, now: number): boolean =>
  r.command?.kind === "setup" && commandStatus(r, now) === "failed";

/** Member of the group in a state where it should hold a tunnel (launching, in service, standby). */
export const inGroup = (r: Runner): boolean =>
  r.lifecycle !== undefined && !/^(Terminat|Detach|Warmed)/.test(r.lifecycle);

export const isLive = (r: Runner): boolean => r.state !== "terminated";
export const isUp = (r: Runner): boolean => r.state === "running" || r.state === "pending";
/** Launching or in service: a runner that should hold a credential and be set up. */
export const isServing = (r: Runner): boolean =>
  r.lifecycle === "Pending:Wait" || r.lifecycle === "InService";

/** The runner's tunnel health: its alarm, or what labgate recorded of it when alarms could not be read. */
export const health = (p: Planning, r: Runner): AlarmState | undefined =>
  p.known("alarms") ? r.healthAlarm : p.known("store") ? r.recordedHealth : undefined;

/**
 * Why a runner must give up the key it may be using, stop its VPN and start over with a key it holds;
 * undefined when it need not. Draining runners carry nothing new; their routes move first.
 */
export const mustSurrender = (p: Planning, r: Runner): string | undefined => {
  if (!p.known("store")) return undefined;
  if (r.credential !== undefined && !p.lab.vpn.credentials.includes(r.credential))
    return `its credential ${r.credential} is no longer in the lab's pool (retired)`;
  const now = p.world.now;
  if (r.credential !== undefined && r.state === "running" && r.lifecycle?.startsWith("Warmed:"))
    return `it went back to the warm pool (${r.lifecycle})`;
  if (r.credential === undefined && (appliedSetup(r, now) !== undefined || r.command?.kind === "setup"))
    return "it may run a VPN with a credential it does not hold (set up without a lease)";
  return undefined;
};

/** Whether a route points at this runner (by its interface or, for older routes, its instance). */
export const targets = (route: Route | undefined, r: Runner): boolean =>
  route !== undefined &&
  !route.blackhole &&
  ((route.eniId !== undefined && route.eniId === r.eniId) ||
    (route.instanceId !== undefined && route.instanceId === r.instanceId));

/** How many of the lab's routes (one per table and intranet CIDR) point at a runner now. */
export const carriedRoutes = (p: Planning, r: Runner): number =>
  Object.values(p.world.routeTables).reduce(
    (n, t) => n + Object.values(t.routes).filter((route) => targets(route, r)).length,
    0,
  );

export const carriesRoutes = (p: Planning, r: Runner): boolean => carriedRoutes(p, r) > 0;

/**
 * Why a runner may not carry a subnet's traffic, from what is known of it; undefined when nothing known
 * forbids it. A runner whose tunnel health is unknown is not refused here (see `healthUnknown`): it keeps
 * the routes it has, but takes no new one.
 */
export const ineligibility = (p: Planning, r: Runner): string | undefined => {
  const now = p.world.now;
  if (r.state !== "running") return `it is ${r.state}`;
  if (p.known("group") && r.lifecycle !== "InService")
    return `it is ${r.lifecycle ?? "not in the group"}, not InService`;
  if (r.sourceDestCheck) return "its source/destination check is on";
  if (r.eniId === undefined) return "it has no network interface";
  if (health(p, r) === "ALARM") return "its tunnel health alarm is in ALARM";
  const reported = reportedDown(r, now);
  if (reported !== undefined) return reported;
  const draining = p.draining.get(r.instanceId);
  if (draining !== undefined) return draining;
  if (!p.known("store")) {
    // labgate's own state is unreadable: only a runner that carries routes now (it was eligible when they
    // were put there) may take more.
    return carriesRoutes(p, r) ? undefined : "labgate's store is unreadable and it carries no route now";
  }
  if (r.credential === undefined) return "it holds no VPN credential";
  const surrender = mustSurrender(p, r);
  if (surrender !== undefined) return surrender;
  if (setupFailed(r, now)) return "its last setup failed";
  const applied = appliedSetup(r, now);
  if (applied === undefined) return "its setup has not been applied";
  const c = r.command;
  if (c?.kind === "setup" && commandPending(r, now) && changesTunnel(applied, c.hash))
    return `its tunnel restarts with setup ${c.hash}`;
  return undefined;
};

/**
 * Why the runner's own recent report makes it ineligible: its tunnel watch said down less than
 * TUNNEL_REPORT_TRUST_MS ago (by the runner's clock; a report from the future counts until it is that old). A
 * report is the runner's own word, so it only ever counts against it: `up` decides nothing.
 */
export const reportedDown = (r: Runner, now: number): string | undefined => {
  const report = r.tunnelReport;
  if (report?.state !== "down" || now - report.at > TUNNEL_REPORT_TRUST_MS) return undefined;
  return `its tunnel watch reported its tunnel down at ${new Date(report.at).toISOString()}`;
};

/**
 * Whether the runner's health is unknown: alarms were unreadable and labgate never recorded its alarm's
 * state. Such a runner takes no new route. (With alarms read, a runner without an alarm yet is not unknown:
 * its alarm is created once it is set up.)
 */
export const healthUnknown = (p: Planning, r: Runner): boolean =>
  !p.known("alarms") && health(p, r) === undefined;

export const byId = (a: Runner, b: Runner): number => a.instanceId.localeCompare(b.instanceId);
