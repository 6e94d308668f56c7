// systemd-resolved drop-ins (resolved.conf(5)): the runner answers its workers' DNS on its private address and
// on the lab's DNS service address, and a worker sends the lab's domains to the service address (or, for a lab
// without one, to its own runner).
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
 * On a worker: the lab's domains (routing-only, "~") go to the lab's DNS service address, which the worker
 * subnet routes to the runner that carries its traffic now; a lab without one sends them to the worker's own
 * runner. Not both: systemd-resolved resends a query only after 5 s (its fixed DNS_TIMEOUT_USEC), and on
 * that timeout moves to the next server for good, so a second server that died with the first (the worker's
 * own runner, when it carried the route) would add 5 s more to every failover (README "Workers' DNS").
 */
export const renderWorkerResolvedDropIn = (labConfig: LabConfig, runnerIp: string): string => {
  const lab = validLab(labConfig);
  const runner = requireIpv4("runner private address", runnerIp);
  const service = lab.dnsServiceAddress;
  return [
    service === undefined
      ? `# labgate: lab ${lab.name}'s intranet names are resolved by this worker's runner.`
      : `# labgate: lab ${lab.name}'s intranet names are resolved through its DNS service address (by the runner that carries this subnet).`,
    "[Resolve]",
    `DNS=${service ?? runner}`,
    `Domains=${lab.intranetDomains.map((d) => `~${d}`).join(" ")}`,
    "",
  ].join("\n");
};

/** NetworkManager hands each connection's DNS to systemd-resolved per link (the same for every lab). */
export const NETWORK_MANAGER_DNS_CONF =
  "# labgate: per-link DNS through systemd-resolved.\n[main]\ndns=systemd-resolved\n";
