// One request through the IAM policy simulator (@cloud-copilot/iam-simulate), for the infra tests: the
// principal's identity policies, and the resource's own policy when the service has one (a KMS key policy).
import { runSimulation } from "@cloud-copilot/iam-simulate";
import { expect } from "vitest";

export type Decision = "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied";

export interface Request {
  /** What the request stands for, in failure messages. */
  readonly what: string;
  readonly action: string;
  readonly resource: string;
  /** The caller; the reconciler's role session unless given. */
  readonly principal?: string;
  readonly context?: Readonly<Record<string, string | readonly string[]>>;
}

export interface Policies {
  readonly identity: readonly { readonly name: string; readonly policy: unknown }[];
  readonly resource?: unknown;
}

/**
 * The simulator only recognises context keys of a `prefix/name` family (aws:ResourceTag/x) and drops the
 * `kms:EncryptionContext:<key>` family from a request, which would leave every condition on it unmatched.
 * So that key is evaluated under the name of another single-valued String key of the same KMS actions that no
 * policy here uses, renamed alike in the policies and in the request: the same comparisons, a name the
 * simulator knows.
 */
export const ENCRYPTION_CONTEXT_KEY = "kms:EncryptionContext:PARAMETER_ARN";
const STAND_IN_KEY = "kms:RequestAlias";

const renamed = <T>(value: T): T => {
  const text = JSON.stringify(value);
  if (text.includes(`"${STAND_IN_KEY}"`)) throw new Error(`${STAND_IN_KEY} is used: pick another stand-in`);
  return JSON.parse(text.replaceAll(`"${ENCRYPTION_CONTEXT_KEY}"`, `"${STAND_IN_KEY}"`)) as T;
};

export const ACCOUNT = "123456789012";
const RECONCILER = `arn:aws:sts::${ACCOUNT}:assumed-role/labgate-reconciler/labgate`;

export const simulate = async (req: Request, policies: Policies): Promise<Decision> => {
  const result = await runSimulation(
    {
      request: {
        principal: req.principal ?? RECONCILER,
        action: req.action,
        resource: { resource: req.resource, accountId: ACCOUNT },
        contextVariables: renamed({ ...req.context }) as Record<string, string | string[]>,
      },
      identityPolicies: policies.identity.map(({ name, policy }) => ({ name, policy: renamed(policy) })),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(policies.resource ? { resourcePolicy: renamed(policies.resource) } : {}),
    },
    {},
  );
  if (result.resultType === "error") throw new Error(`${req.what}: ${JSON.stringify(result.errors)}`);
  if (result.resultType === "single") {
    // A context key the action does not know is dropped silently: the condition would then be meaningless.
    expect(result.result.ignoredContextKeys ?? [], `${req.what}: unknown context keys`).toEqual([]);
  }
  return result.overallResult as Decision;
};
