// Rendered runner files: pure functions from typed inputs to the exact text that lands on a runner.
// PLACEHOLDER: the real setup (OpenVPN in NetworkManager, dispatcher, resolved, worker script) is the
// runner-side issue's work; this minimal script only keeps the shapes the core depends on.
import { createHash } from "node:crypto";
import type { LabConfig } from "../core/config.ts";

export interface RunnerSetupInput {
  readonly lab: LabConfig;
  readonly instanceId: string;
  readonly privateIp: string;
  readonly credentialParameter: string;
  /** CIDRs of all the lab's worker subnets (any of them may be routed through this runner). */
  readonly workerCidrs: readonly string[];
}

export interface Rendered {
  readonly script: string;
  /** Short content hash of the script: it tells the core whether what is on a runner is current. */
  readonly hash: string;
}

export const contentHash = (text: string): string => createHash("sha256").update(text).digest("hex").slice(0, 16);

const rendered = (script: string): Rendered => ({ script, hash: contentHash(script) });

export const renderRunnerSetup = (input: RunnerSetupInput): Rendered =>
  rendered(
    [
      "#!/bin/bash",
      "# labgate placeholder runner setup",
      "set -euo pipefail",
      `echo ${JSON.stringify(`labgate ${input.lab.name}: placeholder setup for ${input.instanceId}`)}`,
      `# inputs: ${JSON.stringify({ ...input, lab: input.lab })}`,
      "",
    ].join("\n"),
  );

export const renderStopVpn = (lab: LabConfig): Rendered =>
  rendered(["#!/bin/bash", "# labgate placeholder stop-vpn", "set -euo pipefail", `echo stop ${lab.name}`, ""].join("\n"));
