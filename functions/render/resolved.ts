// systemd-resolved drop-ins (resolved.conf(5)): the runner answers its workers' DNS on its private address and
// on the lab's DNS service address, and a worker sends the lab's domains to the service address, then to its runner.
import type { LabConfig } from "../core/config.ts";
import { requireIpv4, validLab } from "./shell.ts";

/**
 * On the runner: an extra stub listener on the private address, for the workers. The same content for every
 * lab on the runner (one shared file). The lab's own DNS servers and ~domains reach resolved from
 * NetworkManager, per tunnel link, so two labs' names never mix.
 */
export const renderRunnerResolvedDropIn = (privateIp: string): string =>
  `# labgate: answer the workers' DNS queries on the runner's private address.\n[Resolve]\nDNSStubListenerExtra=${requireIpv4("privateIp", privateIp)}\n`;

/**
 * On the runner: a stub listener on the lab's DNS service address too (put on the runner's loopback by the
 * setup and the dispatcher), for workers whose own runner is gone. One file per lab: each lab has its own.
 */
export const renderServiceResolvedDropIn = (labConfig: LabConfig): string | undefined => {
  const lab = validLab(labConfig);
  if (lab.dnsServiceAddress === undefined) return undefined;
  return `# labgate: answer lab ${lab.name}'s workers on its DNS service address, whichever runner spawned them.\n[Resolve]\nDNSStubListenerExtra=${requireIpv4("dnsServiceAddress", lab.dnsServiceAddress)}\n`;
};

/**
 * On a worker: the lab's domains (routing-only, "~") go to the lab's DNS service address first, which the
 * worker subnet routes to the runner carrying its traffic now, then to the runner that spawned it.
 */
export const renderWorkerResolvedDropIn = (labConfig: LabConfig, runnerIp: string): string => {
  const lab = validLab(labConfig);
  const servers = [
    ...(lab.dnsServiceAddress === undefined ? [] : [lab.dnsServiceAddress]),
    requireIpv4("runner private address", runnerIp),
  ];
  return [
    lab.dnsServiceAddress === undefined
      ? `# labgate: lab ${lab.name}'s intranet names are resolved by this worker's runner.`
      : `# labgate: lab ${lab.name}'s intranet names are resolved through its DNS service address, then this worker's runner.`,
    "[Resolve]",
    `DNS=${servers.join(" ")}`,
    `Domains=${lab.intranetDomains.map((d) => `~${d}`).join(" ")}`,
    "",
  ].join("\n");
};

/** NetworkManager hands each connection's DNS to systemd-resolved per link (the same for every lab). */
export const NETWORK_MANAGER_DNS_CONF =
  "# labgate: per-link DNS through systemd-resolved.\n[main]\ndns=systemd-resolved\n";
