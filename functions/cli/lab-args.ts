// The command line of `npm run lab`: a command, maybe a runner, and for `up` the kind of credential the lab
// hands its runners.
import { LabError } from "../local/lab/lab.ts";
import { CREDENTIAL_KINDS, type CredentialKind } from "../render/keyfile.ts";

export const USAGE = `usage: npm run lab -- [up [--credential-kind static-key|tls] | status | replace <runner> | kill <runner> | cut-tunnel <runner> | down]
  <runner> is a name from the status table (a1, b2...) or an instance id
  --credential-kind (or LABGATE_LAB_CREDENTIAL_KIND): what the lab's credential parameters hold (default static-key)`;

export interface LabArgs {
  readonly command: string;
  readonly target: string | undefined;
  readonly credentialKind: CredentialKind;
}

/** The command line of `npm run lab`; the environment's kind applies when the option is not given. */
export const parseLabArgs = (argv: readonly string[], env: NodeJS.ProcessEnv = {}): LabArgs => {
  const words: string[] = [];
  let kind: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] ?? "";
    if (word === "--credential-kind") {
      kind = argv[++i];
      if (kind === undefined) throw new LabError(`--credential-kind needs a kind\n${USAGE}`);
    } else if (word.startsWith("--credential-kind=")) {
      kind = word.slice("--credential-kind=".length);
    } else {
      words.push(word);
    }
  }
  const credentialKind = kind ?? env.LABGATE_LAB_CREDENTIAL_KIND ?? "static-key";
  if (!(CREDENTIAL_KINDS as readonly string[]).includes(credentialKind)) {
    throw new LabError(
      `unknown credential kind ${credentialKind}: ${CREDENTIAL_KINDS.join(" or ")}\n${USAGE}`,
    );
  }
  const [command = "up", target] = words;
  if (kind !== undefined && command !== "up") {
    throw new LabError(
      `--credential-kind applies to up only (the lab keeps the kind it was brought up with)`,
    );
  }
  return { command, target, credentialKind: credentialKind as CredentialKind };
};
