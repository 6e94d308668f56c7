// What the core reads off a runner: the state of its last command, its setup, its place in the group, and
// whether it may carry a worker subnet's traffic.
import type { Route, Runner } from "../world.ts";

type Status = "pending" | "success" | "failed";

/** The status of a runner's last command: what the tag says, refreshed by what SSM reports now. */
export const commandStatus = (r: Runner): Status | undefined =>
  r.command && (r.command.status === "pending" ? (r.commandOutcome ?? "pending") : r.command.status);

/** Hash of the setup in place on the runner, counting a setup that SSM just reported successful. */
export const appliedSetup = (r: Runner): string | undefined =>
  r.command?.kind === "setup" && commandStatus(r) === "success" ? r.command.hash : r.appliedSetup;

export const setupFailed = (r: Runner): boolean =>
  r.command?.kind === "setup" && commandStatus(r) === "failed";

/** Member of the group in a state where it should hold a tunnel (launching, in service, standby). */
export const inGroup = (r: Runner): boolean =>
  r.lifecycle !== undefined && !/^(Terminat|Detach|Warmed)/.test(r.lifecycle);

export const isLive = (r: Runner): boolean => r.state !== "terminated";
export const isUp = (r: Runner): boolean => r.state === "running" || r.state === "pending";
/** Launching or in service: a runner that should hold a credential and be set up. */
export const isServing = (r: Runner): boolean =>
  r.lifecycle === "Pending:Wait" || r.lifecycle === "InService";

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

/** Whether a route points at this runner (by its interface or, for older routes, its instance). */
export const targets = (route: Route | undefined, r: Runner): boolean =>
  route !== undefined &&
  !route.blackhole &&
  ((route.eniId !== undefined && route.eniId === r.eniId) ||
    (route.instanceId !== undefined && route.instanceId === r.instanceId));

export const byId = (a: Runner, b: Runner): number => a.instanceId.localeCompare(b.instanceId);
