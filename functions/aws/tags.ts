// The COMMAND_TAG value: the last command labgate sent to a runner, kept on the runner itself so that it
// is read back with the instance. Format: `<kind> <hash> <commandId> <status> <sentAtMillis>`.
import { COMMAND_TAG } from "../core/names.ts";
import type { CommandRecord } from "../core/world.ts";

// Strict on purpose: a value anybody edited by hand is treated as absent rather than half understood.
const COMMAND_TAG_PATTERN =
  /^(setup|stop-vpn) ([0-9a-f]{8,64}) ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) (pending|success|failed) ([0-9]{1,15})$/;

/** The record a COMMAND_TAG value holds; undefined when the value is malformed. */
export const parseCommandTag = (value: string): CommandRecord | undefined => {
  const match = COMMAND_TAG_PATTERN.exec(value);
  if (!match) return undefined;
  const [, kind, hash, commandId, status, sentAt] = match;
  if (!kind || !hash || !commandId || !status || !sentAt) return undefined;
  return {
    kind: kind as CommandRecord["kind"],
    hash,
    commandId,
    status: status as CommandRecord["status"],
    sentAt: Number(sentAt),
  };
};

/** The COMMAND_TAG value of a record; throws rather than write a value that would not parse back. */
export const formatCommandTag = (record: CommandRecord): string => {
  const value = `${record.kind} ${record.hash} ${record.commandId} ${record.status} ${record.sentAt}`;
  if (!COMMAND_TAG_PATTERN.test(value)) {
    throw new TypeError(`not a valid ${COMMAND_TAG} value: ${JSON.stringify(value)}`);
  }
  return value;
};
