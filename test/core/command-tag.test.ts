import { describe, expect, it } from "vitest";
import { formatCommandTag, parseCommandTag } from "../../functions/core/command-tag.ts";
import type { CommandRecord } from "../../functions/core/world.ts";

const record: CommandRecord = {
  kind: "stop-vpn",
  hash: "3f2a9c1d0b7e4a56",
  commandId: "e8d3c0e4-0c3b-4d8e-9a5f-1c2d3e4f5a06",
  status: "pending",
  sentAt: 1795683630000,
};

// The COMMAND_TAG mirror of a runner's last command.
describe("COMMAND_TAG values", () => {
  it("read back as the record they were written from", () => {
    const value = formatCommandTag(record) ?? "";

    expect(value).toBe(
      "stop-vpn 3f2a9c1d0b7e4a56 e8d3c0e4-0c3b-4d8e-9a5f-1c2d3e4f5a06 pending 1795683630000",
    );
    expect(parseCommandTag(value)).toEqual(record);
  });

  it("show a command whose sending began but whose id is not known yet with a dash", () => {
    const sending = { ...record, commandId: undefined };
    expect(formatCommandTag(sending)).toBe("stop-vpn 3f2a9c1d0b7e4a56 - pending 1795683630000");
    expect(parseCommandTag(formatCommandTag(sending) ?? "")).toEqual(sending);
  });

  it.each([
    ["an empty value", ""],
    ["a missing field", "setup 3f2a9c1d0b7e4a56 e8d3c0e4-0c3b-4d8e-9a5f-1c2d3e4f5a06 pending"],
    ["an unknown kind", "reboot 3f2a9c1d0b7e4a56 e8d3c0e4-0c3b-4d8e-9a5f-1c2d3e4f5a06 pending 1795683630000"],
    [
      "an unknown status",
      "setup 3f2a9c1d0b7e4a56 e8d3c0e4-0c3b-4d8e-9a5f-1c2d3e4f5a06 Success 1795683630000",
    ],
    ["a command id that is no UUID", "setup 3f2a9c1d0b7e4a56 not-a-command pending 1795683630000"],
    [
      "a time that is no number",
      "setup 3f2a9c1d0b7e4a56 e8d3c0e4-0c3b-4d8e-9a5f-1c2d3e4f5a06 pending yesterday",
    ],
    ["extra spaces", "setup  3f2a9c1d0b7e4a56 e8d3c0e4-0c3b-4d8e-9a5f-1c2d3e4f5a06 pending 1795683630000"],
  ])("are treated as absent when malformed: %s", (_, value) => {
    expect(parseCommandTag(value)).toBeUndefined();
  });

  it("are never written in a form that would not read back", () => {
    expect(formatCommandTag({ ...record, hash: "not hex" })).toBeUndefined();
  });
});
