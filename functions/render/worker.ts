// The worker user script: docker-machine passes it to EC2 as user data (amazonec2-userdata), so it runs once
// at a worker's first boot and makes the worker resolve the lab's names through the lab's DNS service address
// (routed to whichever runner carries the worker subnet now), or through its own runner for a lab without one.
import type { LabConfig } from "../core/config.ts";
import { workerResolvedDropIn } from "../core/names.ts";
import { renderWorkerResolvedDropIn } from "./resolved.ts";
import { heredoc, shQuote, validLab } from "./shell.ts";

export const renderWorkerScript = (labConfig: LabConfig, runnerIp: string): string => {
  const lab = validLab(labConfig);
  const dropIn = workerResolvedDropIn(lab.name);
  return `#!/bin/bash
# labgate worker user data for lab ${lab.name}: resolve ${lab.intranetDomains.join(", ")} through ${lab.dnsServiceAddress === undefined ? "the runner" : "the lab's DNS service address"}.
set -euo pipefail
readonly DROP_IN=${shQuote(dropIn)}
install -d -m 0755 "$(dirname "$DROP_IN")"
${heredoc('cat >"$DROP_IN"', renderWorkerResolvedDropIn(lab, runnerIp))}
chmod 0644 "$DROP_IN"
systemctl restart systemd-resolved
echo "labgate: $DROP_IN written, systemd-resolved restarted"
`;
};
