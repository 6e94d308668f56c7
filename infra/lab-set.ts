// Validates the labs file as a whole: each lab with the function's own schema (so a configuration that
// deploys is one the function accepts at cold start), and the labs together, so they cannot interfere.
import { type LabConfig, type LabConfigInput, LabConfigSchema } from "../functions/core/config.ts";

export class LabsFileError extends Error {
  override name = "LabsFileError";
}

const duplicates = (values: readonly string[]): string[] =>
  [...new Set(values.filter((v, i) => values.indexOf(v) !== i))].sort();

export const parseLabs = (inputs: readonly LabConfigInput[]): readonly LabConfig[] => {
  if (inputs.length === 0) throw new LabsFileError("the labs file lists no lab");
  const problems: string[] = [];
  const labs = inputs.flatMap((input, i) => {
    const result = LabConfigSchema.safeParse(input);
    if (result.success) return [Object.freeze(result.data)];
    const name = typeof input.name === "string" ? input.name : `#${i}`;
    for (const issue of result.error.issues) {
      problems.push(`lab ${name}: ${issue.path.join(".") || "(root)"}: ${issue.message}`);
    }
    return [];
  });
  const shared = (what: string, values: string[]) => {
    for (const v of duplicates(values)) problems.push(`${what} ${v} belongs to more than one lab`);
  };
  shared(
    "lab name",
    labs.map((l) => l.name),
  );
  // Two labs on one group would complete each other's lifecycle actions and route to each other's runners.
  shared(
    "Auto Scaling group",
    labs.map((l) => l.runners.autoScalingGroupName),
  );
  // The runners' role is a lab's identity in IAM: its key lets that role decrypt, its policy denies every other
  // lab's credentials. Two labs on one role would either read each other's keys or deny themselves their own.
  shared(
    "runners' instance role",
    labs.map((l) => l.runners.instanceRoleName),
  );
  // A static key serves one client at a time: two labs leasing it would break each other's tunnels.
  shared(
    "credential parameter",
    labs.flatMap((l) => l.vpn.credentials),
  );
  // A lab's runners answer its workers on its DNS service address and take it away when the lab leaves: two labs
  // on one address would take each other's workers' DNS with them.
  shared(
    "DNS service address",
    labs.flatMap((l) => (l.dnsServiceAddress === undefined ? [] : [l.dnsServiceAddress])),
  );
  if (problems.length > 0) throw new LabsFileError(`the labs file is invalid:\n  ${problems.join("\n  ")}`);
  return Object.freeze(labs);
};
