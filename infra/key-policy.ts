// The key policy of a lab's credential key, as data: a pure function of the lab and the account, used by
// infra/credential-keys.ts and checked by test/infra/credential-key.test.ts with an IAM policy simulator.
//
// A KMS key policy is the only thing that can let anyone use a key. This one has no statement of the usual
// "Enable IAM User Permissions" kind (the account's root allowed kms:*), which would let any IAM policy of
// the account grant kms:Decrypt: the lab's runners' role decrypts, only through SSM and only the lab's own
// parameters; operators encrypt the lab's parameters through SSM; key administrators administer and never
// use the key. https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html
import type { LabConfig } from "../functions/core/config.ts";
import {
  type AccountContext,
  arns,
  credentialArns,
  PARAMETER_ENCRYPTION_CONTEXT,
  type PolicyStatement,
  runnerRoleArn,
  ssmViaService,
} from "./policy.ts";

export interface KeyPolicyStatement extends PolicyStatement {
  readonly Principal: { readonly AWS: string };
}

export interface KeyPolicyDocument {
  readonly Version: "2012-10-17";
  readonly Statement: readonly KeyPolicyStatement[];
}

/**
 * Managing the key without using it: whoever the account's IAM policies allow these (through the root
 * principal) may look at, tag, rotate, disable or schedule the deletion of the key. No Decrypt, Encrypt,
 * ReEncrypt, GenerateDataKey or CreateGrant: none of these gives the key's plaintext to anyone.
 * PutKeyPolicy stays here (KMS refuses a policy that locks everybody out of it, and a key must stay
 * repairable): whoever may call it can rewrite this policy, which CloudTrail records.
 */
export const KEY_ADMINISTRATION_ACTIONS = [
  "kms:DescribeKey",
  "kms:GetKeyPolicy",
  "kms:GetKeyRotationStatus",
  "kms:ListGrants",
  "kms:ListKeyPolicies",
  "kms:ListKeyRotations",
  "kms:ListResourceTags",
  "kms:PutKeyPolicy",
  "kms:CreateAlias",
  "kms:UpdateAlias",
  "kms:DeleteAlias",
  "kms:UpdateKeyDescription",
  "kms:TagResource",
  "kms:UntagResource",
  "kms:EnableKey",
  "kms:DisableKey",
  "kms:EnableKeyRotation",
  "kms:DisableKeyRotation",
  "kms:RotateKeyOnDemand",
  "kms:RevokeGrant",
  "kms:ScheduleKeyDeletion",
  "kms:CancelKeyDeletion",
] as const;

export const credentialKeyPolicy = (lab: LabConfig, ctx: AccountContext): KeyPolicyDocument => {
  const { root } = arns(ctx);
  const role = runnerRoleArn(lab, ctx);
  const parameters = credentialArns(lab, ctx);
  const throughSsm = {
    "kms:ViaService": ssmViaService(ctx.region),
    "kms:CallerAccount": ctx.account,
    [PARAMETER_ENCRYPTION_CONTEXT]: parameters,
  };
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "AdministerWithoutUsing",
        Effect: "Allow",
        Principal: { AWS: root },
        Action: [...KEY_ADMINISTRATION_ACTIONS],
        Resource: ["*"],
      },
      {
        // The root principal with a condition on aws:PrincipalArn rather than the role as principal: KMS would
        // otherwise refuse the policy while the role does not exist yet, and would silently keep a recreated
        // role out (a principal is stored as the role's unique id). The role's own policy must allow it too.
        Sid: "RunnersDecryptLabCredentialsThroughSsm",
        Effect: "Allow",
        Principal: { AWS: root },
        Action: ["kms:Decrypt"],
        Resource: ["*"],
        Condition: { ArnEquals: { "aws:PrincipalArn": role }, StringEquals: throughSsm },
      },
      {
        // put-parameter --type SecureString --key-id <this key>: Encrypt for standard parameters,
        // GenerateDataKey for advanced ones, whoever the account's IAM policies let put these parameters.
        Sid: "OperatorsEncryptLabCredentialsThroughSsm",
        Effect: "Allow",
        Principal: { AWS: root },
        Action: ["kms:Encrypt", "kms:GenerateDataKey"],
        Resource: ["*"],
        Condition: { StringEquals: throughSsm },
      },
      {
        // Explicit, so that no grant or later statement can widen who decrypts.
        Sid: "NobodyElseDecrypts",
        Effect: "Deny",
        Principal: { AWS: "*" },
        Action: ["kms:Decrypt"],
        Resource: ["*"],
        Condition: { ArnNotEquals: { "aws:PrincipalArn": role } },
      },
      {
        Sid: "NoDecryptOutsideSsm",
        Effect: "Deny",
        Principal: { AWS: "*" },
        Action: ["kms:Decrypt"],
        Resource: ["*"],
        Condition: { StringNotEquals: { "kms:ViaService": ssmViaService(ctx.region) } },
      },
      {
        // A grant could hand Decrypt around the policy; re-encryption would move a value to a key someone
        // else can decrypt.
        Sid: "NoGrantsNorReEncryption",
        Effect: "Deny",
        Principal: { AWS: "*" },
        Action: ["kms:CreateGrant", "kms:ReEncryptFrom", "kms:ReEncryptTo"],
        Resource: ["*"],
      },
    ],
  };
};
