// The lab in a box, as data: which hosts, which addresses, which route tables. Pure, so that the addresses the
// local provider reads back from the kernel can be mapped to runners and subnets without guessing.
import { type LabConfig, LabConfigSchema } from "../../core/config.ts";
import { runnerId, subnetId, tableId } from "../sample-world.ts";

export const AZS = ["eu-local-1a", "eu-local-1b"] as const;
export const RUNNERS_PER_AZ = 2;
/** Credentials beyond one per runner: a planned replacement launches the new runner before the old goes. */
export const SPARE_CREDENTIALS = 1;

export const BEAKER_IP = "10.200.0.10";
export const INTRANET = "10.200.0.0/16";
export const DOMAIN = "foo.example";
/** The lab's DNS service address: outside the VPC and the intranet, routed like the intranet. */
export const DNS_SERVICE_IP = "100.64.53.1";
/** The lab's public side, where its OpenVPN servers listen; the VPC router's address on that link. */
export const LAB_PUBLIC_IP = "198.18.0.2";
export const VPC_PUBLIC_IP = "198.18.0.1";
export const CREDENTIAL_COUNT = AZS.length * RUNNERS_PER_AZ + SPARE_CREDENTIALS;

export const azIndex = (az: string): number => {
  const i = (AZS as readonly string[]).indexOf(az);
  if (i < 0) throw new Error(`unknown AZ ${az}`);
  return i + 1;
};
const azLetter = (az: string): string => az.slice(-1);

/** The lab's configuration: lab foo's intranet and domain, reached through the lab in a box. */
export const localLab = (): LabConfig =>
  LabConfigSchema.parse({
    name: "foo",
    vpcId: "vpc-0f0000000000f0001",
    vpcCidr: "10.0.0.0/16",
    intranetCidrs: [INTRANET],
    intranetDomains: [DOMAIN],
    dnsServers: [BEAKER_IP],
    runners: { autoScalingGroupName: "foo-runners", instanceRoleName: "foo-runner-role" },
    workerSubnets: { ids: AZS.map((az) => subnetId(az, 1)) },
    dnsServiceAddress: DNS_SERVICE_IP,
    // The one setting the lab shortens (AWS's default is 180 s): a subnet routed to another AZ comes home only
    // after the hold, which would add three minutes to a scenario that moves it (the bring-up routes each subnet
    // at home from the start: LocalLab.up). The hold itself is proven in the model
    // (test/core/change.simulation.test.ts).
    failbackHoldSeconds: 20,
    vpn: {
      remote: LAB_PUBLIC_IP,
      port: 1194,
      protocol: "udp",
      cipher: "AES-256-CBC",
      credentials: Array.from({ length: CREDENTIAL_COUNT }, (_, i) => credentialParameter(i + 1)),
    },
  });

/** The credential parameter of the lab's n-th client, and back. */
export const credentialParameter = (n: number): string => `/labgate/foo/vpn/client-${n}`;
export const credentialNumber = (parameter: string): number =>
  Number(/client-(\d+)$/.exec(parameter)?.[1] ?? 0);

/**
 * With TLS credentials, one server for every client, as a lab runs it: server mode on the lab's port
 * (vpn.port), the clients' tunnel addresses given from its network.
 */
export const TLS_SERVER = { tun: "tuntls", network: "172.31.0.0", port: 1194 } as const;

/** With static keys, one OpenVPN server per credential: its own port and point-to-point pair. */
export const credentialServer = (index: number) => ({
  port: 1200 + index,
  serverIp: `172.30.${index}.1`,
  clientIp: `172.30.${index}.2`,
  tun: `tunc${index}`,
});

/**
 * A worker of a subnet. The job worker is started again from its subnet's carrier for every scenario (a new CI
 * job, spawned by the runner that happens to carry the route: the worst case); the early worker is started
 * once, at bring-up, and lives through every scenario.
 */
export interface WorkerSpec {
  readonly host: string;
  readonly ip: string;
  readonly role: "job" | "early";
  /** Its veth's end on the VPC router, a port of the subnet's bridge. */
  readonly routerPort: string;
}

export interface WorkerSubnetSpec {
  readonly az: string;
  readonly subnetId: string;
  readonly routeTableId: string;
  readonly cidr: string;
  /** The VPC router's address in the subnet (the workers' gateway) and the bridge it sits on. */
  readonly gateway: string;
  readonly routerIf: string;
  /** The kernel routing table on the VPC router that plays the subnet's route table. */
  readonly table: number;
  readonly workers: readonly WorkerSpec[];
  /** The job worker's host and address (the one the scenarios measure). */
  readonly workerHost: string;
  readonly workerIp: string;
}

export const workerSubnets = (id: string): WorkerSubnetSpec[] =>
  AZS.map((az) => {
    const k = azIndex(az);
    const letter = azLetter(az);
    const job: WorkerSpec = {
      host: `lgw${letter}${id}`,
      ip: `10.0.${k}.10`,
      role: "job",
      routerPort: `w${letter}j`,
    };
    const early: WorkerSpec = {
      host: `lge${letter}${id}`,
      ip: `10.0.${k}.11`,
      role: "early",
      routerPort: `w${letter}e`,
    };
    return {
      az,
      subnetId: subnetId(az, 1),
      routeTableId: tableId(az, 1),
      cidr: `10.0.${k}.0/24`,
      gateway: `10.0.${k}.1`,
      routerIf: `w${letter}`,
      table: 100 + k,
      workers: [job, early],
      workerHost: job.host,
      workerIp: job.ip,
    };
  });

/** The runner subnet of an AZ: a bridge on the VPC router, whose MAC (the gateway's) never changes. */
export const runnerSubnet = (az: string) => {
  const k = azIndex(az);
  return {
    cidr: `10.0.${100 + k}.0/24`,
    gateway: `10.0.${100 + k}.1`,
    gatewayMac: `02:00:0a:00:${(100 + k).toString(16)}:01`,
    bridge: `br${azLetter(az)}`,
  };
};

/** The n-th runner ever launched in an AZ. */
export const runnerSpec = (id: string, az: string, n: number) => {
  const k = azIndex(az);
  const instanceId = runnerId(az, n);
  return {
    instanceId,
    az,
    host: `lgr${azLetter(az)}${n}${id}`,
    /** Its veth on the VPC router's bridge. */
    routerIf: `v${azLetter(az)}${n}${id}`,
    privateIp: `10.0.${100 + k}.${10 + n}`,
    eniId: `eni-${instanceId.slice(2)}`,
  };
};

export const hostNames = (id: string) => ({ router: `lgv${id}`, lab: `lgl${id}` });
