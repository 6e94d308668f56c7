// The arguments of `npm run lab`, checked before anything else happens: a typo is a usage error whether or
// not a lab is up, and says so before the lab is looked at. `up` may name the kind of credential the lab hands
// its runners.
import { AZS } from "../local/lab/topology.ts";
import { CREDENTIAL_KINDS, type CredentialKind } from "../render/keyfile.ts";

export const LAB_USAGE = `usage: npm run lab -- [up [--credential-kind static-key|tls] | status | replace <runner> | kill <runner> | cut-tunnel <runner> | rotate <runner> | down]
  <runner> is a runner's name from the status table (a1, b2...), its instance id (i-...), or carrier-a,
  carrier-b: the runner that carries that AZ's worker subnet route now
  --credential-kind (or LABGATE_LAB_CREDENTIAL_KIND): what the lab's credential parameters hold (default static-key)`;

export type LabCommand =
  | { readonly command: "up"; readonly credentialKind: CredentialKind }
  | { readonly command: "status" | "down" | "help" }
  | { readonly command: "replace" | "kill" | "cut-tunnel" | "rotate"; readonly runner: string };

export class LabUsageError extends Error {
  override name = "LabUsageError";
}

const WITHOUT_RUNNER = ["status", "down", "help"] as const;
const WITH_RUNNER = ["replace", "kill", "cut-tunnel", "rotate"] as const;
const letters = AZS.map((az) => az.slice(-1));

/** Why `name` cannot name a runner of the lab in a box, or undefined when it can. */
export const runnerNameProblem = (name: string): string | undefined => {
  const az = /^(?:carrier-([a-z])|([a-z])[1-9][0-9]*)$/.exec(name);
  if (az) {
    const letter = az[1] ?? az[2] ?? "";
    return letters.includes(letter)
      ? undefined
      : `the lab has no AZ ${letter} (its AZs: ${letters.join(", ")}), so no runner ${name}`;
  }
  if (/^i-[0-9a-f]{8,17}$/.test(name)) return undefined;
  return `${name} is not a runner: use a name such as a1, an instance id, or carrier-a`;
};

/** The credential kind option, taken out of the arguments; the environment's applies when it is not given. */
const credentialKindOf = (argv: readonly string[]): { kind: string | undefined; words: string[] } => {
  const words: string[] = [];
  let kind: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] ?? "";
    if (word === "--credential-kind") {
      kind = argv[++i];
      if (kind === undefined) throw new LabUsageError(`--credential-kind needs a kind\n${LAB_USAGE}`);
    } else if (word.startsWith("--credential-kind=")) {
      kind = word.slice("--credential-kind=".length);
    } else {
      words.push(word);
    }
  }
  return { kind, words };
};

export const parseLabArgs = (argv: readonly string[], env: NodeJS.ProcessEnv = {}): LabCommand => {
  const { kind, words } = credentialKindOf(argv);
  const [first = "up", ...rest] = words;
  const command = first === "--help" || first === "-h" ? "help" : first;
  const extra = (args: readonly string[]) => {
    if (args.length > 0) throw new LabUsageError(`${command} takes no ${args.join(" ")}\n${LAB_USAGE}`);
  };
  if (kind !== undefined && command !== "up") {
    throw new LabUsageError(
      `--credential-kind applies to up only (the lab keeps the kind it was brought up with)`,
    );
  }
  if (command === "up") {
    extra(rest);
    const credentialKind = kind ?? env.LABGATE_LAB_CREDENTIAL_KIND ?? "static-key";
    if (!(CREDENTIAL_KINDS as readonly string[]).includes(credentialKind)) {
      throw new LabUsageError(
        `unknown credential kind ${credentialKind}: ${CREDENTIAL_KINDS.join(" or ")}\n${LAB_USAGE}`,
      );
    }
    return { command, credentialKind: credentialKind as CredentialKind };
  }
  if ((WITHOUT_RUNNER as readonly string[]).includes(command)) {
    extra(rest);
    return { command: command as (typeof WITHOUT_RUNNER)[number] };
  }
  if ((WITH_RUNNER as readonly string[]).includes(command)) {
    const [runner, ...more] = rest;
    if (runner === undefined) throw new LabUsageError(`${command} needs a runner\n${LAB_USAGE}`);
    const problem = runnerNameProblem(runner);
    if (problem) throw new LabUsageError(`${problem}\n${LAB_USAGE}`);
    extra(more);
    return { command: command as (typeof WITH_RUNNER)[number], runner };
  }
  throw new LabUsageError(`unknown command ${command}\n${LAB_USAGE}`);
};
