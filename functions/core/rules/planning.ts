// The state one plan is built in: the world, the lab, and what the rules have decided so far.
import type { Action, Finding } from "../actions.ts";
import type { LabConfig } from "../config.ts";
import type { Read, Runner, World } from "../world.ts";

export interface Planning {
  readonly world: World;
  readonly lab: LabConfig;
  /** The runners that are not terminated, in instance id order. */
  readonly live: readonly Runner[];
  /** Runners this plan restarts the tunnel of (rollout.ts): they carry nothing meanwhile, by the reason. */
  readonly draining: ReadonlyMap<string, string>;
  readonly findings: Finding[];
  /** Reasons for another reconcile soon (Plan.followUp). */
  readonly followUp: string[];
  /** Whether a read of this observe succeeded: the rules decide nothing from what they could not read. */
  known(read: Read): boolean;
  /** Adds an action to the plan; returns its id, for the actions that must wait on it. */
  add(action: Action): string;
}
