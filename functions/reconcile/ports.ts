// The two ports every provider of a lab implements: the AWS adapters (functions/aws) and the local lab.
import type { Action } from "../core/actions.ts";
import type { LabConfig } from "../core/config.ts";
import type { World } from "../core/world.ts";

/** done: the action took effect. deferred: it could not be done yet for a benign reason (say why). */
export type ApplyOutcome =
  | { readonly status: "done" }
  | { readonly status: "deferred"; readonly why: string };

export interface LabProvider {
  /** Reads everything the core needs about one lab, in as few sequential round trips as possible. */
  observe(lab: LabConfig): Promise<World>;
  /** Carries out one action; throws when it failed. */
  apply(action: Action, lab: LabConfig): Promise<ApplyOutcome>;
  /** Whether an instance belongs to the lab's runner group (cheap check for events naming an instance). */
  ownsInstance(instanceId: string, lab: LabConfig): Promise<boolean>;
}
