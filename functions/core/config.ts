// The configuration of one lab (LABGATE_CONFIG), parsed and validated once at cold start. The same schema
// types the labs file that infra/ deploys, so a configuration that deploys is one the function accepts.
import { z } from "zod";
import {
  type Cidr,
  contains,
  DOCKER_BRIDGE_CIDR,
  ipv4ToNumber,
  isIpv4,
  overlaps,
  parseCidr,
} from "./ipv4.ts";
import { type AccountContext, DEFAULT_WORKER_SCRIPT_PATH, RUNNER_RESERVED_PATHS } from "./names.ts";
import { SPECIAL_PURPOSE_RANGES } from "./special-ranges.ts";

const cidr = z.string().refine((v) => parseCidr(v) !== undefined, {
  message: "must be an IPv4 CIDR block such as 10.200.0.0/16 (no host bits set)",
});
const ipv4 = z.string().refine(isIpv4, { message: "must be an IPv4 address such as 10.200.0.10" });
// RFC 1123 host names: letters, digits and hyphens in dot-separated labels. Nothing a shell would interpret.
const domain = z
  .string()
  .max(253)
  .regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i, {
    message: "must be a DNS name such as foo.example (letters, digits, hyphens and dots only)",
  });
const host = z.union([ipv4, domain]);
const parameterName = z.string().regex(/^\/[A-Za-z0-9_.\-/]{1,1000}$/, {
  message: "must be an SSM parameter name starting with / (letters, digits, _ . - / only)",
});
const absolutePath = z.string().regex(/^\/[A-Za-z0-9_.\-/]+$/, {
  message: "must be an absolute path of letters, digits, _ . - / only",
});

/** Why an intranet CIDR cannot be a lab's intranet: it is the default route, or overlaps a special range. */
const specialPurposeIssues = (text: string, net: Cidr): string[] => {
  if (net.prefix === 0) {
    return [
      `${text} is the default route: labgate routes a lab's intranet into its tunnel, never all traffic`,
    ];
  }
  return SPECIAL_PURPOSE_RANGES.flatMap((range) => {
    const special = parseCidr(range.cidr);
    return special && overlaps(net, special)
      ? [`${text} overlaps ${range.cidr}, ${range.what}: ${range.why}`]
      : [];
  });
};

/** Intranet CIDRs that overlap one of the named networks, by index. */
const overlapIssues = (
  intranetCidrs: readonly string[],
  networks: readonly (readonly [what: string, cidr: string])[],
): { index: number; message: string }[] =>
  intranetCidrs.flatMap((text, index) => {
    const net = parseCidr(text);
    return networks.flatMap(([what, other]) => {
      const o = parseCidr(other);
      if (!net || !o || !overlaps(net, o)) return [];
      return [
        { index, message: `${text} overlaps ${what} (${other}); workers could not tell the two apart` },
      ];
    });
  });

/**
 * The intranet CIDRs of a lab that overlap its VPC's real CIDR blocks (every association, not only the
 * configured vpcCidr), each as `intranetCidrs.<i>: <why>`: infra checks them at deploy time, the reconciler
 * may at run time.
 */
export const intranetVpcOverlaps = (
  lab: { readonly intranetCidrs: readonly string[] },
  vpcCidrBlocks: readonly string[],
): string[] =>
  overlapIssues(
    lab.intranetCidrs,
    vpcCidrBlocks.map((c) => ["the VPC", c] as const),
  ).map(({ index, message }) => `intranetCidrs.${index}: ${message}`);

/**
 * Why an address cannot be the lab's DNS service address: the worker subnets route it to a runner, which
 * answers it itself, so it must name nothing else the workers reach (the intranet, the VPC, Docker's bridge)
 * and be a unicast address a route table can send to one runner.
 */
const dnsServiceIssues = (
  address: string,
  intranetCidrs: readonly string[],
  known: readonly (readonly [what: string, cidr: string])[],
): string[] => {
  const host: Cidr = { base: ipv4ToNumber(address), prefix: 32 };
  const inIntranet = intranetCidrs.filter((c) => {
    const net = parseCidr(c);
    return net !== undefined && contains(net, address);
  });
  return [
    ...specialPurposeIssues(address, host),
    ...inIntranet.map(
      (c) => `${address} is inside the intranet CIDR ${c}: the runner would answer for a lab address`,
    ),
    ...known.flatMap(([what, cidr]) => {
      const net = parseCidr(cidr);
      return net && contains(net, address)
        ? [`${address} is inside ${what} (${cidr}); workers could not tell the two apart`]
        : [];
    }),
  ];
};

/** The lab's DNS service address, when inside one of its VPC's real CIDR blocks (infra checks at deploy time). */
export const dnsServiceVpcOverlaps = (
  lab: { readonly dnsServiceAddress?: string | undefined },
  vpcCidrBlocks: readonly string[],
): string[] => {
  const address = lab.dnsServiceAddress;
  if (address === undefined || !isIpv4(address)) return [];
  return vpcCidrBlocks.flatMap((c) => {
    const net = parseCidr(c);
    return net && contains(net, address)
      ? [`dnsServiceAddress: ${address} is inside the VPC (${c}); workers could not tell the two apart`]
      : [];
  });
};

/**
 * The worker user script is written as root on the runner: its path must name one file plainly, outside
 * what labgate (or NetworkManager, which runs or loads every file of its folders) owns there.
 */
const scriptPathIssues = (path: string, ctx: z.RefinementCtx): void => {
  const issue = (message: string) => ctx.addIssue({ code: "custom", message });
  if (
    path
      .split("/")
      .slice(1)
      .some((s) => s === "" || s === "." || s === "..")
  ) {
    issue(`${path} must name a file plainly: no "." or ".." segment, no "//", no trailing "/"`);
  }
  for (const folder of RUNNER_RESERVED_PATHS.folders) {
    if (path === folder || path.startsWith(`${folder}/`)) {
      issue(`${path} is inside ${folder}, which belongs to labgate's setup of the runner`);
    }
  }
  for (const prefix of RUNNER_RESERVED_PATHS.prefixes) {
    if (path.startsWith(prefix)) issue(`${path} starts with ${prefix}, the name of labgate's own files`);
  }
};

export const LabConfigSchema = z
  .object({
    /** The lab's short name: it ends up in device names (tun-<name>, 15 characters at most) and alarm names. */
    name: z.string().regex(/^[a-z][a-z0-9]{0,10}$/, {
      message: "must be 1-11 lowercase letters or digits, starting with a letter",
    }),
    /** The runners' and worker subnets' VPC: worker subnets are looked up in it only (infra, observe). */
    vpcId: z.string().regex(/^vpc-[0-9a-f]{8,17}$/, { message: "must be a VPC id (vpc-...)" }),
    /** The VPC's CIDR, when known: intranet CIDRs must not overlap it. */
    vpcCidr: cidr.optional(),
    intranetCidrs: z.array(cidr).min(1, { message: "must list at least one CIDR" }),
    intranetDomains: z.array(domain).min(1, { message: "must list at least one domain" }),
    dnsServers: z.array(ipv4).min(1, { message: "must list at least one DNS server" }),
    runners: z.strictObject({
      autoScalingGroupName: z.string().regex(/^[A-Za-z0-9_.\-/]{1,255}$/, {
        message: "must be an Auto Scaling group name",
      }),
      /**
       * The runners' IAM role (its name, without a path): the lab's credential key lets only this role decrypt
       * (infra/credential-key.ts). Each lab's runners need a role of their own.
       */
      instanceRoleName: z.string().regex(/^[A-Za-z0-9+=,.@_-]{1,64}$/, {
        message: "must be an IAM role name (1-64 letters, digits and + = , . @ _ -, no path)",
      }),
      /** The runners' security group: when set, infra lets the worker subnets reach the runners on any port. */
      securityGroupId: z
        .string()
        .regex(/^sg-[0-9a-f]{8,17}$/, { message: "must be a security group id (sg-...)" })
        .optional(),
    }),
    workerSubnets: z.union([
      z.strictObject({
        ids: z
          .array(z.string().regex(/^subnet-[0-9a-f]{8,17}$/, { message: "must be a subnet id (subnet-...)" }))
          .min(1, { message: "must list at least one subnet id" }),
      }),
      z.strictObject({ tag: z.strictObject({ key: z.string().min(1), value: z.string().min(1) }) }),
    ]),
    vpn: z.strictObject({
      remote: host,
      port: z.number().int().min(1).max(65535).default(1194),
      protocol: z.enum(["udp", "tcp"]).default("udp"),
      /** Static-key mode supports CBC ciphers only. */
      cipher: z.enum(["AES-256-CBC", "AES-192-CBC", "AES-128-CBC"]).default("AES-256-CBC"),
      /** One SecureString parameter per static-key client; see README "Credential parameters". */
      credentials: z
        .array(parameterName)
        .min(1, { message: "must list at least one credential parameter" })
        .refine((names) => new Set(names).size === names.length, {
          message: "must not list a parameter twice",
        }),
    }),
    workerUserScriptPath: absolutePath.superRefine(scriptPathIssues).default(DEFAULT_WORKER_SCRIPT_PATH),
    crossAzFallback: z.boolean().default(true),
    /**
     * The lab's DNS service address for workers: outside the VPC, routed from every worker subnet to the runner
     * that carries the intranet, and answered by every runner of the lab (README "Workers' DNS").
     */
    dnsServiceAddress: ipv4.optional(),
    /**
     * How long a runner's tunnel must have been healthy before routes fail back to it across AZs (README
     * "Hysteresis"): a flapping tunnel moves a subnet at most once per this time.
     */
    failbackHoldSeconds: z.number().int().min(0).max(3600).default(180),
    /** E-mail addresses subscribed to the lab's alarm topic (infra). */
    alarmEmails: z.array(z.email()).default([]),
  })
  .strict()
  .superRefine((lab, ctx) => {
    const issue = (path: (string | number)[], message: string) =>
      ctx.addIssue({ code: "custom", path, message });
    const nets = lab.intranetCidrs.map((text) => parseCidr(text));
    nets.forEach((net, i) => {
      const text = lab.intranetCidrs[i] ?? "";
      if (net) for (const message of specialPurposeIssues(text, net)) issue(["intranetCidrs", i], message);
    });
    const known: [string, string][] = [["Docker's default bridge", DOCKER_BRIDGE_CIDR]];
    if (lab.vpcCidr) known.push(["the VPC", lab.vpcCidr]);
    for (const { index, message } of overlapIssues(lab.intranetCidrs, known)) {
      issue(["intranetCidrs", index], message);
    }
    // The lab's DNS is reached through the tunnel, and only the intranet CIDRs are routed into it.
    const intranet = nets.filter((n): n is Cidr => n !== undefined);
    if (lab.dnsServiceAddress !== undefined && isIpv4(lab.dnsServiceAddress)) {
      for (const message of dnsServiceIssues(lab.dnsServiceAddress, lab.intranetCidrs, known))
        issue(["dnsServiceAddress"], message);
    }
    lab.dnsServers.forEach((server, i) => {
      if (isIpv4(server) && intranet.length === nets.length && !intranet.some((n) => contains(n, server))) {
        issue(
          ["dnsServers", i],
          `${server} is not inside the intranet CIDRs (${lab.intranetCidrs.join(", ")}): the lab's DNS is reached through the tunnel, which carries only those`,
        );
      }
    });
  });

export type LabConfig = z.output<typeof LabConfigSchema>;
export type LabConfigInput = z.input<typeof LabConfigSchema>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Parses a JSON value of the environment against a schema; the error names every bad field and why. */
const parseJsonSetting = <T>(schema: z.ZodType<T>, text: string | undefined, source: string): Readonly<T> => {
  if (text === undefined || text.trim() === "") throw new ConfigError(`${source} is not set`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError(`${source} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new ConfigError(`${source} is invalid:\n${lines.join("\n")}`);
  }
  return Object.freeze(result.data);
};

/** Parses a lab's configuration; the error names every bad field and why. */
export const parseLabConfig = (text: string | undefined, source = "LABGATE_CONFIG"): LabConfig =>
  parseJsonSetting(LabConfigSchema, text, source);

const AccountContextSchema = z.strictObject({
  partition: z.string().regex(/^aws(-[a-z]+)*$/, { message: "must be an AWS partition (aws, aws-cn, ...)" }),
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-[0-9]+$/, { message: "must be an AWS region" }),
  account: z.string().regex(/^[0-9]{12}$/, { message: "must be a 12-digit account id" }),
});

/** The deployment's account (LABGATE_AWS_ACCOUNT, set by infra), parsed once at cold start. */
export const parseAccountContext = (
  text: string | undefined,
  source = "LABGATE_AWS_ACCOUNT",
): AccountContext => parseJsonSetting(AccountContextSchema, text, source);
