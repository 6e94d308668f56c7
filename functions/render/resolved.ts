// systemd-resolved drop-ins (resolved.conf(5)): the runner answers its workers' DNS on its private address,
// and a worker sends the lab's domains to its runner.
import type { LabConfig } from "../core/config.ts";
import { requireIpv4, validLab } from "./shell.ts";

/**
 * On the runner: an extra stub listener on the private address, for the workers. The same content for every
 * lab on the runner (one shared file). The lab's own DNS servers and ~domains reach resolved from
 * NetworkManager, per tunnel link, so two labs' names never mix.
 */
export const renderRunnerResolvedDropIn = (privateIp: string): string =>
  `# labgate: answer the workers' DNS queries on the runner's private address.\n[Resolve]\nDNSStubListenerExtra=${requireIpv4("privateIp", privateIp)}\n`;

/** On a worker: the lab's domains (routing-only, "~") go to its runner. */
export const renderWorkerResolvedDropIn = (labConfig: LabConfig, runnerIp: string): string => {
  const lab = validLab(labConfig);
  return [
    `# labgate: lab ${lab.name}'s intranet names are resolved by this worker's runner.`,
    "[Resolve]",
    `DNS=${requireIpv4("runner private address", runnerIp)}`,
    `Domains=${lab.intranetDomains.map((d) => `~${d}`).join(" ")}`,
    "",
  ].join("\n");
};

/** NetworkManager hands each connection's DNS to systemd-resolved per link (the same for every lab). */
export const NETWORK_MANAGER_DNS_CONF =
  "# labgate: per-link DNS through systemd-resolved.\n[main]\ndns=systemd-resolved\n";
