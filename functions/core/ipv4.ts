// IPv4 addresses and CIDR blocks as numbers: enough arithmetic to validate a lab's configuration
// (overlaps, containment) without a dependency.

const OCTET = "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
const ADDRESS = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

export const isIpv4 = (text: string): boolean => ADDRESS.test(text);

export const ipv4ToNumber = (text: string): number =>
  text.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);

export interface Cidr {
  readonly base: number;
  readonly prefix: number;
}

/** Parses `a.b.c.d/n`; undefined when malformed or when host bits are set (10.0.0.1/8 is a typo, not a net). */
export const parseCidr = (text: string): Cidr | undefined => {
  const [address, prefixText, ...rest] = text.split("/");
  if (rest.length > 0 || address === undefined || prefixText === undefined) return undefined;
  if (!isIpv4(address) || !/^(3[0-2]|[12]?\d)$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  const base = ipv4ToNumber(address);
  const size = 2 ** (32 - prefix);
  return base % size === 0 ? { base, prefix } : undefined;
};

const end = (cidr: Cidr): number => cidr.base + 2 ** (32 - cidr.prefix) - 1;

export const overlaps = (a: Cidr, b: Cidr): boolean => a.base <= end(b) && b.base <= end(a);

export const contains = (cidr: Cidr, address: string): boolean => {
  const n = ipv4ToNumber(address);
  return n >= cidr.base && n <= end(cidr);
};

/** Docker's default bridge network: workers and runners run Docker, so an intranet CIDR must not shadow it. */
export const DOCKER_BRIDGE_CIDR = "172.17.0.0/16";
