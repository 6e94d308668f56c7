// A model of AWS and of labgate's store for one lab, as seen by the core: applies actions and outside events
// to a World the way EC2, Auto Scaling, SSM, CloudWatch and the store would (the store's conditional writes
// included: a write whose condition fails throws StoreConflict, as the adapters do). The property tests drive
// the core against it, and the in-memory provider (a dry run without AWS) is built on it.
import type { Action } from "../core/actions.ts";
import { formatCommandTag } from "../core/command-tag.ts";
import { COMMAND_TAG, CREDENTIAL_TAG, SETUP_TAG } from "../core/names.ts";
import type { Runner, World } from "../core/world.ts";
import type { LabProvider } from "../reconcile/ports.ts";
import { StoreConflict } from "../reconcile/store.ts";

const update = (world: World, instanceId: string, change: (r: Runner) => Partial<Runner>): World => ({
  ...world,
  runners: world.runners.map((r) => (r.instanceId === instanceId ? { ...r, ...change(r) } : r)),
});

const NO_MIRROR = { credential: undefined, appliedSetup: undefined, command: undefined } as const;

/** A runner just launched by its group, as labgate first sees it: running, in Pending:Wait, untouched. */
export const launchingRunner = (instanceId: string, az: string, privateIp: string): Runner => ({
  instanceId,
  az,
  state: "running",
  lifecycle: "Pending:Wait",
  privateIp,
  eniId: `eni-${instanceId.slice(2)}`,
  sourceDestCheck: true,
  recorded: false,
  credential: undefined,
  appliedSetup: undefined,
  command: undefined,
  recordedHealth: undefined,
  mirror: NO_MIRROR,
  commandOutcome: undefined,
  healthAlarm: undefined,
});

export class ModelViolation extends Error {
  override name = "ModelViolation";
}

/** Who holds a key in the store: a runner (terminated or not) or an orphan lease. */
const holderOf = (world: World, parameter: string): string | undefined =>
  world.runners.find((r) => r.credential === parameter)?.instanceId ??
  world.orphanLeases.find((l) => l.credential === parameter)?.holder;

/** The adapters mirror every store write in the instance's tags. */
const mirrored = (r: Runner, change: Partial<Runner>): Partial<Runner> => {
  const next = { ...r, ...change };
  return {
    ...change,
    mirror: {
      credential: next.credential,
      appliedSetup: next.appliedSetup,
      command: next.command === undefined ? undefined : formatCommandTag(next.command),
    },
  };
};

/** Applies one action as AWS and the store would; throws ModelViolation when it breaks a rule of the lab. */
export const applyToModel = (world: World, action: Action, sequence: number): World => {
  if (action.kind === "release-orphan-lease") {
    return {
      ...world,
      orphanLeases: world.orphanLeases.filter(
        (l) => !(l.credential === action.parameter && l.holder === action.holder),
      ),
    };
  }
  const runner =
    "instanceId" in action ? world.runners.find((r) => r.instanceId === action.instanceId) : undefined;
  if ("instanceId" in action && runner === undefined) {
    throw new ModelViolation(
      `${action.id} names ${action.instanceId}, which is not one of the lab's instances`,
    );
  }
  const store = (r: Runner, change: (r: Runner) => Partial<Runner>): World =>
    update(world, r.instanceId, (x) => ({ recorded: true, ...mirrored(x, change(x)) }));
  switch (action.kind) {
    case "disable-source-dest-check":
      return update(world, action.instanceId, () => ({ sourceDestCheck: false }));
    case "lease-credential": {
      const r = runner as Runner;
      const holder = holderOf(world, action.parameter);
      if (
        (holder !== undefined && holder !== r.instanceId) ||
        (r.credential ?? action.parameter) !== action.parameter
      )
        throw new StoreConflict(
          `${action.id}: ${action.parameter} is held by ${holder ?? "nobody"}, ${r.instanceId} holds ${r.credential ?? "nothing"}`,
        );
      return store(r, () => ({ credential: action.parameter }));
    }
    case "release-credential": {
      const r = runner as Runner;
      if (r.credential !== action.parameter) return world;
      const stopped =
        r.command?.kind === "stop-vpn" && (r.command.status === "success" || r.commandOutcome === "success");
      if (!stopped && r.state !== "terminated") {
        throw new ModelViolation(`${action.id}: ${action.instanceId} has not stopped its VPN`);
      }
      return store(r, () => ({ credential: undefined }));
    }
    case "push-setup":
    case "stop-vpn": {
      const r = runner as Runner;
      if (r.command?.commandId !== action.expected.commandId)
        throw new StoreConflict(`${action.id}: the record of ${r.instanceId} moved on`);
      if (action.kind === "push-setup" && r.credential !== action.credential)
        throw new StoreConflict(`${action.id}: ${r.instanceId} does not hold ${action.credential}`);
      if (r.command?.status === "pending" && r.commandOutcome === undefined)
        throw new ModelViolation(
          `${action.id}: sent while ${r.command.kind} ${r.command.commandId} may still run on ${r.instanceId}`,
        );
      return store(r, () => ({
        command: {
          kind: action.kind === "push-setup" ? "setup" : "stop-vpn",
          hash: action.hash,
          commandId: `00000000-0000-4000-8000-${String(sequence).padStart(12, "0")}`,
          status: "pending",
          sentAt: world.now,
        },
        commandOutcome: undefined,
      }));
    }
    case "record-command": {
      const r = runner as Runner;
      if (r.command?.commandId !== action.record.commandId)
        throw new StoreConflict(`${action.id}: the record of ${action.instanceId} moved on`);
      return store(r, (x) => ({
        command: action.record,
        commandOutcome: undefined,
        appliedSetup: action.appliedSetup === null ? undefined : (action.appliedSetup ?? x.appliedSetup),
      }));
    }
    case "record-health":
      return update(world, action.instanceId, (r) => ({
        recorded: true,
        recordedHealth: action.health,
        alarmedAt: action.alarmedAt ?? r.alarmedAt,
      }));
    case "adopt-runner": {
      if (runner?.recorded)
        throw new StoreConflict(`${action.id}: ${action.instanceId} has a record already`);
      if (action.credential !== undefined && holderOf(world, action.credential) !== undefined)
        throw new StoreConflict(`${action.id}: ${action.credential} is leased already`);
      return update(world, action.instanceId, () => ({
        recorded: true,
        credential: action.credential,
        appliedSetup: action.appliedSetup,
        command: action.command,
      }));
    }
    case "forget-runner":
      if (runner?.credential !== undefined) throw new StoreConflict(`${action.id}: it still holds a lease`);
      return update(world, action.instanceId, () => ({
        recorded: false,
        appliedSetup: undefined,
        command: undefined,
        recordedHealth: undefined,
      }));
    case "mirror-tags":
      return update(world, action.instanceId, (r) => {
        const value = (key: string, old: string | undefined) =>
          key in action.tags ? (action.tags[key] ?? undefined) : old;
        return {
          mirror: {
            credential: value(CREDENTIAL_TAG, r.mirror.credential),
            appliedSetup: value(SETUP_TAG, r.mirror.appliedSetup),
            command: value(COMMAND_TAG, r.mirror.command),
          },
        };
      });
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
    case "delete-route": {
      const table = world.routeTables[action.routeTableId];
      if (!table)
        throw new ModelViolation(`${action.id}: ${action.routeTableId} is not one of the lab's route tables`);
      const { [action.cidr]: _gone, ...others } = table.others ?? {};
      return { ...world, routeTables: { ...world.routeTables, [table.routeTableId]: { ...table, others } } };
    }
    case "complete-lifecycle":
      return update(world, action.instanceId, (r) => {
        if (r.lifecycle === "Pending:Wait") {
          return action.result === "CONTINUE"
            ? { lifecycle: "InService" }
            : { lifecycle: "Terminating:Wait" };
        }
        if (r.lifecycle === "Terminating:Wait") return TERMINATED;
        if (r.lifecycle === "Warmed:Pending:Wait")
          return action.result === "CONTINUE"
            ? { lifecycle: "Warmed:Stopped", state: "stopped" }
            : TERMINATED;
        return {}; // an already completed hook: AWS answers "no active lifecycle action", labgate moves on
      });
    case "put-health-alarm":
      return {
        ...update(world, action.instanceId, () => ({
          healthAlarm: "INSUFFICIENT_DATA" as const,
          healthSince: world.now,
        })),
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
        : update(world, r.instanceId, (x) =>
            x.healthAlarm === h.state ? {} : { healthAlarm: h.state, healthSince: world.now },
          );
    case "command-finishes":
      return r.command?.status === "pending" && r.commandOutcome === undefined && r.state === "running"
        ? update(world, r.instanceId, () => ({ commandOutcome: h.ok ? "success" : "failed" }))
        : world;
  }
};

export interface MemoryProviderOptions {
  /** Whether an instance's SSM agent is registered (default: all are): a command to one that is not is deferred, as the AWS adapter does on InvalidInstanceId. */
  readonly agentRegistered?: (instanceId: string) => boolean;
}

/** A LabProvider over a World in memory: observe returns it, apply changes it as AWS would. */
export const memoryProvider = (
  initial: World,
  options: MemoryProviderOptions = {},
): LabProvider & { readonly world: () => World; change(f: (world: World) => World): void } => {
  let world = initial;
  let sequence = 1;
  return {
    observe: async () => world,
    apply: async (action) => {
      if (
        (action.kind === "push-setup" || action.kind === "stop-vpn") &&
        options.agentRegistered?.(action.instanceId) === false
      )
        return { status: "deferred", why: `the SSM agent of ${action.instanceId} is not registered yet` };
      try {
        world = applyToModel(world, action, sequence++);
      } catch (error) {
        if (error instanceof StoreConflict) return { status: "deferred", why: error.message };
        throw error;
      }
      return { status: "done" };
    },
    ownsInstance: async (instanceId) => world.runners.some((r) => r.instanceId === instanceId),
    world: () => world,
    /** What happens outside labgate (time passing, Auto Scaling, a command ending), for a simulation. */
    change: (f) => {
      world = f(world);
    },
  };
};
