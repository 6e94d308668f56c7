// One name for one thing: tag keys, hook names, metric names and paths shared by the core, the adapters,
// the rendered runner files and the infrastructure. Change a name here and everything follows.

/** Tag on a runner instance: the SSM parameter name of the VPN credential it leases. */
export const CREDENTIAL_TAG = "labgate:credential";
/** Tag on a runner instance: the hash of the last setup that succeeded on it. */
export const SETUP_TAG = "labgate:setup";
/** Tag on a runner instance: the last command labgate sent to it (see core/world.ts `CommandRecord`). */
export const COMMAND_TAG = "labgate:command";
/** Tag on worker subnets' route tables (and used in IAM conditions): the lab that may change them. */
export const LAB_TAG = "labgate:lab";
/** Tag that EC2 Auto Scaling puts on every instance it launches. */
export const ASG_TAG = "aws:autoscaling:groupName";

/** Lifecycle hooks created on the runners' group (infra) and completed by the reconciler. */
export const LAUNCH_HOOK = "labgate-launch";
export const TERMINATE_HOOK = "labgate-terminate";

/** CloudWatch namespace of everything labgate publishes, from the Lambda and from the runners. */
export const METRIC_NAMESPACE = "labgate";
/** Per-runner metric published by the runner-side health reporter: 1 when the tunnel is up and DNS answers. */
export const TUNNEL_HEALTH_METRIC = "TunnelHealthy";

/** Every CloudWatch alarm of a lab starts with this prefix (EventBridge rules and IAM match on it). */
export const alarmPrefix = (lab: string): string => `labgate-${lab}-`;
/** The per-runner tunnel health alarm that makes a runner ineligible while it is in ALARM. */
export const healthAlarmName = (lab: string, instanceId: string): string =>
  `${alarmPrefix(lab)}tunnel-${instanceId}`;

/** NetworkManager connection id, tun device and file names of a lab's VPN on a runner. */
export const vpnConnectionId = (lab: string): string => `labgate-${lab}`;
export const tunDevice = (lab: string): string => `tun-${lab}`.slice(0, 15);

/** Default path on the runner where the worker user script is written. */
export const DEFAULT_WORKER_SCRIPT_PATH = "/etc/gitlab-runner/worker-user-data.sh";

/**
 * First line of every SSM command labgate sends. EventBridge rules match its prefix on
 * `detail.parameters.commands` so that each lab's function hears only its own commands' status changes.
 */
export const commandMarkerPrefix = (lab: string): string => `# labgate lab=${lab} `;
export const commandMarker = (lab: string, kind: "setup" | "stop-vpn", hash: string): string =>
  `${commandMarkerPrefix(lab)}kind=${kind} hash=${hash}`;

/** Metrics the reconciler publishes (namespace METRIC_NAMESPACE, dimension Lab; EligibleRunners also AZ). */
export const METRICS = {
  routesChanged: "RoutesChanged",
  failovers: "Failovers",
  eligibleRunners: "EligibleRunners",
  labUnreachable: "LabUnreachable",
  credentialsFree: "CredentialsFree",
  reconcileDuration: "ReconcileDuration",
  rejectedEvents: "RejectedEvents",
  ignoredEvents: "IgnoredEvents",
  actionsFailed: "ActionsFailed",
  /** 1 when a reconcile could not read the lab (after the SDK's retries): it planned nothing. */
  observeFailed: "ObserveFailed",
} as const;

/** Dimensions of TUNNEL_HEALTH_METRIC as the runner publishes it (the per-runner alarm must use the same). */
export const HEALTH_DIMENSION_LAB = "Lab";
export const HEALTH_DIMENSION_INSTANCE = "InstanceId";

/** Comment on every iptables rule a lab's dispatcher adds: its vpn-down removes exactly the rules carrying it. */
export const iptablesComment = (lab: string): string => `labgate:${lab}`;

/** Files labgate puts on a runner (functions/render/README.md describes each one). */
export const runnerPaths = (lab: string) =>
  ({
    staticKey: `/etc/labgate/${lab}/static.key`,
    setupHash: `/var/lib/labgate/${lab}/setup.hash`,
    keyfile: `/etc/NetworkManager/system-connections/${vpnConnectionId(lab)}.nmconnection`,
    dispatcher: `/etc/NetworkManager/dispatcher.d/90-labgate-${lab}`,
    /** A link to the dispatcher: NetworkManager waits for pre-up.d scripts before it starts secondaries. */
    dispatcherPreUp: `/etc/NetworkManager/dispatcher.d/pre-up.d/90-labgate-${lab}`,
    /** Written by the dispatcher's guard when it held the VPN back from a connection's activation. */
    parked: `/var/lib/labgate/${lab}/parked`,
    healthScript: `/usr/local/sbin/labgate-health-${lab}`,
    healthService: `/etc/systemd/system/labgate-health-${lab}.service`,
    healthTimer: `/etc/systemd/system/labgate-health-${lab}.timer`,
    lock: `/run/lock/labgate-${lab}.lock`,
  }) as const;

/** Files shared by every lab on a runner: each lab writes the same content, so they never conflict. */
export const RUNNER_SHARED_PATHS = {
  sysctl: "/etc/sysctl.d/90-labgate-forward.conf",
  networkManagerDns: "/etc/NetworkManager/conf.d/90-labgate-dns.conf",
  resolvedListener: "/etc/systemd/resolved.conf.d/90-labgate-listener.conf",
} as const;

/** The systemd-resolved drop-in the worker user script writes on a worker. */
export const workerResolvedDropIn = (lab: string): string =>
  `/etc/systemd/resolved.conf.d/90-labgate-${lab}.conf`;

/** The service name on every log line and metric of the reconciler. */
export const SERVICE = "labgate";
/**
 * Dimensions of every metric the reconciler publishes (Powertools Metrics always adds `service`);
 * EligibleRunners adds AZ. CloudWatch alarms must name exactly these.
 */
export const metricDimensions = (lab: string): { readonly service: string; readonly Lab: string } => ({
  service: SERVICE,
  Lab: lab,
});

/**
 * How often a runner reports its tunnel's health (a high-resolution metric), and how many reports in a row
 * must say unhealthy before its alarm fires: a dead tunnel is acted on after about 30 s, while one late or
 * lost report (read as unhealthy) moves nothing.
 */
export const HEALTH_PERIOD_SECONDS = 10;
export const HEALTH_UNHEALTHY_REPORTS = 3;
