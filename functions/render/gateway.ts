// The lab's own iptables chains on a runner, as iptables-restore input: the runner is a closed gateway whatever
// FORWARD's policy is (Docker sets DROP only when it turns forwarding on itself). "closed" holds from boot and
// while the lab's VPN is down; "open", while it is up, adds the workers' way into the tunnel and its replies.
// Rules are written as `iptables -S` prints them, so what is on a runner can be compared with this text.
import type { LabConfig } from "../core/config.ts";
import { iptablesChains, tunDevice } from "../core/names.ts";
import { dnsServiceCidr } from "../core/routed.ts";
import { requireCidr, requireIpv4, validLab } from "./shell.ts";

export interface GatewayInput {
  /** CIDRs of all the lab's worker subnets (any of them may be routed through this runner). */
  readonly workerCidrs: readonly string[];
  /** The runner's private address, where its DNS stub answers the workers. */
  readonly privateIp: string;
}

export type GatewayState = "open" | "closed";

/** Link-local: the instance metadata service, the VPC's DNS and time servers. Never reached through a runner. */
const LINK_LOCAL = "169.254.0.0/16";

/** The rules of each of the lab's chains, in order, without the `-A <chain>` prefix. */
export const gatewayRules = (labConfig: LabConfig, gateway: GatewayInput, state: GatewayState) => {
  const lab = validLab(labConfig);
  // No worker subnet yet (a tag selector that selects none): the tunnel stays closed to everyone.
  for (const [i, cidr] of gateway.workerCidrs.entries()) requireCidr(`workerCidrs[${i}]`, cidr);
  const ip = requireIpv4("privateIp", gateway.privateIp);
  const tun = tunDevice(lab.name);
  const workers = gateway.workerCidrs;
  const open = state === "open";
  const established = "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT";
  // The lab's DNS service address, on the runner itself while the lab is here: answered like the private one.
  const service = lab.dnsServiceAddress === undefined ? [] : [dnsServiceCidr(lab.dnsServiceAddress)];
  const dns = (w: string, address: string) => [
    `-s ${w} -d ${address} -p udp -m udp --dport 53 -j ACCEPT`,
    `-s ${w} -d ${address} -p tcp -m tcp --dport 53 -j ACCEPT`,
  ];
  return {
    forward: [
      ...workers.map((w) => `-s ${w} -d ${LINK_LOCAL} -j DROP`),
      // A query to the service address is never forwarded (out to the VPC), even before the address is here.
      ...workers.flatMap((w) => service.map((s) => `-s ${w} -d ${s} -j DROP`)),
      // The lab's side may answer the workers, never open anything towards them.
      ...(open ? workers.map((w) => `-d ${w} -i ${tun} ${established}`) : []),
      `-i ${tun} -j DROP`,
      ...(open ? workers.map((w) => `-s ${w} -o ${tun} -j ACCEPT`) : []),
      `-o ${tun} -j DROP`,
    ],
    input: [
      // The runner talking to itself (its own address may lie in a worker subnet).
      "-i lo -j RETURN",
      `-i ${tun} ${established}`,
      `-i ${tun} -j DROP`,
      ...workers.flatMap((w) => [
        // Replies to what the runner opened (docker-machine drives its workers), its DNS stub, ICMP.
        `-s ${w} ${established}`,
        ...dns(w, `${ip}/32`),
        ...service.flatMap((s) => dns(w, s)),
        `-s ${w} -p icmp -j ACCEPT`,
        // Refused rather than dropped: a CI job learns at once that the runner is no service of its.
        `-s ${w} -j REJECT --reject-with icmp-port-unreachable`,
      ]),
    ],
    // The lab sees the runner's tunnel address and needs no route back to the workers.
    nat: open ? workers.map((w) => `-s ${w} -o ${tun} -j MASQUERADE`) : [],
    // The tunnel's MTU is below the VPC's (9001).
    mss: [`-o ${tun} -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu`],
  };
};

/** The iptables-restore input (for `--noflush`: each chain declared is emptied and refilled at once). */
export const renderGatewayRules = (
  labConfig: LabConfig,
  gateway: GatewayInput,
  state: GatewayState,
): string => {
  const rules = gatewayRules(labConfig, gateway, state);
  const chains = iptablesChains(labConfig.name);
  const table = (name: string, parts: readonly (readonly [string, readonly string[]])[]) => [
    `*${name}`,
    ...parts.map(([chain]) => `:${chain} - [0:0]`),
    ...parts.flatMap(([chain, lines]) => lines.map((l) => `-A ${chain} ${l}`)),
    "COMMIT",
  ];
  return [
    `# labgate lab ${labConfig.name}: the gateway ${state}`,
    ...table("filter", [
      [chains.forward, rules.forward],
      [chains.input, rules.input],
    ]),
    ...table("nat", [[chains.nat, rules.nat]]),
    ...table("mangle", [[chains.mss, rules.mss]]),
    "",
  ].join("\n");
};
