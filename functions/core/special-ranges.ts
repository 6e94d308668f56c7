// IPv4 special-purpose ranges that cannot be a lab's intranet, from the IANA IPv4 Special-Purpose Address
// Registry (RFC 6890 and its updates, https://www.iana.org/assignments/iana-ipv4-special-registry/). An
// intranet CIDR is routed from the worker subnets to a runner and into the lab's tunnel: a range that is not
// a unicast network somebody can own, or that the VPC itself needs, is refused (config.ts).
//
// Allowed on purpose, although special-purpose too: the private networks of RFC 1918 (10/8, 172.16/12,
// 192.168/16: the usual intranet), the shared address space 100.64.0.0/10 (RFC 6598) and the benchmarking
// network 198.18.0.0/15 (RFC 2544), which are forwardable and used as private networks in practice. Overlaps
// with the VPC and with Docker's bridge are checked separately (config.ts).

export interface SpecialRange {
  readonly cidr: string;
  /** What the range is, with its RFC. */
  readonly what: string;
  /** Why it cannot be routed to a lab. */
  readonly why: string;
}

export const SPECIAL_PURPOSE_RANGES: readonly SpecialRange[] = [
  {
    cidr: "0.0.0.0/8",
    what: '"this network" (RFC 791)',
    why: "a source address only, never a destination",
  },
  {
    cidr: "127.0.0.0/8",
    what: "loopback (RFC 1122)",
    why: "it never leaves a host",
  },
  {
    cidr: "169.254.0.0/16",
    what: "link-local (RFC 3927)",
    why: "in AWS it holds the instance metadata service (169.254.169.254) and the VPC's DNS resolver (169.254.169.253), which the workers would lose to the tunnel",
  },
  {
    cidr: "192.0.0.0/24",
    what: "IETF protocol assignments (RFC 6890)",
    why: "addresses of protocols (DS-Lite, NAT64 discovery, PCP), not a network",
  },
  {
    cidr: "192.0.2.0/24",
    what: "documentation TEST-NET-1 (RFC 5737)",
    why: "reserved for examples, never used on a network",
  },
  {
    cidr: "198.51.100.0/24",
    what: "documentation TEST-NET-2 (RFC 5737)",
    why: "reserved for examples, never used on a network",
  },
  {
    cidr: "203.0.113.0/24",
    what: "documentation TEST-NET-3 (RFC 5737)",
    why: "reserved for examples, never used on a network",
  },
  {
    cidr: "192.31.196.0/24",
    what: "AS112-v4 (RFC 7535)",
    why: "a global anycast service, not a network a lab owns",
  },
  {
    cidr: "192.52.193.0/24",
    what: "AMT (RFC 7450)",
    why: "a global anycast service, not a network a lab owns",
  },
  {
    cidr: "192.88.99.0/24",
    what: "deprecated 6to4 relay anycast (RFC 7526)",
    why: "a global anycast service, not a network a lab owns",
  },
  {
    cidr: "192.175.48.0/24",
    what: "AS112 direct delegation (RFC 7534)",
    why: "a global anycast service, not a network a lab owns",
  },
  {
    cidr: "224.0.0.0/4",
    what: "multicast (RFC 5771)",
    why: "not unicast: a route table cannot send it to one runner",
  },
  {
    cidr: "240.0.0.0/4",
    what: "reserved, with the limited broadcast 255.255.255.255 (RFC 1112, RFC 919)",
    why: "not routable",
  },
];
