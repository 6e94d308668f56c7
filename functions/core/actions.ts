// Actions are data: what the core decided, each with a reason. The handler logs them, a dry run returns
// them, the adapters carry them out and the tests compare them.
import type { AlarmState, CommandRecord } from "./world.ts";

interface Base {
  /** Stable identity of the action within a plan, used by `after`. */
  readonly id: string;
  /** Ids of actions that must succeed before this one runs (e.g. stop a VPN only once its routes moved). */
  readonly after: readonly string[];
  /** Why, in words an operator understands. */
  readonly reason: string;
}

export interface RouteTarget {
  readonly instanceId: string;
  readonly eniId: string;
}

/** What a command action expects the runner's command record to be when it is sent: the store refuses it otherwise. */
export interface ExpectedRecord {
  /** The command id of the record the plan was made from; undefined when there was none. */
  readonly commandId: string | undefined;
}

export type Action = Base &
  (
    | { readonly kind: "disable-source-dest-check"; readonly instanceId: string }
    | { readonly kind: "lease-credential"; readonly instanceId: string; readonly parameter: string }
    | { readonly kind: "release-credential"; readonly instanceId: string; readonly parameter: string }
    | {
        /** A lease whose holder is no instance of the lab any more (terminated long ago). */
        readonly kind: "release-orphan-lease";
        readonly parameter: string;
        readonly holder: string;
      }
    | {
        readonly kind: "push-setup";
        readonly instanceId: string;
        readonly hash: string;
        /** The credential the script was rendered for: the store sends it only while the runner holds it. */
        readonly credential: string;
        readonly expected: ExpectedRecord;
        /** The rendered script; left out of reports and logs (it is long, and its hash names it). */
        readonly script: string;
      }
    | {
        readonly kind: "stop-vpn";
        readonly instanceId: string;
        readonly hash: string;
        readonly expected: ExpectedRecord;
        readonly script: string;
      }
    | {
        readonly kind: "record-command";
        readonly instanceId: string;
        readonly record: CommandRecord;
        /** A setup that succeeded becomes the applied setup; a stop that succeeded clears it (null). */
        readonly appliedSetup: string | null | undefined;
      }
    | {
        readonly kind: "record-health";
        readonly instanceId: string;
        readonly health: AlarmState;
        /** Set when the health is ALARM: the store keeps it as the runner's `alarmedAt`. */
        readonly alarmedAt: number | undefined;
      }
    | {
        /** The one-time move of an older deployment's state from the instance tags into the store. */
        readonly kind: "adopt-runner";
        readonly instanceId: string;
        readonly credential: string | undefined;
        readonly appliedSetup: string | undefined;
        readonly command: CommandRecord | undefined;
      }
    | { readonly kind: "forget-runner"; readonly instanceId: string }
    | {
        /** Makes labgate's tags on the instance show what the store says (undefined: leave, null: remove). */
        readonly kind: "mirror-tags";
        readonly instanceId: string;
        readonly tags: Readonly<Record<string, string | null>>;
      }
    | {
        readonly kind: "create-route" | "replace-route";
        readonly routeTableId: string;
        readonly cidr: string;
        readonly target: RouteTarget;
        /** The instance the route pointed at before, if any. */
        readonly previous: string | undefined;
        /** True when the route leaves a runner that can no longer carry it. */
        readonly failover: boolean;
      }
    | {
        /** A route labgate made for a CIDR that is no longer one of the lab's intranet CIDRs. */
        readonly kind: "delete-route";
        readonly routeTableId: string;
        readonly cidr: string;
        /** The runner it points at (an instance of the lab's group). */
        readonly instanceId: string;
      }
    | {
        readonly kind: "complete-lifecycle";
        readonly instanceId: string;
        readonly hook: string;
        readonly result: "CONTINUE" | "ABANDON";
      }
    | { readonly kind: "put-health-alarm"; readonly instanceId: string; readonly alarmName: string }
    | { readonly kind: "delete-health-alarms"; readonly alarmNames: readonly string[] }
  );

export type ActionKind = Action["kind"];
export type RouteAction = Extract<Action, { kind: "create-route" | "replace-route" }>;

/** What the core can notice that no action can fix now. */
export const FINDING_KINDS = [
  "lab-unreachable",
  "subnet-unreachable",
  "subnet-missing",
  "no-worker-subnets",
  "credential-pool-empty",
  "credential-conflict",
  "credential-retired",
  "command-failed",
  "route-table-missing",
  "route-table-shared",
  "runner-unrenderable",
  "observe-degraded",
  "metadata-open",
  "intranet-overlaps-vpc",
  "rollout-halted",
  "rollout-interrupts",
  "termination-held",
] as const;

/** Something the core noticed that no action can fix now; logged, counted and reported. */
export interface Finding {
  readonly kind: (typeof FINDING_KINDS)[number];
  readonly message: string;
  readonly instanceId?: string;
  readonly subnetId?: string;
}

export interface Plan {
  readonly actions: readonly Action[];
  readonly findings: readonly Finding[];
  /** Eligible runners per AZ of the lab's worker subnets and runners (0 where none). */
  readonly eligibleByAz: Readonly<Record<string, number>>;
  readonly credentialsFree: number;
  /**
   * Why another reconcile should follow soon, rather than at the next event or the schedule: what this
   * plan does unlocks more (a key given back is leased again at once). Empty when nothing waits.
   */
  readonly followUp: readonly string[];
}

/** The action as reported and logged: everything but the rendered script. */
export const describeAction = (action: Action): Record<string, unknown> => {
  if (action.kind === "push-setup" || action.kind === "stop-vpn") {
    const { script: _script, ...rest } = action;
    return rest;
  }
  return { ...action };
};
