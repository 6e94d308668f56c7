// One customer managed KMS key per lab, for its credential parameters (SecureString): only the lab's runners'
// role decrypts with it, through SSM, the lab's own parameters (infra/key-policy.ts). Operators encrypt the
// parameters with it by its alias (infra/README.md, "Credential parameters").
import type { LabConfig } from "../functions/core/config.ts";
import { accountContext, componentName } from "./account.ts";
import { credentialKeyPolicy } from "./key-policy.ts";
import { labs } from "./labs.ts";
import { credentialKeyAlias } from "./naming.ts";

const createCredentialKey = (lab: LabConfig) => {
  const key = new aws.kms.Key(componentName(lab.name, "CredentialKey"), {
    description: `labgate ${lab.name}: the lab's VPN credentials; only its runners' role decrypts, through SSM`,
    enableKeyRotation: true,
    // The longest wait KMS allows: a key deleted by mistake makes every credential of the lab unreadable.
    deletionWindowInDays: 30,
    policy: accountContext.apply((ctx) => JSON.stringify(credentialKeyPolicy(lab, ctx))),
  });
  const alias = new aws.kms.Alias(componentName(lab.name, "CredentialKeyAlias"), {
    name: credentialKeyAlias($app.stage, lab.name),
    targetKeyId: key.keyId,
  });
  return { key, alias };
};

export const credentialKeys = Object.fromEntries(labs.map((lab) => [lab.name, createCredentialKey(lab)]));
