// The observed world of one lab at one moment: everything the adapters read, and nothing else. The core
// decides from it alone, so a world is also the input of every test of the core.

export type InstanceState = "pending" | "running" | "stopping" | "stopped" | "shutting-down" | "terminated";

/** What labgate last asked a runner to do through SSM Run Command, as kept in its COMMAND_TAG. */
export interface CommandRecord {
  readonly kind: "setup" | "stop-vpn";
  /** Hash of the rendered script that was sent. */
  readonly hash: string;
  readonly commandId: string;
  /** As recorded in the tag; `pending` until labgate has seen the command finish. */
  readonly status: "pending" | "success" | "failed";
  /** When the command was sent, in milliseconds since the epoch. */
  readonly sentAt: number;
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
  /** The credential parameter this runner leases (CREDENTIAL_TAG). */
  readonly credential: string | undefined;
  /** Hash of the last setup that succeeded on this runner (SETUP_TAG). */
  readonly appliedSetup: string | undefined;
  readonly command: CommandRecord | undefined;
  /** The outcome SSM reports now for a command recorded as pending; undefined when not asked or still running. */
  readonly commandOutcome: "success" | "failed" | undefined;
  /** State of the runner's tunnel health alarm; undefined when the alarm does not exist. */
  readonly healthAlarm: "OK" | "ALARM" | "INSUFFICIENT_DATA" | undefined;
}

export interface Route {
  /** Where the route points now; a route to a gone instance is a blackhole. */
  readonly instanceId: string | undefined;
  readonly eniId: string | undefined;
  readonly blackhole: boolean;
}

export interface RouteTable {
  readonly routeTableId: string;
  /** The table's current route for each intranet CIDR of the lab; a missing CIDR has no route yet. */
  readonly routes: Readonly<Record<string, Route>>;
}

export interface WorkerSubnet {
  readonly subnetId: string;
  readonly az: string;
  readonly cidr: string;
  /** The explicitly associated route table; undefined when the subnet uses the VPC's main table. */
  readonly routeTableId: string | undefined;
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
  readonly healthAlarms: readonly { readonly name: string; readonly instanceId: string }[];
}
