// The key policy of a lab's credential key, simulated: only the lab's runners' role decrypts, only through
// SSM, only its lab's parameters; operators encrypt them; administrators administer without decrypting.
import { describe, expect, it } from "vitest";
import { credentialKeyPolicy, KEY_ADMINISTRATION_ACTIONS } from "../../infra/key-policy.ts";
import {
  ADMINISTRATOR_ACCESS,
  account,
  bar,
  type Credential,
  decrypt,
  foo,
  holderOn,
  keyArn,
  person,
  runner,
} from "./callers.ts";
import { type Request, simulate } from "./simulate.ts";

const A1 = "i-0f0000000000a0001";
const held: Credential = { lab: foo, name: foo.vpn.credentials[0] ?? "", holder: holderOn(A1) };
const admin = person("Admin", [{ name: "AdministratorAccess", policy: ADMINISTRATOR_ACCESS }]);

/** A request on foo's key by a caller, under foo's key policy (or `keyPolicy`). */
const onKey = (
  caller: ReturnType<typeof person>,
  action: string,
  context: Record<string, string> = {},
  keyPolicy: unknown = credentialKeyPolicy(foo, account),
) =>
  simulate(
    {
      what: action,
      action,
      resource: keyArn(foo),
      principal: caller.principal,
      context: { ...caller.context, ...context },
    } satisfies Request,
    { identity: caller.identity, resource: keyPolicy },
  );

const throughSsm = (parameter: string) => ({
  "kms:ViaService": `ssm.${account.region}.amazonaws.com`,
  "kms:CallerAccount": account.account,
  "kms:EncryptionContext:PARAMETER_ARN": `arn:aws:ssm:${account.region}:${account.account}:parameter${parameter}`,
});

describe("credential key policy", () => {
  it("lets foo's runners' role decrypt foo's credentials through SSM", async () => {
    expect(await decrypt(runner(foo, A1), held)).toBe("Allowed");
  });

  it("needs the runners' own policy too: the key alone grants the role nothing", async () => {
    const bare = { ...runner(foo, A1), identity: [] };
    expect(await decrypt(bare, held)).toBe("ImplicitlyDenied");
  });

  it("refuses decryption to bar's runners' role, even with kms:* on every key in its IAM policy", async () => {
    const greedy = runner(bar, "i-0b0000000000b0001", [{ name: "everything", policy: ADMINISTRATOR_ACCESS }]);
    expect(await decrypt(greedy, held)).toBe("ExplicitlyDenied");
  });

  it("refuses decryption to an administrator of the account (AdministratorAccess)", async () => {
    expect(await onKey(admin, "kms:Decrypt", throughSsm(held.name))).toBe("ExplicitlyDenied");
    // The same request under the usual default key policy ("Enable IAM User Permissions"), for contrast:
    // there IAM decides, and the administrator reads every credential.
    const usual = {
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: { AWS: `arn:aws:iam::${account.account}:root` },
          Action: "kms:*",
          Resource: "*",
        },
      ],
    };
    expect(await onKey(admin, "kms:Decrypt", throughSsm(held.name), usual)).toBe("Allowed");
  });

  it("refuses decryption outside SSM, even to the runners' role", async () => {
    expect(
      await decrypt(runner(foo, A1), held, { "kms:ViaService": `s3.${account.region}.amazonaws.com` }),
    ).toBe("ExplicitlyDenied");
    const { "kms:ViaService": _, ...direct } = throughSsm(held.name);
    expect(await onKey(runner(foo, A1), "kms:Decrypt", direct)).toBe("ExplicitlyDenied");
  });

  it("refuses decryption with another parameter's encryption context", async () => {
    for (const other of [
      bar.vpn.credentials[0] ?? "",
      "/labgate/foo/vpn/not-listed",
      "/gitlab/runner-token",
    ]) {
      const context = {
        "kms:EncryptionContext:PARAMETER_ARN": `arn:aws:ssm:${account.region}:${account.account}:parameter${other}`,
      };
      expect(await decrypt(runner(foo, A1), held, context), other).not.toBe("Allowed");
    }
  });

  it("lets an operator encrypt foo's credentials through SSM (put-parameter), and nothing else", async () => {
    const operator = person("Operator", [{ name: "AdministratorAccess", policy: ADMINISTRATOR_ACCESS }]);
    for (const action of ["kms:Encrypt", "kms:GenerateDataKey"]) {
      expect(await onKey(operator, action, throughSsm(held.name)), action).toBe("Allowed");
      expect(await onKey(operator, action, throughSsm(bar.vpn.credentials[0] ?? "")), action).toBe(
        "ImplicitlyDenied",
      );
      const { "kms:ViaService": _, ...direct } = throughSsm(held.name);
      expect(await onKey(operator, action, direct), action).toBe("ImplicitlyDenied");
    }
  });

  it("lets administrators administer the key, and never hand it out by grant or re-encryption", async () => {
    for (const action of KEY_ADMINISTRATION_ACTIONS)
      expect(await onKey(admin, action), action).toBe("Allowed");
    const { "kms:EncryptionContext:PARAMETER_ARN": _, ...ssm } = throughSsm(held.name);
    for (const action of ["kms:CreateGrant", "kms:ReEncryptFrom", "kms:ReEncryptTo"]) {
      expect(await onKey(admin, action, ssm), action).toBe("ExplicitlyDenied");
      expect(await onKey(runner(foo, A1), action, ssm), action).toBe("ExplicitlyDenied");
    }
  });

  it("has no statement that lets the account's IAM policies grant a use of the key", () => {
    const uses = ["kms:Decrypt", "kms:ReEncryptFrom", "kms:CreateGrant", "kms:*"];
    for (const s of credentialKeyPolicy(foo, account).Statement.filter((s) => s.Effect === "Allow")) {
      if (s.Action.includes("kms:Decrypt"))
        expect(s.Condition?.ArnEquals?.["aws:PrincipalArn"], s.Sid).toBeDefined();
      else for (const use of uses) expect(s.Action, s.Sid).not.toContain(use);
    }
  });
});
