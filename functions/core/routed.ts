// The destinations a lab routes from its worker subnets through a runner: its intranet, and its DNS service
// address. Every worker route table points all of them at the same runner (core/rules/routes.ts), and
// observe reads exactly these routes (aws/observe.ts).
import type { LabConfig } from "./config.ts";

/** The DNS service address as the route tables' destination: one host. */
export const dnsServiceCidr = (address: string): string => `${address}/32`;

/** The intranet CIDRs in configuration order, then the DNS service address when the lab has one. */
export const routedCidrs = (lab: Pick<LabConfig, "intranetCidrs" | "dnsServiceAddress">): string[] => [
  ...lab.intranetCidrs,
  ...(lab.dnsServiceAddress === undefined ? [] : [dnsServiceCidr(lab.dnsServiceAddress)]),
];
