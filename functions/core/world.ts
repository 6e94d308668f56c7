// The observed world of one lab at one moment: everything the adapters read, and nothing else. The core
// decides from it alone, so a world is also the input of every test of the core.
//
// Two sources, with different trust: AWS's own view of the lab (instances, the group, subnets, route tables,
// alarms), and labgate's own state (leases, command records, applied setups, recorded health), which lives
// in the lab's store (strongly consistent, conditional writes, writable by labgate alone). labgate's tags on
// the instances are a mirror of the store for people and are never trusted back (see `Runner.mirror`).
// A third, least trusted: what a runner reports of itself (`Runner.tunnelReport`), which can only count against it.

import type { RequeueEpisode } from "./retry.ts";
import type { TunnelReport } from "./tunnel-report.ts";

export type InstanceState = "pending" | "running" | "stopping" | "stopped" | "shutting-down" | "terminated";

export type AlarmState = "OK" | "ALARM" | "INSUFFICIENT_DATA";

/** What labgate last asked a runner to do through SSM Run Command, as kept in the store. */
export interface CommandRecord {
  readonly kind: "setup" | "stop-vpn";
  /** Hash of the rendered script that was sent. */
  readonly hash: string;
  /** SSM's id of the command; undefined while labgate is sending it (the intent is recorded first). */
  readonly commandId: string | undefined;
  /** As recorded; `pending` until labgate has seen the command finish. */
  readonly status: "pending" | "success" | "failed";
  /** When the command was sent (or its sending began), in milliseconds since the epoch. */
  readonly sentAt: number;
}

/** labgate's tags on a runner, as DescribeInstances shows them: a mirror of the store, for people. */
export interface Mirror {
  readonly credential: string | undefined;
  readonly appliedSetup: string | undefined;
  /** The raw COMMAND_TAG value. */
  readonly command: string | undefined;
}

export interface Runner {
  readonly instanceId: string;
  readonly az: string;
  readonly state: InstanceState;
  /** The Auto Scaling lifecycle state (InService, Pending:Wait, Terminating:Wait...); undefined when not in the group. */
  readonly lifecycle: string | undefined;
  readonly privateIp: string | undefined;
  /** The primary network interface (device index 0): the target of worker subnets' routes. */
  readonly eniId: string | undefined;
  readonly sourceDestCheck: boolean;
  /** Whether the instance answers metadata only with IMDSv2 tokens and a hop limit of 1; undefined if unknown. */
  readonly imdsLocked?: boolean | undefined;

  // ---- labgate's own state, from the store ----
  /** Whether the store has any record of this runner (false: labgate never wrote one). */
  readonly recorded: boolean;
  /** The credential parameter this runner leases. */
  readonly credential: string | undefined;
  /** Hash of the last setup that succeeded on this runner (cleared once its VPN is stopped). */
  readonly appliedSetup: string | undefined;
  readonly command: CommandRecord | undefined;
  /** The tunnel health alarm's state as labgate last recorded it (the fallback when alarms cannot be read). */
  readonly recordedHealth: AlarmState | undefined;
  /** When labgate last recorded the runner's alarm entering ALARM; undefined if it never did. */
  readonly alarmedAt?: number | undefined;

  /** labgate's tags on the instance (never trusted, but read at the one-time adoption of an older deployment). */
  readonly mirror: Mirror;
  /** The outcome SSM reports now for a command recorded as pending; undefined when not asked or still running. */
  readonly commandOutcome: "success" | "failed" | undefined;
  /** State of the runner's tunnel health alarm; undefined when the alarm does not exist (or alarms were unreadable). */
  readonly healthAlarm: AlarmState | undefined;
  /**
   * What the runner's own tunnel watch last reported (its TUNNEL_TAG), undefined when it reported nothing.
   * Written by the runner: it may only ever make the runner ineligible (rules/runner.ts).
   */
  readonly tunnelReport?: TunnelReport | undefined;
  /** When the alarm entered that state (CloudWatch's StateUpdatedTimestamp); undefined when unknown. */
  readonly healthSince?: number | undefined;
}

export interface Route {
  /** Where the route points now; a route to a gone instance is a blackhole. */
  readonly instanceId: string | undefined;
  readonly eniId: string | undefined;
  readonly blackhole: boolean;
  /** What the route points at when it is not an instance or an interface (a NAT gateway, a transit gateway...). */
  readonly other?: string | undefined;
}

export interface RouteTable {
  readonly routeTableId: string;
  /** The table's current route for each intranet CIDR of the lab; a missing CIDR has no route yet. */
  readonly routes: Readonly<Record<string, Route>>;
  /**
   * Its other routes that point at an instance or a network interface, by destination: those to the lab's
   * runners are what labgate routed for CIDRs since removed from `intranetCidrs`.
   */
  readonly others?: Readonly<Record<string, Route>> | undefined;
}

export interface WorkerSubnet {
  readonly subnetId: string;
  readonly az: string;
  readonly cidr: string;
  /** The explicitly associated route table; undefined when the subnet uses the VPC's main table. */
  readonly routeTableId: string | undefined;
}

/** A lease in the store whose holder is not among the lab's observed instances. */
export interface OrphanLease {
  readonly credential: string;
  readonly holder: string;
  /** When it was leased, in milliseconds since the epoch. */
  readonly since: number;
}

/** The reads of one observe. When one fails, the world says so and the core decides around what it lacks. */
export const READS = ["instances", "group", "subnets", "route-tables", "alarms", "store", "vpc"] as const;
export type Read = (typeof READS)[number];

export interface UnknownRead {
  readonly read: Read;
  /** The error, for the finding and the log. */
  readonly error: string;
}

export interface World {
  /** The lab this world was observed for. */
  readonly lab: string;
  /** When it was observed, in milliseconds since the epoch (the core calls no clock). */
  readonly now: number;
  readonly runners: readonly Runner[];
  readonly subnets: readonly WorkerSubnet[];
  /** The lab's route tables (tagged LAB_TAG=lab), by id. */
  readonly routeTables: Readonly<Record<string, RouteTable>>;
  /** Per-runner health alarms that exist, by name, with the instance each watches. */
  readonly healthAlarms: readonly {
    readonly name: string;
    readonly instanceId: string;
    /** It watches another metric than the runners publish now (made by an older labgate): put again. */
    readonly outdated?: boolean;
  }[];
  /** Leases in the store held by instances that are not observed (gone for long, or never the lab's). */
  readonly orphanLeases: readonly OrphanLease[];
  /** The CIDR blocks of the lab's VPC (configuration `vpcId`), when they could be read. */
  readonly vpcCidrs?: readonly string[] | undefined;
  /** Reads that failed in this observe: what they would have told is unknown. */
  readonly unknown: readonly UnknownRead[];
  /** The lab's requeue episode in the store, if one runs (functions/core/retry.ts); the plan ignores it. */
  readonly requeue?: RequeueEpisode | undefined;
}
