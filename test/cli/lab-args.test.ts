// `npm run lab`'s command line: static keys by default, TLS on request (option or environment), for `up` only.
import { describe, expect, it } from "vitest";
import { parseLabArgs } from "../../functions/cli/lab-args.ts";

describe("npm run lab arguments", () => {
  it("brings the lab up with static keys unless told otherwise", () => {
    expect(parseLabArgs([])).toEqual({ command: "up", target: undefined, credentialKind: "static-key" });
    expect(parseLabArgs(["kill", "a1"])).toMatchObject({ command: "kill", target: "a1" });
  });

  it("takes the credential kind from the option or the environment, the option first", () => {
    expect(parseLabArgs(["up", "--credential-kind", "tls"]).credentialKind).toBe("tls");
    expect(parseLabArgs(["up", "--credential-kind=tls"]).credentialKind).toBe("tls");
    expect(parseLabArgs(["up"], { LABGATE_LAB_CREDENTIAL_KIND: "tls" }).credentialKind).toBe("tls");
    expect(
      parseLabArgs(["up", "--credential-kind", "static-key"], { LABGATE_LAB_CREDENTIAL_KIND: "tls" })
        .credentialKind,
    ).toBe("static-key");
  });

  it("refuses an unknown kind, and a kind for a command other than up", () => {
    expect(() => parseLabArgs(["up", "--credential-kind", "psk"])).toThrow(/unknown credential kind psk/);
    expect(() => parseLabArgs(["up", "--credential-kind"])).toThrow(/needs a kind/);
    expect(() => parseLabArgs(["status", "--credential-kind", "tls"])).toThrow(/applies to up only/);
    expect(parseLabArgs(["status"], { LABGATE_LAB_CREDENTIAL_KIND: "tls" }).command).toBe("status");
  });
});
