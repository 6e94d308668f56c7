// `npm run lab`'s arguments are checked before the lab is looked at, so a typo is named as a typo.
import { describe, expect, it } from "vitest";
import { LabUsageError, parseLabArgs, runnerNameProblem } from "../../functions/cli/lab-args.ts";

describe("parseLabArgs", () => {
  it("brings the lab up without arguments, and reads every command", () => {
    expect(parseLabArgs([])).toEqual({ command: "up", credentialKind: "static-key" });
    for (const command of ["status", "down", "help"] as const)
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

describe("the credential kind of up", () => {
  it("is static keys unless told otherwise, by the option or the environment, the option first", () => {
    expect(parseLabArgs(["up"])).toEqual({ command: "up", credentialKind: "static-key" });
    expect(parseLabArgs(["up", "--credential-kind", "tls"])).toEqual({
      command: "up",
      credentialKind: "tls",
    });
    expect(parseLabArgs(["up", "--credential-kind=tls"])).toMatchObject({ credentialKind: "tls" });
    expect(parseLabArgs(["up"], { LABGATE_LAB_CREDENTIAL_KIND: "tls" })).toMatchObject({
      credentialKind: "tls",
    });
    expect(
      parseLabArgs(["up", "--credential-kind", "static-key"], { LABGATE_LAB_CREDENTIAL_KIND: "tls" }),
    ).toMatchObject({ credentialKind: "static-key" });
  });

  it("refuses an unknown kind, and a kind for a command other than up", () => {
    expect(() => parseLabArgs(["up", "--credential-kind", "psk"])).toThrow(/unknown credential kind psk/);
    expect(() => parseLabArgs(["up", "--credential-kind"])).toThrow(/needs a kind/);
    expect(() => parseLabArgs(["status", "--credential-kind", "tls"])).toThrow(/applies to up only/);
    expect(parseLabArgs(["status"], { LABGATE_LAB_CREDENTIAL_KIND: "tls" })).toEqual({ command: "status" });
  });
});
