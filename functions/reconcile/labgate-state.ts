// The actions on labgate's own state, the same for every provider: the store is written first (the truth,
// conditional), then the instance's tags mirror it for people (best effort). Commands to runners are sent
// between an intent and its record, so that two reconciles can never send two commands to one runner, nor a
// setup for a key the runner no longer holds; where IAM enforces leases, the holder is granted the key just
// before its setup is sent. Each provider brings its store, its tags, its way to send and to grant.
import type { Action } from "../core/actions.ts";
import { formatCommandTag } from "../core/command-tag.ts";
import type { LabConfig } from "../core/config.ts";
import { COMMAND_TAG, CREDENTIAL_TAG, SETUP_TAG } from "../core/names.ts";
import type { ApplyOutcome } from "./ports.ts";
import { type LabStore, StoreConflict } from "./store.ts";

type ActionOf<K extends Action["kind"]> = Extract<Action, { readonly kind: K }>;

export type StateActionKind =
  | "lease-credential"
  | "release-credential"
  | "release-orphan-lease"
  | "push-setup"
  | "stop-vpn"
  | "record-command"
  | "record-health"
  | "adopt-runner"
  | "forget-runner"
  | "mirror-tags";
export type StateAction = ActionOf<StateActionKind>;

export const isStateAction = (action: Action): action is StateAction =>
  (
    [
      "lease-credential",
      "release-credential",
      "release-orphan-lease",
      "push-setup",
      "stop-vpn",
      "record-command",
      "record-health",
      "adopt-runner",
      "forget-runner",
      "mirror-tags",
    ] as readonly string[]
  ).includes(action.kind);

export interface StateEffects {
  readonly store: LabStore;
  /** Writes labgate's tags on an instance (null removes one); may throw (a failure is only logged). */
  mirror(instanceId: string, tags: Readonly<Record<string, string | null>>): Promise<void>;
  /** Sends a command script to a runner: its command id, or why it cannot be sent yet (nothing was sent). */
  send(
    action: ActionOf<"push-setup" | "stop-vpn">,
    kind: "setup" | "stop-vpn",
  ): Promise<{ readonly commandId: string } | { readonly deferred: string }>;
  /**
   * Where IAM enforces leases (AWS: the credential parameter's holder tag), makes the runner the only one
   * allowed to read the credential; done before a setup that fetches it is sent.
   */
  grant?(parameter: string, instanceId: string): Promise<void>;
  /** Takes that right back when the lease ends, if the runner still has it (best effort: a new grant replaces it). */
  revoke?(parameter: string, instanceId: string): Promise<void>;
  /** Logs what a mirror write or a revocation could not do. */
  warn(message: string, extra: Record<string, unknown>): void;
  now(): number;
}

const DONE: ApplyOutcome = { status: "done" };

export const applyStateAction = async (
  action: StateAction,
  lab: LabConfig,
  fx: StateEffects,
): Promise<ApplyOutcome> => {
  try {
    return await carryOut(action, lab.name, fx);
  } catch (error) {
    // A conditional write that lost to another reconcile is no failure: the next one re-reads and decides.
    if (error instanceof StoreConflict) return { status: "deferred", why: error.message };
    throw error;
  }
};

/** A revocation that fails leaves a holder that the next grant replaces: logged, never fails the release. */
const revoke = async (fx: StateEffects, parameter: string, instanceId: string) => {
  try {
    await fx.revoke?.(parameter, instanceId);
  } catch (error) {
    fx.warn(
      "could not take the released credential's read right back from its holder; the next lease replaces it",
      {
        parameter,
        instanceId,
        error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      },
    );
  }
};

/** The mirror is for people: a failure is logged and repaired by a later reconcile (core/rules/mirror.ts). */
const mirror = async (
  fx: StateEffects,
  instanceId: string,
  tags: Readonly<Record<string, string | null>>,
) => {
  try {
    await fx.mirror(instanceId, tags);
  } catch (error) {
    fx.warn("could not mirror labgate's state in the instance's tags; a later reconcile repairs it", {
      instanceId,
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
    });
  }
};

const carryOut = async (action: StateAction, lab: string, fx: StateEffects): Promise<ApplyOutcome> => {
  const { store } = fx;
  switch (action.kind) {
    case "lease-credential":
      await store.lease(lab, action.parameter, action.instanceId, fx.now());
      await mirror(fx, action.instanceId, { [CREDENTIAL_TAG]: action.parameter });
      return DONE;
    case "release-credential":
      await store.release(lab, action.parameter, action.instanceId);
      await revoke(fx, action.parameter, action.instanceId);
      await mirror(fx, action.instanceId, { [CREDENTIAL_TAG]: null });
      return DONE;
    case "release-orphan-lease":
      await store.releaseOrphan(lab, action.parameter, action.holder);
      await revoke(fx, action.parameter, action.holder);
      return DONE;
    case "push-setup":
    case "stop-vpn":
      return sendCommand(action, lab, fx);
    case "record-command":
      try {
        await store.recordCommand(lab, action.instanceId, action.record, action.appliedSetup);
      } catch (error) {
        // A newer command was recorded meanwhile: this outcome is history already.
        if (error instanceof StoreConflict) return DONE;
        throw error;
      }
      await mirror(fx, action.instanceId, {
        [COMMAND_TAG]: formatCommandTag(action.record) ?? null,
        ...(action.appliedSetup === undefined ? {} : { [SETUP_TAG]: action.appliedSetup }),
      });
      return DONE;
    case "record-health":
      await store.recordHealth(lab, action.instanceId, action.health, action.alarmedAt);
      return DONE;
    case "adopt-runner": {
      const { credential, appliedSetup, command } = action;
      await store.adopt(lab, action.instanceId, { credential, appliedSetup, command }, fx.now());
      return DONE;
    }
    case "forget-runner":
      await store.forget(lab, action.instanceId);
      return DONE;
    case "mirror-tags":
      await fx.mirror(action.instanceId, action.tags);
      return DONE;
  }
};

/**
 * Records the intent (refused if the runner's record moved on since the plan, another command is being
 * sent, or, for a setup, the runner no longer holds the key it was rendered for), sends the command, then
 * records it as pending. A reconcile that dies between the two writes leaves an intent that the core takes
 * as failed after a while (core/rules/runner.ts SEND_GRACE_MS).
 */
const sendCommand = async (
  action: ActionOf<"push-setup" | "stop-vpn">,
  lab: string,
  fx: StateEffects,
): Promise<ApplyOutcome> => {
  const kind = action.kind === "push-setup" ? "setup" : "stop-vpn";
  const sentAt = fx.now();
  const credential = action.kind === "push-setup" ? action.credential : undefined;
  const intent = { kind, hash: action.hash, sentAt } as const;
  await fx.store.beginCommand(lab, action.instanceId, intent, action.expected.commandId, credential);
  let sent: Awaited<ReturnType<StateEffects["send"]>>;
  try {
    // The runner fetches the credential itself: only the holder may, and this one is it (the store said so
    // just now, in the intent's condition).
    if (credential !== undefined) await fx.grant?.(credential, action.instanceId);
    sent = await fx.send(action, kind);
  } catch (error) {
    await fx.store.abortCommand(lab, action.instanceId, sentAt);
    throw error;
  }
  if ("deferred" in sent) {
    await fx.store.abortCommand(lab, action.instanceId, sentAt);
    return { status: "deferred", why: sent.deferred };
  }
  const record = { ...intent, commandId: sent.commandId, status: "pending" } as const;
  await fx.store.commandSent(lab, action.instanceId, record);
  await mirror(fx, action.instanceId, { [COMMAND_TAG]: formatCommandTag(record) ?? null });
  return DONE;
};
