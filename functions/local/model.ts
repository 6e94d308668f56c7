// A model of AWS for one lab, as seen by the core: applies actions and outside events to a World the way
// EC2, Auto Scaling, SSM and CloudWatch would. The property tests drive the core against it, and the
// in-memory provider (a dry run without AWS) is built on it.
import type { Action } from "../core/actions.ts";
import type { Runner, World } from "../core/world.ts";
import type { LabProvider } from "../reconcile/ports.ts";

const update = (world: World, instanceId: string, change: (r: Runner) => Partial<Runner>): World => ({
  ...world,
  runners: world.runners.map((r) => (r.instanceId === instanceId ? { ...r, ...change(r) } : r)),
});

/** A runner just launched by its group, as labgate first sees it: running, in Pending:Wait, untouched. */
export const launchingRunner = (instanceId: string, az: string, privateIp: string): Runner => ({
  instanceId,
  az,
  state: "running",
  lifecycle: "Pending:Wait",
  privateIp,
  eniId: `eni-${instanceId.slice(2)}`,
  sourceDestCheck: true,
  credential: undefined,
  appliedSetup: undefined,
  command: undefined,
  commandOutcome: undefined,
  healthAlarm: undefined,
});

export class ModelViolation extends Error {
  override name = "ModelViolation";
}

/** Applies one action as AWS would; throws ModelViolation when the action breaks a rule of the lab. */
export const applyToModel = (world: World, action: Action, sequence: number): World => {
  const runner =
    "instanceId" in action ? world.runners.find((r) => r.instanceId === action.instanceId) : undefined;
  if ("instanceId" in action && runner === undefined) {
    throw new ModelViolation(
      `${action.id} names ${action.instanceId}, which is not one of the lab's instances`,
    );
  }
  switch (action.kind) {
    case "disable-source-dest-check":
      return update(world, action.instanceId, () => ({ sourceDestCheck: false }));
    case "lease-credential":
      return update(world, action.instanceId, () => ({ credential: action.parameter }));
    case "release-credential": {
      const stopped = runner?.command?.kind === "stop-vpn" && runner.command.status === "success";
      if (!stopped && runner?.state !== "terminated") {
        throw new ModelViolation(`${action.id}: ${action.instanceId} has not stopped its VPN`);
      }
      return update(world, action.instanceId, (r) => ({
        credential: r.credential === action.parameter ? undefined : r.credential,
      }));
    }
    case "push-setup":
    case "stop-vpn":
      return update(world, action.instanceId, () => ({
        command: {
          kind: action.kind === "push-setup" ? "setup" : "stop-vpn",
          hash: action.hash,
          commandId: `cmd-${sequence}`,
          status: "pending",
          sentAt: world.now,
        },
        commandOutcome: undefined,
      }));
    case "record-command":
      return update(world, action.instanceId, (r) => ({
        command: action.record,
        commandOutcome: undefined,
        appliedSetup: action.appliedSetup ?? r.appliedSetup,
      }));
    case "create-route":
    case "replace-route": {
      if (!(action.routeTableId in world.routeTables)) {
        throw new ModelViolation(`${action.id}: ${action.routeTableId} is not one of the lab's route tables`);
      }
      const table = world.routeTables[action.routeTableId];
      if (!table) return world;
      return {
        ...world,
        routeTables: {
          ...world.routeTables,
          [table.routeTableId]: {
            ...table,
            routes: {
              ...table.routes,
              [action.cidr]: {
                instanceId: action.target.instanceId,
                eniId: action.target.eniId,
                blackhole: false,
              },
            },
          },
        },
      };
    }
    case "complete-lifecycle":
      return update(world, action.instanceId, (r) => {
        if (r.lifecycle === "Pending:Wait") {
          return action.result === "CONTINUE"
            ? { lifecycle: "InService" }
            : { lifecycle: "Terminating:Wait" };
        }
        if (r.lifecycle === "Terminating:Wait") return TERMINATED;
        return {}; // an already completed hook: AWS answers "no active lifecycle action", labgate moves on
      });
    case "put-health-alarm":
      return {
        ...update(world, action.instanceId, () => ({ healthAlarm: "INSUFFICIENT_DATA" as const })),
        healthAlarms: [...world.healthAlarms, { name: action.alarmName, instanceId: action.instanceId }],
      };
    case "delete-health-alarms":
      return {
        ...world,
        healthAlarms: world.healthAlarms.filter((a) => !action.alarmNames.includes(a.name)),
      };
  }
};

const TERMINATED: Partial<Runner> = {
  state: "terminated",
  lifecycle: undefined,
  healthAlarm: undefined,
};

/** Routes that pointed at a runner that is gone become blackholes, as in EC2. */
const blackholeRoutesOf = (world: World, instanceId: string): World => ({
  ...world,
  routeTables: Object.fromEntries(
    Object.entries(world.routeTables).map(([id, t]) => [
      id,
      {
        ...t,
        routes: Object.fromEntries(
          Object.entries(t.routes).map(([cidr, route]) => [
            cidr,
            route.instanceId === instanceId ? { ...route, blackhole: true } : route,
          ]),
        ),
      },
    ]),
  ),
});

/** Things that happen to a lab without labgate: launches, scale-in, failures, commands finishing. */
export type Happening =
  | { readonly kind: "launch"; readonly az: string }
  | { readonly kind: "scale-in"; readonly pick: number }
  | { readonly kind: "kill"; readonly pick: number }
  | { readonly kind: "stop"; readonly pick: number }
  | { readonly kind: "start"; readonly pick: number }
  | { readonly kind: "alarm"; readonly pick: number; readonly state: "OK" | "ALARM" }
  | { readonly kind: "command-finishes"; readonly pick: number; readonly ok: boolean }
  | { readonly kind: "time-passes"; readonly ms: number };

const picked = (world: World, pick: number): Runner | undefined => {
  const live = world.runners.filter((r) => r.state !== "terminated");
  return live.length === 0 ? undefined : live[pick % live.length];
};

export const happen = (world: World, h: Happening, sequence: number): World => {
  if (h.kind === "time-passes") return { ...world, now: world.now + h.ms };
  if (h.kind === "launch") {
    const runner = launchingRunner(
      `i-0f${String(sequence).padStart(15, "0")}`,
      h.az,
      `10.0.200.${sequence % 250}`,
    );
    return { ...world, runners: [...world.runners, runner] };
  }
  const r = picked(world, h.pick);
  if (!r) return world;
  switch (h.kind) {
    case "scale-in":
      return r.lifecycle === "InService"
        ? update(world, r.instanceId, () => ({ lifecycle: "Terminating:Wait" }))
        : world;
    case "kill":
      return blackholeRoutesOf(
        update(world, r.instanceId, () => TERMINATED),
        r.instanceId,
      );
    case "stop":
      return r.state === "running" ? update(world, r.instanceId, () => ({ state: "stopped" })) : world;
    case "start":
      return r.state === "stopped" ? update(world, r.instanceId, () => ({ state: "running" })) : world;
    case "alarm":
      return r.healthAlarm === undefined
        ? world
        : update(world, r.instanceId, () => ({ healthAlarm: h.state }));
    case "command-finishes":
      return r.command?.status === "pending" && r.commandOutcome === undefined && r.state === "running"
        ? update(world, r.instanceId, () => ({ commandOutcome: h.ok ? "success" : "failed" }))
        : world;
  }
};

/** A LabProvider over a World in memory: observe returns it, apply changes it as AWS would. */
export const memoryProvider = (initial: World): LabProvider & { readonly world: () => World } => {
  let world = initial;
  let sequence = 1;
  return {
    observe: async () => world,
    apply: async (action) => {
      world = applyToModel(world, action, sequence++);
      return { status: "done" };
    },
    ownsInstance: async (instanceId) => world.runners.some((r) => r.instanceId === instanceId),
    world: () => world,
  };
};
