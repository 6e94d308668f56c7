// The COMMAND_TAG value: the last command labgate sent to a runner, mirrored on the instance for people (the
// record itself lives in the lab's store). Format: `<kind> <hash> <commandId or -> <status> <sentAtMillis>`.
import type { CommandRecord } from "./world.ts";

// Strict on purpose: a value anybody edited by hand is treated as absent rather than half understood.
const COMMAND_TAG_PATTERN =
  /^(setup|stop-vpn) ([0-9a-f]{8,64}) ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|-) (pending|success|failed) ([0-9]{1,15})$/;

/** The record a COMMAND_TAG value holds; undefined when the value is malformed. */
export const parseCommandTag = (value: string): CommandRecord | undefined => {
  const match = COMMAND_TAG_PATTERN.exec(value);
  if (!match) return undefined;
  const [, kind, hash, commandId, status, sentAt] = match;
  if (!kind || !hash || !commandId || !status || !sentAt) return undefined;
  return {
    kind: kind as CommandRecord["kind"],
    hash,
    commandId: commandId === "-" ? undefined : commandId,
    status: status as CommandRecord["status"],
    sentAt: Number(sentAt),
  };
};

/** The COMMAND_TAG value of a record; undefined for a record that would not read back (never written). */
export const formatCommandTag = (record: CommandRecord): string | undefined => {
  const value = `${record.kind} ${record.hash} ${record.commandId ?? "-"} ${record.status} ${record.sentAt}`;
  return COMMAND_TAG_PATTERN.test(value) ? value : undefined;
};
