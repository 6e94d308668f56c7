// A lab's runner as IAM sees it, for the simulator tests: its role's session on one instance, the policies on
// its role (AmazonSSMManagedInstanceCore beside labgate's, as infra/README.md has the operator attach them),
// and what reading a credential takes: ssm:GetParameter, then kms:Decrypt by SSM on the caller's behalf.
import type { LabConfig } from "../../functions/core/config.ts";
import { HOLDER_TAG, instanceArn } from "../../functions/core/names.ts";
import { credentialKeyPolicy } from "../../infra/key-policy.ts";
import { labs } from "../../infra/labs.ts";
import { type AccountContext, runnerRoleArn, ssmViaService } from "../../infra/policy.ts";
import { runnerPolicy } from "../../infra/runner-policy.ts";
import { AMAZON_SSM_MANAGED_INSTANCE_CORE, awsSsmKeyPolicy } from "./fixtures/managed-policies.ts";
import { ACCOUNT, type Decision, ENCRYPTION_CONTEXT_KEY, type Policies, simulate } from "./simulate.ts";

export const account: AccountContext = { partition: "aws", region: "eu-central-1", account: ACCOUNT };
const { partition: p, region: r, account: a } = account;

const [first, second] = labs;
if (first?.name !== "foo" || second?.name !== "bar") throw new Error("infra/labs.ts must list foo then bar");
export const foo: LabConfig = first;
export const bar: LabConfig = second;

export const parameterArn = (name: string): string => `arn:${p}:ssm:${r}:${a}:parameter${name}`;
/** A lab's credential key (a made-up key id per lab). */
export const keyArn = (lab: LabConfig): string =>
  `arn:${p}:kms:${r}:${a}:key/${lab.name.padEnd(8, "0")}-12ab-34cd-56ef-1234567890ab`;

export const runnerPolicyOf = (lab: LabConfig) =>
  runnerPolicy(lab, { ...account, labs, credentialKeyArn: keyArn(lab) });

export interface Caller {
  readonly principal: string;
  readonly context: Readonly<Record<string, string>>;
  readonly identity: Policies["identity"];
}

/** A runner of `lab` on instance `id`, its role carrying the managed policy, labgate's, and any `extra`. */
export const runner = (lab: LabConfig, id: string, extra: Policies["identity"] = []): Caller => ({
  principal: `arn:${p}:sts::${a}:assumed-role/${lab.runners.instanceRoleName}/${id}`,
  // What IAM puts in the request context of an instance role's session.
  context: {
    "aws:PrincipalArn": runnerRoleArn(lab, account),
    "ec2:SourceInstanceARN": instanceArn(account, id),
  },
  identity: [
    { name: "AmazonSSMManagedInstanceCore", policy: AMAZON_SSM_MANAGED_INSTANCE_CORE },
    { name: `labgate-${lab.name}-runner`, policy: runnerPolicyOf(lab) },
    ...extra,
  ],
});

/** Someone of the account who is no runner: a role session with these identity policies. */
export const person = (role: string, identity: Policies["identity"]): Caller => ({
  principal: `arn:${p}:sts::${a}:assumed-role/${role}/someone`,
  context: { "aws:PrincipalArn": `arn:${p}:iam::${a}:role/${role}` },
  identity,
});

export const ADMINISTRATOR_ACCESS = {
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }],
} as const;

/** A credential parameter as it lies in the account: whose lab it is, its key, its holder tag. */
export interface Credential {
  readonly lab: LabConfig;
  readonly name: string;
  /** The instance ARN in HOLDER_TAG, if any. */
  readonly holder?: string;
  /** Encrypted with the lab's key (the default), or still with aws/ssm (before the one-time migration). */
  readonly key?: "lab" | "aws/ssm";
}

export const holderOn = (id: string): string => instanceArn(account, id);

/** ssm:GetParameter of the credential by the caller. */
export const getParameter = (caller: Caller, c: Credential, action = "ssm:GetParameter"): Promise<Decision> =>
  simulate(
    {
      what: `${action} ${c.name} by ${caller.principal}`,
      action,
      resource: parameterArn(c.name),
      principal: caller.principal,
      context: { ...caller.context, ...(c.holder ? { [`aws:ResourceTag/${HOLDER_TAG}`]: c.holder } : {}) },
    },
    { identity: caller.identity },
  );

/** kms:Decrypt of the credential's value as SSM asks it on the caller's behalf (or as `overrides` say). */
export const decrypt = (
  caller: Caller,
  c: Credential,
  overrides: Readonly<Record<string, string>> = {},
  action = "kms:Decrypt",
): Promise<Decision> =>
  simulate(
    {
      what: `${action} ${c.name} by ${caller.principal} ${JSON.stringify(overrides)}`,
      action,
      resource:
        c.key === "aws/ssm" ? `arn:${p}:kms:${r}:${a}:key/aws-ssm-0000-0000-000000000000` : keyArn(c.lab),
      principal: caller.principal,
      context: {
        ...caller.context,
        "kms:ViaService": ssmViaService(r),
        "kms:CallerAccount": a,
        [ENCRYPTION_CONTEXT_KEY]: parameterArn(c.name),
        ...overrides,
      },
    },
    {
      identity: caller.identity,
      resource: c.key === "aws/ssm" ? awsSsmKeyPolicy(a, r) : credentialKeyPolicy(c.lab, account),
    },
  );

/** Whether the caller gets the credential's plaintext: both requests allowed. */
export const reads = async (caller: Caller, c: Credential): Promise<boolean> =>
  (await getParameter(caller, c)) === "Allowed" && (await decrypt(caller, c)) === "Allowed";
