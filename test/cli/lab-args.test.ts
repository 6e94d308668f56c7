// `npm run lab`'s arguments are checked before the lab is looked at, so a typo is named as a typo.
import { describe, expect, it } from "vitest";
import { LabUsageError, parseLabArgs, runnerNameProblem } from "../../functions/cli/lab-args.ts";

describe("parseLabArgs", () => {
  it("brings the lab up without arguments, and reads every command", () => {
    expect(parseLabArgs([])).toEqual({ command: "up" });
    for (const command of ["up", "status", "down", "help"] as const)
      expect(parseLabArgs([command])).toEqual({ command });
    expect(parseLabArgs(["--help"])).toEqual({ command: "help" });
    expect(parseLabArgs(["kill", "b2"])).toEqual({ command: "kill", runner: "b2" });
    expect(parseLabArgs(["replace", "carrier-a"])).toEqual({ command: "replace", runner: "carrier-a" });
    expect(parseLabArgs(["cut-tunnel", "i-0f0000000000a0001"])).toEqual({
      command: "cut-tunnel",
      runner: "i-0f0000000000a0001",
    });
  });

  it("refuses an unknown command, naming it", () => {
    expect(() => parseLabArgs(["stauts"])).toThrow(LabUsageError);
    expect(() => parseLabArgs(["stauts"])).toThrow(/unknown command stauts\nusage:/);
  });

  it("refuses a runner command without a runner, or with two", () => {
    expect(() => parseLabArgs(["kill"])).toThrow(/kill needs a runner/);
    expect(() => parseLabArgs(["kill", "a1", "a2"])).toThrow(/kill takes no a2/);
    expect(() => parseLabArgs(["status", "a1"])).toThrow(/status takes no a1/);
  });

  it("refuses a runner name that cannot name a runner of the lab", () => {
    expect(() => parseLabArgs(["kill", "z1"])).toThrow(/no AZ z .*a, b/);
    expect(() => parseLabArgs(["replace", "carrier-c"])).toThrow(/no AZ c/);
    expect(() => parseLabArgs(["cut-tunnel", "runner1"])).toThrow(/runner1 is not a runner/);
    expect(() => parseLabArgs(["kill", "a0"])).toThrow(/a0 is not a runner/);
  });
});

describe("runnerNameProblem", () => {
  it("accepts short names of the lab's AZs, instance ids and carriers", () => {
    for (const name of ["a1", "b12", "carrier-a", "carrier-b", "i-0f0000000000a0001", "i-0123abcd"])
      expect(runnerNameProblem(name)).toBeUndefined();
  });
});
