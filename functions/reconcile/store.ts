// The store port: labgate's own state of a lab (leases, command records, applied setups, recorded health),
// strongly consistent, changed only by conditional writes. The AWS provider keeps it in DynamoDB
// (functions/aws/store.ts), the lab in a box in memory (functions/local/memory-store.ts); both pass the same
// contract test (test/support/store-contract.ts).
import type { RequeueEpisode } from "../core/retry.ts";
import type { AlarmState, CommandRecord, Mirror, OrphanLease, Runner } from "../core/world.ts";

/** What the store keeps of one runner. */
export interface StoredRunner {
  readonly credential?: string | undefined;
  readonly appliedSetup?: string | undefined;
  readonly command?: CommandRecord | undefined;
  /** A command labgate began to send and has not recorded as sent (or given up): its intent. */
  readonly sending?: Pick<CommandRecord, "kind" | "hash" | "sentAt"> | undefined;
  readonly health?: AlarmState | undefined;
  /** When labgate last recorded the runner's health alarm entering ALARM (hysteresis: README "Hysteresis"). */
  readonly alarmedAt?: number | undefined;
}

export interface Lease {
  readonly holder: string;
  /** When it was taken, in milliseconds since the epoch. */
  readonly since: number;
}

/** Everything the store holds about one lab, read at once. */
export interface StoredLab {
  readonly runners: ReadonlyMap<string, StoredRunner>;
  /** By credential parameter. */
  readonly leases: ReadonlyMap<string, Lease>;
  /** The lab's requeue episode, if one runs (functions/core/retry.ts). */
  readonly requeue?: RequeueEpisode | undefined;
}

/** A conditional write found the record changed: another reconcile got there first. */
export class StoreConflict extends Error {
  override name = "StoreConflict";
}

export interface LabStore {
  /** A strongly consistent read of the lab's whole state. */
  read(lab: string): Promise<StoredLab>;
  /** Leases `parameter` to `instanceId`: only if the key is free (or already its) and the runner holds no other. */
  lease(lab: string, parameter: string, instanceId: string, now: number): Promise<void>;
  /** Gives the key back, only if `instanceId` holds it (otherwise there is nothing to give back). */
  release(lab: string, parameter: string, instanceId: string): Promise<void>;
  /** Drops a lease whose holder is gone for good, only if `holder` still holds it. */
  releaseOrphan(lab: string, parameter: string, holder: string): Promise<void>;
  /**
   * Records the intent to send a command before it is sent: only if the runner's last command is the one the
   * plan saw (`expectedCommandId`, undefined for none), no other command is being sent, and, for a setup, the
   * runner still holds `credential`. Throws StoreConflict otherwise.
   */
  beginCommand(
    lab: string,
    instanceId: string,
    intent: Pick<CommandRecord, "kind" | "hash" | "sentAt">,
    expectedCommandId: string | undefined,
    credential: string | undefined,
  ): Promise<void>;
  /** The command of an intent was sent: it becomes the runner's pending command. */
  commandSent(lab: string, instanceId: string, record: CommandRecord): Promise<void>;
  /** The command of an intent could not be sent: the intent goes. */
  abortCommand(lab: string, instanceId: string, sentAt: number): Promise<void>;
  /**
   * Records how a command ended (or that an intent never became a command), only if it is still the runner's
   * latest; a setup that succeeded becomes the applied setup, a stop that succeeded clears it (null).
   */
  recordCommand(
    lab: string,
    instanceId: string,
    record: CommandRecord,
    appliedSetup: string | null | undefined,
  ): Promise<void>;
  /** Records the alarm's state; `alarmedAt` (set when it is ALARM) is kept until the next ALARM. */
  recordHealth(lab: string, instanceId: string, health: AlarmState, alarmedAt?: number): Promise<void>;
  /** Takes over an older deployment's state from the tags: only if the store has no record of the runner. */
  adopt(lab: string, instanceId: string, state: StoredRunner, now: number): Promise<void>;
  /** Forgets a terminated runner, only once it holds no lease. */
  forget(lab: string, instanceId: string): Promise<void>;
  /**
   * Keeps the lab's requeue episode (undefined: none). Unconditional: reconciles of one lab never overlap
   * (reserved concurrency 1), and a lost update costs one attempt more or less, never a second pending requeue.
   */
  recordRequeue(lab: string, episode: RequeueEpisode | undefined): Promise<void>;
}

/** The command a runner's record shows: the intent being sent, if any, over the last command. */
const commandOf = (stored: StoredRunner | undefined): CommandRecord | undefined =>
  stored?.sending !== undefined
    ? { ...stored.sending, commandId: undefined, status: "pending" }
    : stored?.command;

/** What observe knows of an instance before labgate's state is laid over it. */
export type ObservedRunner = Omit<
  Runner,
  "recorded" | "credential" | "appliedSetup" | "command" | "recordedHealth" | "alarmedAt" | "commandOutcome"
> & { readonly mirror: Mirror };

/**
 * The runners with labgate's state from the store, and the leases held by instances not observed. The
 * lease items are the truth about keys (a runner's own item repeats its key for the conditional writes).
 */
export const withStoredState = (
  observed: readonly ObservedRunner[],
  stored: StoredLab,
): { runners: Runner[]; orphanLeases: OrphanLease[] } => {
  const held = new Map([...stored.leases].map(([credential, lease]) => [lease.holder, credential]));
  const runners = observed.map((r): Runner => {
    const s = stored.runners.get(r.instanceId);
    return {
      ...r,
      recorded: s !== undefined || held.has(r.instanceId),
      credential: held.get(r.instanceId),
      appliedSetup: s?.appliedSetup,
      command: commandOf(s),
      recordedHealth: s?.health,
      alarmedAt: s?.alarmedAt,
      commandOutcome: undefined,
    };
  });
  const ids = new Set(observed.map((r) => r.instanceId));
  const orphanLeases = [...stored.leases]
    .filter(([, lease]) => !ids.has(lease.holder))
    .map(([credential, lease]) => ({ credential, holder: lease.holder, since: lease.since }))
    .sort((a, b) => a.credential.localeCompare(b.credential));
  return { runners, orphanLeases };
};
