// One name for one thing: tag keys, hook names, metric names and paths shared by the core, the adapters,
// the rendered runner files and the infrastructure. Change a name here and everything follows.

/** Tag on a runner instance: the SSM parameter name of the VPN credential it leases. */
export const CREDENTIAL_TAG = "labgate:credential";
/** Tag on a runner instance: the hash of the last setup that succeeded on it. */
export const SETUP_TAG = "labgate:setup";
/** Tag on a runner instance: the last command labgate sent to it (see core/world.ts `CommandRecord`). */
export const COMMAND_TAG = "labgate:command";
/**
 * Tag on a runner instance, written by the runner itself (its tunnel watch, functions/render/health.ts): what
 * its own probes say of its tunnel, `up <time>` or `down <time>` (core/tunnel-report.ts). IAM lets a runner
 * write it on its own instance only (infra/runner-policy.ts); a report can only make a runner ineligible.
 */
export const TUNNEL_TAG = "labgate:tunnel";
/** Tag on worker subnets' route tables (and used in IAM conditions): the lab that may change them. */
export const LAB_TAG = "labgate:lab";
/** Tag that EC2 Auto Scaling puts on every instance it launches. */
export const ASG_TAG = "aws:autoscaling:groupName";
/**
 * Tag on a credential parameter: the ARN of the runner instance that holds its lease. The runners' policy
 * (infra/policy.ts) lets a runner read its lab's credential only while this tag names it, compared with
 * `${ec2:SourceInstanceARN}`; so it holds the instance's ARN (see `instanceArn`), never its id.
 */
export const HOLDER_TAG = "labgate:holder";

/** The partition, region and account of a deployment: what an ARN needs besides the resource. */
export interface AccountContext {
  readonly partition: string;
  readonly region: string;
  readonly account: string;
}
/** An EC2 instance's ARN, as IAM gives it in `ec2:SourceInstanceARN` (the value of HOLDER_TAG). */
export const instanceArn = ({ partition, region, account }: AccountContext, instanceId: string): string =>
  `arn:${partition}:ec2:${region}:${account}:instance/${instanceId}`;

/** Lifecycle hooks created on the runners' group (infra) and completed by the reconciler. */
export const LAUNCH_HOOK = "labgate-launch";
export const TERMINATE_HOOK = "labgate-terminate";

/** CloudWatch namespace of the reconciler's metrics (LabUnreachable, Failovers, ...). Runners may not publish here. */
export const METRIC_NAMESPACE = "labgate";
/**
 * CloudWatch namespace of a lab's runner health (TUNNEL_HEALTH_METRIC), one per lab: IAM confines each lab's
 * runners to theirs (`cloudwatch:namespace`), so a runner of one lab cannot forge another lab's health.
 */
export const runnerHealthNamespace = (lab: string): string => `${METRIC_NAMESPACE}/${lab}`;
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
  /** 1 while a setup rollout is halted by a failed setup (core/rules/rollout.ts). */
  rolloutHalted: "RolloutHalted",
} as const;

/** Dimensions of TUNNEL_HEALTH_METRIC as the runner publishes it (the per-runner alarm must use the same). */
export const HEALTH_DIMENSION_LAB = "Lab";
export const HEALTH_DIMENSION_INSTANCE = "InstanceId";

/** Comment on every rule a lab's dispatcher adds to a chain it does not own (the jumps to the lab's chains). */
export const iptablesComment = (lab: string): string => `labgate:${lab}`;

/**
 * The lab's own iptables chains on a runner, each jumped from the built-in chain named in its comment (at most
 * 23 characters: iptables allows 28). functions/render/README.md says what each one holds.
 */
export const iptablesChains = (lab: string) =>
  ({
    /** filter, from FORWARD: what may cross the runner between the workers, the tunnel and the rest. */
    forward: `labgate-${lab}-fwd`,
    /** filter, from INPUT: what the workers and the tunnel may open on the runner itself. */
    input: `labgate-${lab}-in`,
    /** nat, from POSTROUTING: the workers' traffic masqueraded into the tunnel. */
    nat: `labgate-${lab}-nat`,
    /** mangle, from FORWARD: the MSS clamp of connections into the tunnel. */
    mss: `labgate-${lab}-mss`,
  }) as const;

/** Files labgate puts on a runner (functions/render/README.md describes each one). */
export const runnerPaths = (lab: string) =>
  ({
    /**
     * The leased credential's secret, 0600: the static key, or a TLS credential's client private key (the
     * dispatcher's guard checks it is readable, and stop-vpn deletes it, whatever the kind).
     */
    staticKey: `/etc/labgate/${lab}/static.key`,
    /** A TLS credential's public parts: the lab server's self-signed certificate (the pin), the client's. */
    tlsCa: `/etc/labgate/${lab}/server.crt`,
    tlsCert: `/etc/labgate/${lab}/client.crt`,
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
    /** The tunnel watch: probes the tunnel every second and reports its verdict (TUNNEL_TAG). */
    watchScript: `/usr/local/sbin/labgate-watch-${lab}`,
    watchService: `/etc/systemd/system/labgate-watch-${lab}.service`,
    /** systemd-resolved's listener on the lab's DNS service address (configuration dnsServiceAddress). */
    serviceListener: `/etc/systemd/resolved.conf.d/90-labgate-${lab}-service.conf`,
    /** Serialises the dispatcher's calls; its folder (/run/labgate, 0700) is root's alone. */
    lock: `/run/labgate/${lab}.lock`,
    /** Held by the setup and stop-vpn scripts for their whole run: one labgate command of a lab at a time. */
    commandLock: `/run/labgate/${lab}.command.lock`,
  }) as const;

/**
 * What belongs to labgate on a runner (and NetworkManager's folder, which runs or loads every file in it):
 * no configured path (the worker user script's) may point there. Folders own everything below them;
 * prefixes are the file names labgate uses in folders it shares with the system.
 */
export const RUNNER_RESERVED_PATHS = {
  folders: ["/etc/labgate", "/var/lib/labgate", "/run/labgate", "/etc/NetworkManager"],
  prefixes: [
    "/usr/local/sbin/labgate-",
    "/etc/systemd/system/labgate-",
    "/etc/sysctl.d/90-labgate-",
    "/etc/systemd/resolved.conf.d/90-labgate-",
    "/run/lock/labgate-",
  ],
} as const;

/** Files shared by every lab on a runner: each lab writes the same content, so they never conflict. */
export const RUNNER_SHARED_PATHS = {
  /** Written by earlier versions (forwarding at every boot, before any filter): the setup removes it. */
  legacySysctl: "/etc/sysctl.d/90-labgate-forward.conf",
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

/**
 * The tunnel watch on each runner (functions/render/health.ts): a probe every PERIOD seconds (the lab's DNS
 * through the tunnel, each DNS server given PROBE_TIMEOUT seconds); DOWN_AFTER failed probes in a row make it
 * report down, UP_AFTER good ones in a row up. One or two lost replies report nothing; a dead tunnel is
 * reported within PERIOD + DOWN_AFTER * PROBE_TIMEOUT seconds (README "Tunnel death, from probe to route").
 */
export const TUNNEL_WATCH = {
  periodSeconds: 1,
  probeTimeoutSeconds: 1,
  downAfter: 3,
  upAfter: 5,
} as const;
