// The lab in a box: a VPC router whose per-subnet kernel routing tables play the worker subnets' route
// tables, runners on the real NetworkManager/OpenVPN/iptables/systemd-resolved, workers with their own
// resolver, and the external lab (one static-key OpenVPN server per credential, or one TLS server for all,
// DNS, a web server standing in for Beaker). It implements the same LabProvider port as the AWS adapters:
// the unchanged core plans, this applies: routes with `ip route replace`, the rendered setup run in place of
// SSM Run Command, the worker script run in place of user data, labgate's state in the same store port as
// DynamoDB (in memory, saved with the lab). Lifecycle hooks, state changes and alarms are produced here.
import { randomUUID } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import type { Action } from "../../core/actions.ts";
import type { LabConfig } from "../../core/config.ts";
import {
  COMMAND_TAG,
  CREDENTIAL_TAG,
  commandMarker,
  runnerPaths,
  SETUP_TAG,
  TUNNEL_TAG,
  tunDevice,
} from "../../core/names.ts";
import { routedCidrs } from "../../core/routed.ts";
import { parseTunnelReport, type TunnelState } from "../../core/tunnel-report.ts";
import type { InstanceState, Route, World } from "../../core/world.ts";
import { applyStateAction, isStateAction } from "../../reconcile/labgate-state.ts";
import type { ApplyOutcome, LabProvider } from "../../reconcile/ports.ts";
import type { Observability, Report } from "../../reconcile/reconcile.ts";
import { reconcile } from "../../reconcile/reconcile.ts";
import { requeueAfter } from "../../reconcile/requeue.ts";
import { type ObservedRunner, withStoredState } from "../../reconcile/store.ts";
import type { CredentialKind } from "../../render/keyfile.ts";
import {
  credentialFile,
  hostEnv,
  makeCertificate,
  makeCredential,
  makeTlsCredential,
  onRunner,
  prepareRunner,
  runCommandScript,
  type SeamPaths,
  startBus,
  startIntranet,
  startResolved,
  startStaticKeyServer,
  startTlsServer,
  tagFile,
  writeShims,
} from "../hosts.ts";
import { MemoryStore, type MemoryStoreSnapshot } from "../memory-store.ts";
import { type NetnsRecord, NetnsWorld, run } from "../netns.ts";
import { addRunnerSubnet, addWorkerSubnet, attachRunner, attachWorker } from "./router.ts";
import {
  AZS,
  BEAKER_IP,
  CREDENTIAL_COUNT,
  credentialNumber,
  credentialParameter,
  credentialServer,
  DOMAIN,
  hostNames,
  INTRANET,
  LAB_PUBLIC_IP,
  localLab,
  RUNNERS_PER_AZ,
  runnerSpec,
  runnerSubnet,
  TLS_SERVER,
  VPC_PUBLIC_IP,
  type WorkerSpec,
  workerSubnets,
} from "./topology.ts";

/** A runner of the lab as the local "cloud" knows it (EC2 state, group lifecycle, tags, alarm). */
interface LocalRunner {
  readonly instanceId: string;
  readonly az: string;
  readonly n: number;
  state: InstanceState;
  lifecycle: string | undefined;
  sourceDestCheck: boolean;
  /** labgate's tags on the instance (the store's mirror). */
  tags: Record<string, string>;
  alarm: "OK" | "ALARM" | "INSUFFICIENT_DATA" | undefined;
  /** When the alarm entered its state (CloudWatch's StateUpdatedTimestamp). */
  alarmSince?: number | undefined;
}

/** A process, told apart from a later one that reuses its pid by its start time (/proc/<pid>/stat). */
interface ProcessRef {
  readonly pid: number;
  readonly startTime: string;
}

interface LabState {
  readonly version: 3;
  /**
   * bringing-up: written before anything is made, kept up to date with everything made (and left so by a
   * bring-up killed outright); failed: the bring-up failed, its processes are stopped and its logs kept; up.
   */
  phase: "bringing-up" | "failed" | "up";
  /** The process bringing the lab up. */
  readonly owner: ProcessRef | undefined;
  readonly netns: NetnsRecord;
  /** This bring-up's own folder (in the lab's folder, beside the state file): down deletes it. */
  readonly dir: string;
  readonly runners: LocalRunner[];
  /** The last runner number used per AZ (new runners count on). */
  readonly launched: Record<string, number>;
  /** The runner whose worker script configured each worker, by worker host (its second DNS server). */
  readonly workerOwners: Record<string, string>;
  /** labgate's store of the lab (leases, command records): the same port as DynamoDB in AWS. */
  readonly store: MemoryStoreSnapshot;
  /** What the credential parameters hold (absent in the state of a lab brought up before TLS: static keys). */
  readonly credentialKind?: CredentialKind;
  /** The credential pool (vpn.credentials), once a rotation changed it; absent: the local lab's. */
  credentials?: string[];
  /** Settings a deployment changed (`deploy`); absent: the local lab's. */
  settings?: LabSettings;
}

/** The settings of the local lab a deployment may change in the lab in a box (they change every keyfile). */
export type LabSettings = Partial<Pick<LabConfig, "intranetDomains" | "dnsServers">>;

export interface LabOptions {
  /** Static keys (the default) or TLS client certificates (README "Credential parameters"). */
  readonly credentialKind?: CredentialKind;
  /** Reports the bring-up's steps as they happen. */
  readonly onStep?: StepListener;
  /** Aborted (Ctrl-C): the bring-up stops and removes what it made. */
  readonly signal?: AbortSignal;
}

export interface Event {
  readonly trigger: string;
  /** When it was produced (ms since the epoch): the moment it reaches labgate. */
  readonly at: number;
}

/** One thing that happened to the lab: a route change, a command, a hook, a host booting or going away. */
export interface TimelineEntry {
  readonly at: number;
  readonly kind:
    | "route"
    | "command-sent"
    | "command-done"
    | "hook"
    | "host-up"
    | "host-down"
    | "fault"
    | "report"
    | "state";
  readonly text: string;
  readonly az?: string;
  readonly runner?: string;
  /** For a route change: the runner the route pointed at before, if any. */
  readonly from?: string;
}

export class LabError extends Error {
  override name = "LabError";
}

/** What a runner's health reporter said: its tunnel (up, down) and the lab's DNS through it (answers, silent). */
export interface HealthVerdict {
  readonly healthy: boolean;
  readonly tunnel: string | undefined;
  readonly dns: string | undefined;
}

/** What `up` reports as it goes, as it happens. */
export type StepListener = (step: string) => void;

const STATE_FILE = "state.json";
/** How long `status` lets a worker's name lookup or page fetch take: a dead runner must not stall it. */
const STATUS_PROBE_TIMEOUT_MS = 3_000;

/** A runner's short name: its AZ's letter and its launch number in the AZ (a1, b3...). */
const shortName = (r: { readonly az: string; readonly n: number }): string => `${r.az.slice(-1)}${r.n}`;

const startTimeOf = (pid: number): string | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
};

const thisProcess = (): ProcessRef | undefined => {
  const startTime = startTimeOf(process.pid);
  return startTime === undefined ? undefined : { pid: process.pid, startTime };
};

const isRunning = (p: ProcessRef | undefined): p is ProcessRef =>
  p !== undefined && p.pid !== process.pid && startTimeOf(p.pid) === p.startTime;

const readState = (base: string): LabState | undefined => {
  const file = join(base, STATE_FILE);
  if (!existsSync(file)) return undefined;
  const state = JSON.parse(readFileSync(file, "utf8")) as LabState;
  if (state.version !== 3)
    throw new LabError(
      `${file} was written by another version of the lab; delete it and its namespaces by hand`,
    );
  return state;
};

/** Kinds in order of first appearance, with how many of each: "lease-credential x4, push-setup x4". */
const tally = (kinds: readonly unknown[]): string => {
  const counts = new Map<string, number>();
  for (const kind of kinds) counts.set(String(kind), (counts.get(String(kind)) ?? 0) + 1);
  return [...counts].map(([kind, n]) => (n > 1 ? `${kind} x${n}` : kind)).join(", ");
};

/** Keeps a command's output beside the runner's files; a lab taken down meanwhile has nowhere to keep it. */
const keepOutput = (file: string, text: string): void => {
  try {
    writeFileSync(file, text);
  } catch {
    // The runner's folder is gone with the lab.
  }
};

/**
 * Waits for every promise, then fails with the first failure: unlike Promise.all, nothing of the work is
 * still running when the caller cleans up after it.
 */
const settleAll = async <T>(promises: readonly Promise<T>[]): Promise<T[]> => {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
};

/** Why a lab that is not (or not yet) up is in the way, and what to do about it. */
const inTheWay = (state: LabState, file: string): string => {
  if (state.phase === "up") return `a lab is already up (${file}); run \`npm run lab -- down\` first`;
  if (state.phase === "bringing-up" && isRunning(state.owner))
    return `a lab is being brought up by process ${state.owner.pid}; interrupt it (Ctrl-C: it removes what it made) or wait for it`;
  const what = state.phase === "failed" ? "failed" : "was interrupted";
  return `the last bring-up ${what} and left ${state.netns.namespaces.length} namespace(s) and its files (${file}); run \`npm run lab -- down\` to remove them`;
};

export class LocalLab implements LabProvider {
  /** The lab's configuration: the local lab's, with the credential pool as rotations left it. */
  get lab(): LabConfig {
    const base = { ...localLab(), ...this.state.settings };
    return { ...base, vpn: { ...base.vpn, credentials: this.state.credentials ?? base.vpn.credentials } };
  }
  private readonly events: Event[] = [];
  /** Outcomes of commands that finished (SSM's view), by command id. */
  private readonly outcomes = new Map<string, "success" | "failed">();
  private readonly inflight = new Set<Promise<void>>();
  /** The commands running on runners now (also in `inflight`). */
  private readonly running = new Set<Promise<void>>();
  /** What happened to the lab in this process, in order: the evidence a scenario's measurements are read against. */
  readonly timeline: TimelineEntry[] = [];
  /** Every reconcile this process ran, with the event that caused it. */
  readonly history: { readonly event: Event; readonly report: Report; readonly doneAt: number }[] = [];

  private readonly store: MemoryStore;
  /** Reports steps as they happen (the CLI prints them); quiet unless set. */
  onStep: StepListener = () => undefined;
  /** Set once down() ran: nothing is saved any more. */
  private gone = false;
  /** The last tunnel report event of each runner, heard by this process. */
  private readonly reports = new Map<string, Event>();
  /** What each runner's health reporter said when reportAllHealth last ran (shown by status). */
  private health: ReadonlyMap<string, HealthVerdict> = new Map();

  private constructor(
    /** The lab's folder: its state file, and this bring-up's own folder (`dir`). */
    private readonly base: string,
    private readonly state: LabState,
    private readonly world: NetnsWorld,
    private readonly observability: Observability,
  ) {
    this.store = MemoryStore.restore(state.store);
    world.onChange = () => this.save();
  }

  /** The credential labgate's store says a runner holds. */
  private credentialOf(instanceId: string): string | undefined {
    return this.store.credentialOf(this.lab.name, instanceId);
  }

  get id(): string {
    return this.world.id;
  }
  get dir(): string {
    return this.state.dir;
  }
  private get seams(): SeamPaths {
    return {
      shims: join(this.dir, "shims"),
      credentials: join(this.dir, "credentials"),
      awsLog: join(this.dir, "aws.log"),
      tags: join(this.dir, "tags"),
    };
  }

  // ---- bringing it up and down -------------------------------------------------------------------------

  /**
   * Builds the network, the external lab and the runners, then lets labgate set everything up. The state
   * file is written before anything is made and follows every namespace and process made, so that `down`
   * removes whatever an interrupted bring-up left. An abort of `signal` (Ctrl-C) stops the bring-up and
   * removes everything it made; another failure stops its processes and keeps its logs for `down`.
   */
  static async up(base: string, observability: Observability, options: LabOptions = {}): Promise<LocalLab> {
    const existing = readState(base);
    if (existing) throw new LabError(inTheWay(existing, join(base, STATE_FILE)));
    const world = new NetnsWorld();
    const dir = join(base, world.id);
    mkdirSync(dir, { recursive: true });
    const lab = new LocalLab(
      base,
      {
        version: 3,
        phase: "bringing-up",
        owner: thisProcess(),
        netns: world.record(),
        dir,
        runners: [],
        launched: {},
        workerOwners: {},
        store: new MemoryStore().snapshot(),
        credentialKind: options.credentialKind ?? "static-key",
      },
      world,
      observability,
    );
    if (options.onStep) lab.onStep = options.onStep;
    lab.save();
    const interrupt = () => world.interrupt();
    options.signal?.addEventListener("abort", interrupt, { once: true });
    if (options.signal?.aborted) interrupt();
    try {
      lab.onStep(
        `bringing lab ${lab.lab.name} up in ${dir}: ${AZS.length} AZs, ${RUNNERS_PER_AZ} runners each, a worker per AZ, ${CREDENTIAL_COUNT} credentials`,
      );
      writeShims(lab.seams);
      await lab.buildNetwork();
      lab.onStep(`network: the VPC router, a runner subnet and a worker subnet per AZ (${AZS.join(", ")})`);
      await lab.buildExternalLab();
      lab.onStep(
        `the lab's side: ${CREDENTIAL_COUNT} static-key OpenVPN servers, its DNS and Beaker (${BEAKER_IP})`,
      );
      // The group launches its runners; labgate leases, sets up and routes them through the lifecycle hooks.
      await settleAll(AZS.flatMap((az) => Array.from({ length: RUNNERS_PER_AZ }, () => lab.launch(az))));
      // Their setups end at different times; labgate hears of them together, so that every runner goes into
      // service in the same reconcile and each worker subnet is routed in its own AZ from the start. Heard one
      // by one, the first runner set up would take every subnet, and the failback hold (failbackHoldSeconds,
      // 180 s) would keep the other AZ's subnet away from home for that long.
      await lab.settle(180_000, { commandsTogether: true });
      await lab.buildWorkers();
      // Runners report their tunnel's health every 10 s in AWS: once here, so that their alarms leave
      // INSUFFICIENT_DATA as they would.
      await lab.reportAllHealth();
      await lab.settle();
      lab.state.phase = "up";
      lab.save();
      return lab;
    } catch (error) {
      if (world.interrupted) {
        await lab.down();
        throw new LabError("interrupted: the bring-up stopped and removed everything it made", {
          cause: error,
        });
      }
      await lab.stop();
      lab.state.phase = "failed";
      lab.save();
      throw error;
    } finally {
      options.signal?.removeEventListener("abort", interrupt);
    }
  }

  /** Why a lab cannot be brought up in `base` now (a lab is there), or undefined when it can. */
  static obstacle(base: string): string | undefined {
    const state = readState(base);
    return state && inTheWay(state, join(base, STATE_FILE));
  }

  /** Whether `base` holds a lab, up or not: something for `down` to take down. */
  static exists(base: string): boolean {
    return readState(base) !== undefined;
  }

  /** The lab that is up in `base`. */
  static load(base: string, observability: Observability): LocalLab {
    const file = join(base, STATE_FILE);
    const state = readState(base);
    if (!state) throw new LabError(`no lab is up (no ${file}); start one with \`npm run lab\``);
    if (state.phase !== "up") throw new LabError(inTheWay(state, file));
    return new LocalLab(base, state, NetnsWorld.restore(state.netns), observability);
  }

  /**
   * Takes down whatever lab `base` holds: up, failed, or left by an interrupted bring-up. Returns false when
   * there was none (taking a lab down twice is not an error).
   */
  static async down(base: string, observability: Observability): Promise<boolean> {
    const state = readState(base);
    if (!state) return false;
    if (state.phase === "bringing-up" && isRunning(state.owner))
      throw new LabError(inTheWay(state, join(base, STATE_FILE)));
    await new LocalLab(base, state, NetnsWorld.restore(state.netns), observability).down();
    return true;
  }

  save(): void {
    if (this.gone) return;
    const state: LabState = { ...this.state, netns: this.world.record(), store: this.store.snapshot() };
    // Written whole, then renamed: an interruption never leaves half a state file.
    const file = join(this.base, STATE_FILE);
    writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
    renameSync(`${file}.tmp`, file);
  }

  /** Stops everything the lab started, by pid, and deletes its namespaces, its files and its state. */
  async down(): Promise<void> {
    await this.stop();
    this.gone = true;
    rmSync(this.dir, { recursive: true, force: true });
    rmSync(join(this.base, STATE_FILE), { force: true });
    try {
      rmdirSync(this.base);
    } catch {
      // Not empty (someone else's files) or already gone: leave it.
    }
  }

  /** Stops every process of the lab and deletes its namespaces; its files stay. */
  private async stop(): Promise<void> {
    await this.world.stopAll();
    // The commands in flight were killed with their namespaces: their ends are only waited for.
    await Promise.allSettled([...this.inflight]);
  }

  private async buildNetwork(): Promise<void> {
    const { router: routerName, lab: labName } = hostNames(this.id);
    const router = await this.world.addHost(routerName);
    const labHost = await this.world.addHost(labName);
    await router.exec([
      "sysctl",
      "-qw",
      "net.ipv4.ip_forward=1",
      "net.ipv4.conf.all.rp_filter=0",
      "net.ipv4.conf.default.rp_filter=0",
    ]);
    // The VPC's way out, where the lab's public address is (the internet, for the runners' VPN).
    await this.world.link(router, "vl", `${VPC_PUBLIC_IP}/24`, labHost, "lv", `${LAB_PUBLIC_IP}/24`);
    // The lab knows the runners' subnets (as the internet knows their public addresses), not the workers'.
    await labHost.exec(["ip", "route", "add", "10.0.100.0/22", "via", VPC_PUBLIC_IP]);
    for (const az of AZS) await addRunnerSubnet(router, az);
    for (const s of workerSubnets(this.id)) {
      await addWorkerSubnet(router, s);
      for (const w of s.workers) {
        const worker = await this.world.addHost(w.host);
        await attachWorker(this.world, router, worker, s, w);
        await worker.exec(["ip", "route", "add", "default", "via", s.gateway]);
      }
      // The subnet's route table: traffic from the subnet is looked up in its own table first.
      await router.exec([
        "ip",
        "rule",
        "add",
        "from",
        s.cidr,
        "lookup",
        String(s.table),
        "priority",
        String(s.table),
      ]);
    }
  }

  private async buildExternalLab(): Promise<void> {
    const labHost = this.world.host(hostNames(this.id).lab);
    const labDir = join(this.dir, "lab");
    mkdirSync(labDir, { recursive: true });
    await labHost.exec(["ip", "addr", "add", `${BEAKER_IP}/32`, "dev", "lo"]);
    if (this.credentialKind === "tls") {
      const server = await makeCertificate(labDir, "lab-server");
      const fingerprints: string[] = [];
      for (let i = 1; i <= CREDENTIAL_COUNT; i++) {
        const parameter = credentialFile(this.seams, this.lab.vpn.credentials[i - 1] as string);
        const { client } = await makeTlsCredential(labDir, `client-${i}`, parameter, server);
        fingerprints.push(client.fingerprint);
      }
      startTlsServer(
        labHost,
        { ...TLS_SERVER, server, clientFingerprints: fingerprints, listen: LAB_PUBLIC_IP },
        join(labDir, "openvpn-tls.log"),
      );
    } else {
      for (let i = 1; i <= CREDENTIAL_COUNT; i++) await this.addStaticKeyClient(i);
    }
    await startIntranet(labHost, labDir, BEAKER_IP, DOMAIN);
  }

  /** A static key for client n (parameter .../client-n) and the lab's server for it, on its own port. */
  private async addStaticKeyClient(n: number): Promise<string> {
    const labHost = this.world.host(hostNames(this.id).lab);
    const labDir = join(this.dir, "lab");
    const server = credentialServer(n);
    const keyFile = join(labDir, `client-${n}.key`);
    const parameter = credentialParameter(n);
    await makeCredential(keyFile, credentialFile(this.seams, parameter), {
      local: server.clientIp,
      remote: server.serverIp,
      port: server.port,
    });
    startStaticKeyServer(
      labHost,
      { ...server, keyFile, cipher: this.lab.vpn.cipher, listen: LAB_PUBLIC_IP },
      join(labDir, `openvpn-${n}.log`),
    );
    return parameter;
  }

  /**
   * A key rotation, as an operator does it (README "Rotating a key"): the lab issues a new client, the
   * operator puts its parameter and lists it in vpn.credentials instead of the runner's key, and deploys.
   * labgate drains the runner, stops its VPN, gives the old key back, leases it another and sets it up.
   */
  async rotate(instanceId: string): Promise<string> {
    if (this.credentialKind !== "static-key")
      throw new LabError("the lab in a box rotates static keys only (its TLS server's clients are fixed)");
    const retired = this.credentialOf(instanceId);
    if (retired === undefined) throw new LabError(`${instanceId} holds no credential: nothing to rotate`);
    const pool = this.lab.vpn.credentials;
    const next = Math.max(...pool.map(credentialNumber)) + 1;
    const added = await this.addStaticKeyClient(next);
    this.state.credentials = [...pool.filter((c) => c !== retired), added];
    this.note({
      kind: "fault",
      runner: instanceId,
      text: `configuration: ${retired} retired, ${added} added`,
    });
    this.save();
    this.emit(`configuration deployed: ${retired} retired, ${added} added`);
    await this.settle();
    return added;
  }

  /**
   * A configuration change, as an operator deploys it (`sst deploy` with an edited labs file): labgate rolls
   * the new setup out (README "Rolling setups"). `settings` replaces the changed ones; undefined values go
   * back to the local lab's.
   */
  async deploy(settings: LabSettings, what: string): Promise<void> {
    this.state.settings = { ...this.state.settings, ...settings };
    for (const [key, value] of Object.entries(settings)) {
      if (value === undefined) delete this.state.settings[key as keyof LabSettings];
    }
    this.note({ kind: "fault", text: `configuration: ${what}` });
    this.save();
    this.emit(`configuration deployed: ${what}`);
    await this.settle();
  }

  /**
   * Each worker runs the worker script of the runner that carries its subnet's route when it starts (the
   * worst case: that runner is the one the scenarios take away). The early workers start once, here.
   */
  private async buildWorkers(): Promise<void> {
    for (const s of workerSubnets(this.id)) {
      for (const w of s.workers) {
        const worker = this.world.host(w.host);
        const workerDir = join(this.dir, w.host);
        mkdirSync(workerDir, { recursive: true });
        await startBus(worker, workerDir);
        await startResolved(this.world, worker, workerDir, this.seams);
      }
    }
    await this.spawnWorkers("early");
    await this.spawnWorkers("job");
    const owners = workerSubnets(this.id).flatMap((s) =>
      s.workers.map((w) => {
        const owner = this.state.runners.find((r) => r.instanceId === this.state.workerOwners[w.host]);
        return `${w.host} (${w.role}) from runner ${owner ? shortName(owner) : "?"}'s worker script`;
      }),
    );
    this.onStep(`workers: ${owners.join(", ")}`);
  }

  /**
   * A new CI job (or, for "early", the workers of the bring-up): each worker of that role starts from the
   * worker script of the runner that carries its subnet's route now, which is then its second DNS server.
   */
  async spawnWorkers(role: WorkerSpec["role"] = "job"): Promise<void> {
    const carriers = await this.carriers();
    for (const s of workerSubnets(this.id)) {
      const carrier = carriers.get(s.az);
      const owner = this.state.runners.find((r) => r.instanceId === carrier && r.state === "running");
      if (!owner) throw new LabError(`no runner carries the worker subnet of ${s.az} to spawn its workers`);
      for (const w of s.workers.filter((x) => x.role === role)) await this.startWorker(w, owner);
    }
    this.save();
  }

  /** Runs a runner's worker script on a worker, as cloud-init runs user data. */
  private async startWorker(w: WorkerSpec, owner: LocalRunner): Promise<void> {
    this.state.workerOwners[w.host] = owner.instanceId;
    const workerDir = join(this.dir, w.host);
    const spec = runnerSpec(this.id, owner.az, owner.n);
    const script = readFileSync(
      join(onRunner(this.runnerDir(spec.host), "/etc/gitlab-runner"), "worker-user-data.sh"),
      "utf8",
    );
    const file = join(workerDir, "user-data");
    writeFileSync(file, script, { mode: 0o755 });
    await this.world.host(w.host).exec([file], { env: hostEnv(this.seams, workerDir) });
  }

  private runnerDir(host: string): string {
    return join(this.dir, host);
  }

  // ---- what happens to the lab (the cloud's side) ------------------------------------------------------

  /** The group launches a runner: an instance boots, enters Pending:Wait, and the launch hook fires. */
  async launch(az: string): Promise<string> {
    const n = (this.state.launched[az] ?? 0) + 1;
    this.state.launched[az] = n;
    const spec = runnerSpec(this.id, az, n);
    const runner: LocalRunner = {
      instanceId: spec.instanceId,
      az,
      n,
      state: "pending",
      lifecycle: "Pending:Wait",
      sourceDestCheck: true,
      tags: {},
      alarm: undefined,
    };
    this.state.runners.push(runner);
    const host = await this.world.addHost(spec.host);
    const { cidr, gateway } = runnerSubnet(az);
    await attachRunner(this.world, this.world.host(hostNames(this.id).router), host, spec.routerIf, az);
    this.note({ kind: "host-up", az, runner: spec.instanceId, text: `${spec.instanceId} booted in ${az}` });
    await prepareRunner(this.world, host, this.runnerDir(spec.host), this.seams, [
      { ifname: "eth0", name: "eth0", cidr: `${spec.privateIp}/${cidr.split("/")[1]}`, gateway },
    ]);
    runner.state = "running";
    this.save();
    this.onStep(
      `runner ${shortName(runner)} (${spec.instanceId}) booted in ${az}: Pending:Wait, launch hook fired`,
    );
    this.emit(`lifecycle launch ${spec.instanceId}`);
    return spec.instanceId;
  }

  /** The group scales a runner in: it enters Terminating:Wait and the terminate hook fires. */
  terminate(instanceId: string): void {
    const r = this.runner(instanceId);
    if (r.lifecycle !== "InService")
      throw new LabError(`${instanceId} is ${r.lifecycle ?? r.state}, not InService`);
    r.lifecycle = "Terminating:Wait";
    this.save();
    this.emit(`lifecycle terminate ${instanceId}`);
  }

  /** The instance dies without warning (no hook): its processes and network are gone at once. */
  async kill(instanceId: string): Promise<void> {
    const r = this.runner(instanceId);
    this.note({ kind: "fault", az: r.az, runner: instanceId, text: `${instanceId} killed` });
    await this.world.removeHost(runnerSpec(this.id, r.az, r.n).host, { abrupt: true });
    this.note({ kind: "host-down", az: r.az, runner: instanceId, text: `${instanceId} is gone (killed)` });
    r.state = "terminated";
    r.lifecycle = undefined;
    this.save();
    this.emit(`instance ${instanceId} terminated`);
  }

  /**
   * A planned replacement: the group launches a new runner in the AZ and, once it is in service (as an
   * instance refresh waits for the new instance to be healthy), scales the old one in.
   */
  async replace(instanceId: string): Promise<string> {
    const fresh = await this.launch(this.runner(instanceId).az);
    await this.settle();
    const launched = this.state.runners.find((r) => r.instanceId === fresh);
    if (launched?.lifecycle !== "InService") {
      throw new LabError(
        `the replacement ${fresh} of ${instanceId} did not come into service (${launched?.lifecycle ?? launched?.state}); ${instanceId} is kept. Its setup output is in ${this.runnerDir(runnerSpec(this.id, launched?.az ?? "", launched?.n ?? 0).host)}`,
      );
    }
    this.terminate(instanceId);
    await this.settle();
    return fresh;
  }

  /**
   * The instance lives, its tunnel dies: the lab's server stops answering it. The runner's own tunnel watch
   * notices (a probe every second, down after 3 failed in a row) and reports it as its instance's tag, which
   * reaches labgate as an event (as EventBridge's Tag Change on Resource does). Returns the report's event.
   */
  async cutTunnel(instanceId: string): Promise<Event> {
    const r = this.runner(instanceId);
    const held = this.credentialOf(instanceId);
    const index = held === undefined ? 0 : credentialNumber(held);
    if (index === 0) throw new LabError(`${instanceId} holds no credential: it has no tunnel to cut`);
    const host = this.world.host(runnerSpec(this.id, r.az, r.n).host);
    this.note({ kind: "fault", az: r.az, runner: instanceId, text: `tunnel of ${instanceId} cut` });
    await host.exec([
      "iptables",
      "-I",
      "OUTPUT",
      "-p",
      "udp",
      "--dport",
      this.serverPort(index),
      "-j",
      "DROP",
    ]);
    return this.awaitReport(instanceId, "down");
  }

  /**
   * The lab's server answers the runner again: its watch reports the tunnel up (after 5 good probes), and its
   * health reporter says so too (its alarm clears).
   */
  async restoreTunnel(instanceId: string): Promise<number> {
    const r = this.runner(instanceId);
    const held = this.credentialOf(instanceId);
    const index = held === undefined ? 0 : credentialNumber(held);
    const host = this.world.host(runnerSpec(this.id, r.az, r.n).host);
    const port = this.serverPort(index);
    await host.exec(["iptables", "-D", "OUTPUT", "-p", "udp", "--dport", port, "-j", "DROP"], {
      check: false,
    });
    await this.awaitReport(instanceId, "up");
    return this.reportHealth(instanceId);
  }

  /**
   * Waits for a runner's watch to report its tunnel `state` (its tag; bounded), then lets labgate hear of it.
   * The watch reports on its own schedule: a probe a second, 3 failed or 5 good in a row, and a report.
   */
  async awaitReport(instanceId: string, state: TunnelState, timeoutMs = 30_000): Promise<Event> {
    const r = this.runner(instanceId);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.collectReports();
      const heard = this.reports.get(instanceId);
      if (parseTunnelReport(r.tags[TUNNEL_TAG])?.state === state && heard) return heard;
      if (Date.now() > deadline) {
        // The systemctl stand-in keeps a service's output in <runner dir>/<unit>.log.
        const unit = runnerPaths(this.lab.name).watchService.split("/").pop() ?? "";
        const log = join(this.runnerDir(runnerSpec(this.id, r.az, r.n).host), `${unit}.log`);
        throw new LabError(
          `${instanceId}'s tunnel watch did not report its tunnel ${state} within ${timeoutMs / 1000} s (see ${log})`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /**
   * Waits (bounded) until the tunnel watch of every running runner has reported its tunnel up since the watch
   * last started (a setup that changed its script restarts it; it reports after 5 good probes), and labgate
   * has heard it: a scenario then starts from a quiet lab, no report of an earlier one still on its way.
   */
  async awaitWatchesUp(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.collectReports();
      const waiting = this.state.runners.filter(
        (r) =>
          this.watchStarted(r) !== undefined &&
          (this.watchPending(r) || parseTunnelReport(r.tags[TUNNEL_TAG])?.state !== "up"),
      );
      if (waiting.length === 0) return this.settle();
      if (Date.now() > deadline)
        throw new LabError(
          `the tunnel watches of ${waiting.map(shortName).join(", ")} did not report their tunnels up within ${timeoutMs / 1000} s`,
        );
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** When the runner's tunnel watch last started; undefined when none runs (the stand-in's <unit>.pid). */
  private watchStarted(r: LocalRunner): number | undefined {
    if (r.state !== "running") return undefined;
    const unit = runnerPaths(this.lab.name).watchService.split("/").pop() ?? "";
    const pid = join(this.runnerDir(runnerSpec(this.id, r.az, r.n).host), `${unit}.pid`);
    return existsSync(pid) ? statSync(pid).mtimeMs : undefined;
  }

  /** Whether the runner's tunnel watch started and has reported nothing since: a report is on its way. */
  private watchPending(r: LocalRunner): boolean {
    const started = this.watchStarted(r);
    const tag = tagFile(this.seams, r.instanceId, TUNNEL_TAG);
    return started !== undefined && !(existsSync(tag) && statSync(tag).mtimeMs >= started);
  }

  /**
   * The tunnel reports the runners wrote on their instances since labgate last looked: each change is an
   * event at the moment it was written (the file's time), as EventBridge sends one per tag change.
   */
  collectReports(): void {
    for (const r of this.state.runners.filter((x) => x.state !== "terminated")) {
      const file = tagFile(this.seams, r.instanceId, TUNNEL_TAG);
      if (!existsSync(file)) continue;
      const value = readFileSync(file, "utf8");
      if (value === r.tags[TUNNEL_TAG]) continue;
      r.tags[TUNNEL_TAG] = value;
      const state = parseTunnelReport(value)?.state ?? "malformed";
      const at = statSync(file).mtimeMs;
      this.timeline.push({
        at,
        kind: "report",
        az: r.az,
        runner: r.instanceId,
        text: `${r.instanceId} reported its tunnel ${state}`,
      });
      const event = { trigger: `tunnel report ${r.instanceId} ${state}`, at };
      this.events.push(event);
      this.reports.set(r.instanceId, event);
      this.save();
    }
  }

  /** The port of the lab's server that the runner holding the index-th credential talks to. */
  private serverPort(index: number): string {
    return String(this.credentialKind === "tls" ? TLS_SERVER.port : credentialServer(index).port);
  }

  get credentialKind(): CredentialKind {
    return this.state.credentialKind ?? "static-key";
  }

  /** Runs the runner's rendered health reporter; what it publishes decides the alarm, as in CloudWatch. */
  async reportHealth(instanceId: string): Promise<number> {
    return (await this.runHealthReporter(instanceId)).value;
  }

  /**
   * Every runner whose health alarm exists reports once, as its timer does every 10 s in AWS (the lab has
   * no timers): its alarm then says what CloudWatch would. Returns each reporter's verdict, by runner.
   */
  async reportAllHealth(): Promise<ReadonlyMap<string, HealthVerdict>> {
    const reporting = this.state.runners.filter((r) => r.state === "running" && r.alarm !== undefined);
    const verdicts = await settleAll(
      reporting.map(
        async (r) => [r.instanceId, (await this.runHealthReporter(r.instanceId)).verdict] as const,
      ),
    );
    this.health = new Map(verdicts);
    if (verdicts.length > 0)
      this.onStep(
        `health: ${reporting.map((r) => `${shortName(r)} ${r.alarm === "OK" ? "healthy" : "unhealthy"}`).join(", ")}`,
      );
    return this.health;
  }

  private async runHealthReporter(instanceId: string): Promise<{ value: number; verdict: HealthVerdict }> {
    const r = this.runner(instanceId);
    const spec = runnerSpec(this.id, r.az, r.n);
    // Bounded: its DNS probe gives up after 2 tries of 2 s.
    const out = await this.world.host(spec.host).exec([runnerPaths(this.lab.name).healthScript], {
      env: hostEnv(this.seams, this.runnerDir(spec.host)),
      check: false,
      timeoutMs: 20_000,
    });
    const published = /TunnelHealthy=([01])/.exec(out.stdout)?.[1];
    if (published === undefined)
      throw new LabError(`the health reporter of ${instanceId} said nothing: ${out.stderr}`);
    const value = Number(published);
    const state = value === 1 ? "OK" : "ALARM";
    if (r.alarm !== undefined && r.alarm !== state) {
      r.alarm = state;
      r.alarmSince = Date.now();
      this.save();
      this.emit(`alarm labgate-foo-tunnel-${instanceId} ${state}`);
    }
    // What it found, when it says (tunnel=up dns=silent): a cut tunnel is up and carries nothing.
    const tunnel = /tunnel=(\S+)/.exec(out.stdout)?.[1];
    const dns = /dns=(\S+)/.exec(out.stdout)?.[1];
    return { value, verdict: { healthy: value === 1, tunnel, dns } };
  }

  private runner(instanceId: string): LocalRunner {
    const r = this.state.runners.find((x) => x.instanceId === instanceId);
    if (!r || r.state === "terminated")
      throw new LabError(`no live runner ${instanceId}; see \`npm run lab -- status\``);
    return r;
  }

  /**
   * Finds a live runner by instance id, by its short name (a1, b2...), or as the runner that carries an AZ's
   * worker subnet route now (carrier-a, carrier-b): which runner that is varies from one bring-up to the next.
   */
  async resolve(name: string): Promise<string> {
    const carrierOf = /^carrier-([a-z])$/.exec(name)?.[1];
    if (carrierOf !== undefined) {
      const az = AZS.find((a) => a.endsWith(carrierOf));
      if (!az) throw new LabError(`no AZ ${carrierOf} in the lab (${AZS.join(", ")})`);
      const carrier = await this.carrier(az);
      if (!carrier) throw new LabError(`no runner carries the worker subnet route of ${az}`);
      return carrier;
    }
    const r = this.state.runners.find(
      (x) => x.state !== "terminated" && (x.instanceId === name || shortName(x) === name),
    );
    if (!r) throw new LabError(`no live runner ${name}; see \`npm run lab -- status\``);
    return r.instanceId;
  }

  private emit(trigger: string): void {
    this.events.push({ trigger, at: Date.now() });
  }

  private note(entry: Omit<TimelineEntry, "at">): void {
    this.timeline.push({ at: Date.now(), ...entry });
  }

  // ---- labgate's loop --------------------------------------------------------------------------------

  /**
   * Reconciles for every event, and for every command that finishes, until nothing is left to do. With
   * `commandsTogether`, events wait while a command runs: labgate hears of commands sent together once all
   * of them have ended, as one batch.
   */
  async settle(timeoutMs = 180_000, { commandsTogether = false } = {}): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (Date.now() > deadline) throw new LabError(`the lab did not settle within ${timeoutMs / 1000} s`);
      if (commandsTogether && this.running.size > 0) {
        await Promise.allSettled([...this.running]);
        continue;
      }
      this.collectReports();
      const event = this.events.shift();
      if (event) {
        const {
          runnerIds: _ids,
          again,
          ...report
        } = await reconcile(this.lab, this, {
          ...this.observability,
          dryRun: false,
          trigger: event.trigger,
        });
        this.history.push({ event, report, doneAt: Date.now() });
        this.save();
        if (report.actions.length > 0) {
          const found =
            report.findings.length > 0 ? `; findings: ${tally(report.findings.map((f) => f.kind))}` : "";
          this.onStep(`labgate, on "${event.trigger}": ${tally(report.actions.map((a) => a.kind))}${found}`);
        }
        if (report.errors.length > 0)
          throw new LabError(`reconcile after "${event.trigger}" failed: ${report.errors.join("; ")}`);
        // As the handler does (functions/reconcile/requeue.ts): another reconcile soon, at most one pending,
        // backed off and capped; the episode in the lab's store, a timer in place of the schedule, which
        // runs only while it is still the episode's pending requeue.
        const { requeue: episode } = await this.store.read(this.lab.name);
        await requeueAfter(
          { ...again, episode },
          {
            now: Date.now(),
            firedAttempt: event.trigger.startsWith("requeue (") ? episode?.attempts : undefined,
            log: this.observability.logger,
            requeuer: {
              record: (e) => this.store.recordRequeue(this.lab.name, e),
              schedule: async ({ at, reason }) => {
                const timer: Promise<void> = new Promise((r) => setTimeout(r, at - Date.now()))
                  .then(async () => {
                    if ((await this.store.read(this.lab.name)).requeue?.dueAt === at)
                      this.emit(`requeue (${reason})`);
                  })
                  .finally(() => this.inflight.delete(timer));
                this.inflight.add(timer);
              },
            },
          },
        );
        continue;
      }
      if (this.inflight.size > 0) {
        await Promise.race(this.inflight);
        continue;
      }
      // A tunnel watch a setup (re)started reports within seconds (5 good probes): an event still to come,
      // as EventBridge would bring it. (Its old watch may have reported the tunnel down while the setup
      // restarted it; the rollout goes on once the new one reports it up.)
      if (this.state.runners.some((r) => this.watchPending(r))) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      return;
    }
  }

  // ---- the LabProvider port --------------------------------------------------------------------------

  async observe(): Promise<World> {
    const router = this.world.host(hostNames(this.id).router);
    const subnets = workerSubnets(this.id);
    const routed = routedCidrs(this.lab);
    const routeTables: World["routeTables"] = Object.fromEntries(
      await Promise.all(
        subnets.map(async (s) => {
          // A table without any route yet does not exist for the kernel: that is an empty route table.
          const out = await router.exec(["ip", "-j", "route", "show", "table", String(s.table)], {
            check: false,
          });
          if (out.code !== 0 && !out.stderr.includes("FIB table does not exist")) {
            throw new LabError(`reading route table ${s.table}: ${out.stderr}`);
          }
          const entries = JSON.parse(out.code === 0 ? out.stdout || "[]" : "[]") as {
            dst: string;
            gateway?: string;
          }[];
          const routes: Record<string, Route> = {};
          const others: Record<string, Route> = {};
          for (const e of entries) {
            const target = this.state.runners.find(
              (r) => runnerSpec(this.id, r.az, r.n).privateIp === e.gateway,
            );
            // The kernel shows a host route without its /32.
            const cidr = routed.find((c) => c === e.dst || c === `${e.dst}/32`);
            if (cidr === undefined) {
              // Another route through a runner: one labgate made for a CIDR since removed.
              if (target !== undefined)
                others[e.dst] = {
                  instanceId: target.instanceId,
                  eniId: runnerSpec(this.id, target.az, target.n).eniId,
                  blackhole: target.state === "terminated",
                };
              continue;
            }
            routes[cidr] = {
              instanceId: target?.instanceId,
              eniId: target ? runnerSpec(this.id, target.az, target.n).eniId : undefined,
              blackhole: target === undefined || target.state === "terminated",
            };
          }
          return [s.routeTableId, { routeTableId: s.routeTableId, routes, others }] as const;
        }),
      ),
    );
    const observed: ObservedRunner[] = this.state.runners.map((r) => {
      const spec = runnerSpec(this.id, r.az, r.n);
      return {
        instanceId: r.instanceId,
        az: r.az,
        state: r.state,
        lifecycle: r.lifecycle,
        privateIp: spec.privateIp,
        eniId: spec.eniId,
        sourceDestCheck: r.sourceDestCheck,
        mirror: {
          credential: r.tags[CREDENTIAL_TAG],
          appliedSetup: r.tags[SETUP_TAG],
          command: r.tags[COMMAND_TAG],
        },
        healthAlarm: r.alarm,
        tunnelReport: parseTunnelReport(r.tags[TUNNEL_TAG]),
        healthSince: r.alarmSince,
      };
    });
    const { runners, orphanLeases } = withStoredState(observed, await this.store.read(this.lab.name));
    return {
      lab: this.lab.name,
      now: Date.now(),
      runners: runners.map((r) => ({
        ...r,
        commandOutcome:
          r.command?.status === "pending" && r.command.commandId !== undefined
            ? this.outcomes.get(r.command.commandId)
            : undefined,
      })),
      subnets: subnets.map((s) => ({
        subnetId: s.subnetId,
        az: s.az,
        cidr: s.cidr,
        routeTableId: s.routeTableId,
      })),
      routeTables,
      healthAlarms: this.state.runners
        .filter((r) => r.alarm !== undefined)
        .map((r) => ({ name: `labgate-${this.lab.name}-tunnel-${r.instanceId}`, instanceId: r.instanceId })),
      orphanLeases,
      unknown: [],
    };
  }

  async apply(action: Action): Promise<ApplyOutcome> {
    const done: ApplyOutcome = { status: "done" };
    if (isStateAction(action)) {
      const outcome = await applyStateAction(action, this.lab, {
        store: this.store,
        now: () => Date.now(),
        warn: (message, extra) => this.observability.logger.warn(message, extra),
        mirror: async (instanceId, tags) => {
          const r = this.state.runners.find((x) => x.instanceId === instanceId);
          if (r === undefined) throw new LabError(`no instance ${instanceId}`);
          for (const [key, value] of Object.entries(tags)) {
            if (value === null) delete r.tags[key];
            else r.tags[key] = value;
          }
        },
        send: async (command, kind) => ({ commandId: this.send(command, kind) }),
      });
      this.save();
      return outcome;
    }
    switch (action.kind) {
      case "disable-source-dest-check":
        this.runner(action.instanceId).sourceDestCheck = false;
        return done;
      case "create-route":
      case "replace-route": {
        const s = workerSubnets(this.id).find((x) => x.routeTableId === action.routeTableId);
        const target = this.state.runners.find((r) => r.instanceId === action.target.instanceId);
        if (!s || !target) throw new LabError(`${action.id}: unknown route table or target`);
        const via = runnerSpec(this.id, target.az, target.n).privateIp;
        await this.world
          .host(hostNames(this.id).router)
          .exec(["ip", "route", "replace", action.cidr, "via", via, "table", String(s.table)]);
        this.note({
          kind: "route",
          az: s.az,
          runner: target.instanceId,
          ...(action.previous !== undefined && { from: action.previous }),
          text: `${action.cidr} of ${s.subnetId} (${s.az}): ${action.previous ?? "none"} -> ${target.instanceId}`,
        });
        return done;
      }
      case "delete-route": {
        const s = workerSubnets(this.id).find((x) => x.routeTableId === action.routeTableId);
        if (!s) throw new LabError(`${action.id}: unknown route table`);
        await this.world
          .host(hostNames(this.id).router)
          .exec(["ip", "route", "del", action.cidr, "table", String(s.table)], { check: false });
        this.note({
          kind: "route",
          az: s.az,
          runner: action.instanceId,
          text: `${action.cidr} of ${s.subnetId} (${s.az}): deleted (no longer an intranet CIDR)`,
        });
        return done;
      }
      case "complete-lifecycle":
        await this.completeLifecycle(action.instanceId, action.result);
        return done;
      case "put-health-alarm":
        Object.assign(this.runner(action.instanceId), { alarm: "INSUFFICIENT_DATA", alarmSince: Date.now() });
        return done;
      case "delete-health-alarms":
        for (const r of this.state.runners) {
          if (action.alarmNames.includes(`labgate-${this.lab.name}-tunnel-${r.instanceId}`))
            r.alarm = undefined;
        }
        return done;
    }
  }

  async ownsInstance(instanceId: string): Promise<boolean> {
    return this.state.runners.some((r) => r.instanceId === instanceId);
  }

  /** Run Command, locally: the script runs on the runner as SSM runs it; its end is an event, as in AWS. */
  private send(
    action: Extract<Action, { kind: "push-setup" | "stop-vpn" }>,
    kind: "setup" | "stop-vpn",
  ): string {
    const r = this.runner(action.instanceId);
    const commandId = randomUUID();
    this.note({
      kind: "command-sent",
      az: r.az,
      runner: r.instanceId,
      text: `${kind} sent to ${r.instanceId}`,
    });
    const spec = runnerSpec(this.id, r.az, r.n);
    const host = this.world.host(spec.host);
    const dir = this.runnerDir(spec.host);
    const running = runCommandScript(
      host,
      dir,
      this.seams,
      `${kind}-${commandId}`,
      commandMarker(this.lab.name, kind, action.hash),
      action.script,
    )
      .then((result) => {
        this.outcomes.set(commandId, result.code === 0 ? "success" : "failed");
        keepOutput(join(dir, `${kind}-${commandId}.out`), `${result.stdout}\n--- stderr\n${result.stderr}`);
      })
      .catch((error: unknown) => {
        this.outcomes.set(commandId, "failed");
        keepOutput(join(dir, `${kind}-${commandId}.out`), String(error));
      })
      .finally(() => {
        this.inflight.delete(running);
        this.running.delete(running);
        const outcome = this.outcomes.get(commandId);
        this.note({
          kind: "command-done",
          az: r.az,
          runner: r.instanceId,
          text: `${kind} on ${r.instanceId}: ${outcome}`,
        });
        this.emit(`command ${commandId} ${outcome}`);
      });
    this.inflight.add(running);
    this.running.add(running);
    return commandId;
  }

  private async completeLifecycle(instanceId: string, result: "CONTINUE" | "ABANDON"): Promise<void> {
    const r = this.runner(instanceId);
    this.note({
      kind: "hook",
      az: r.az,
      runner: instanceId,
      text: `${r.lifecycle} of ${instanceId}: ${result}`,
    });
    if (r.lifecycle === "Pending:Wait" && result === "CONTINUE") {
      r.lifecycle = "InService";
      this.emit(`group activity: launch of ${instanceId} successful`);
    } else if (r.lifecycle === "Pending:Wait") {
      r.lifecycle = "Terminating:Wait";
      this.emit(`lifecycle terminate ${instanceId} (launch abandoned)`);
    } else if (r.lifecycle === "Terminating:Wait") {
      await this.world.removeHost(runnerSpec(this.id, r.az, r.n).host);
      this.note({
        kind: "host-down",
        az: r.az,
        runner: instanceId,
        text: `${instanceId} is gone (terminated)`,
      });
      r.state = "terminated";
      r.lifecycle = undefined;
      this.emit(`instance ${instanceId} terminated`);
    }
  }

  // ---- reading the lab -------------------------------------------------------------------------------

  /**
   * Runners, their credentials, tunnels and alarms, and what each carries, as rows for a table. A tunnel is
   * shown as its runner's health reporter last said (reportAllHealth): a tunnel device that is up but
   * carries nothing (a cut tunnel) is not working. A terminated runner holds no credential.
   */
  async status(): Promise<string[][]> {
    const health = this.health;
    /** What the runner's tunnel watch last reported, and when (UTC). */
    const report = (r: LocalRunner): string => {
      const last = parseTunnelReport(r.tags[TUNNEL_TAG]);
      return last ? `${last.state} ${new Date(last.at).toISOString().slice(11, 19)}` : "-";
    };
    const [carriers, tunnels] = await Promise.all([this.carriers(), this.liveTunnels()]);
    const carried = (id: string) =>
      workerSubnets(this.id)
        .filter((s) => carriers.get(s.az) === id)
        .map((s) => `${s.subnetId} (${s.az})`);
    const tunnel = (r: LocalRunner): string => {
      const key = tunnels.get(r.instanceId);
      if (key === undefined) return r.state === "running" ? "none" : "-";
      const verdict = health.get(r.instanceId);
      const state = !verdict
        ? "not reported"
        : verdict.healthy
          ? "working"
          : verdict.tunnel === "down"
            ? "down"
            : verdict.tunnel === "up"
              ? `dead (DNS ${verdict.dns ?? "not answering"})`
              : "not working";
      return key === this.credentialOf(r.instanceId) ? state : `${state}, with the key of ${key}`;
    };
    return [
      ["RUNNER", "NAME", "AZ", "STATE", "LIFECYCLE", "CREDENTIAL", "TUNNEL", "ALARM", "REPORT", "CARRIES"],
      ...this.state.runners.map((r) => [
        r.instanceId,
        shortName(r),
        r.az,
        r.state,
        r.lifecycle ?? "-",
        r.state === "terminated" ? "-" : (this.credentialOf(r.instanceId) ?? "-"),
        tunnel(r),
        r.alarm ?? "-",
        r.state === "terminated" ? "-" : report(r),
        carried(r.instanceId).join(", ") || "-",
      ]),
    ];
  }

  /** For each live runner, the credential its running tunnel really uses (read from the runner itself). */
  async liveTunnels(): Promise<Map<string, string>> {
    const running = this.state.runners.filter((x) => x.state === "running");
    const found = await settleAll(
      running.map(async (r): Promise<[string, string][]> => {
        const spec = runnerSpec(this.id, r.az, r.n);
        const host = this.world.host(spec.host);
        const link = await host.exec(["ip", "link", "show", tunDevice(this.lab.name)], {
          check: false,
          timeoutMs: 5_000,
        });
        if (link.code !== 0) return [];
        const key = join(onRunner(this.runnerDir(spec.host), "/etc/labgate"), this.lab.name, "static.key");
        if (!existsSync(key)) return [];
        // The static key is the whole parameter; a TLS client's key is one of its parts. Every parameter the
        // lab ever issued counts (a rotated-out one too).
        const text = readFileSync(key, "utf8").trim();
        const issued = readdirSync(this.seams.credentials).map((f) => f.replaceAll("_", "/"));
        const found = issued.find(
          (p) => text !== "" && readFileSync(credentialFile(this.seams, p), "utf8").includes(text),
        );
        return [[r.instanceId, found ?? "unknown key"]];
      }),
    );
    return new Map(found.flat());
  }

  /**
   * The lab's tunnels as the machine has them, for the evidence of a loss: per running runner, the routes
   * it carries, the key its tunnel uses and how many openvpn processes its namespace holds; and which
   * runners' tunnels use one key together (a static key serves one client at a time).
   */
  async noteState(when: string): Promise<void> {
    const [carriers, tunnels] = await Promise.all([this.carriers(), this.liveTunnels()]);
    const running = this.state.runners.filter((x) => x.state === "running");
    const parts = await settleAll(
      running.map(async (r) => {
        const spec = runnerSpec(this.id, r.az, r.n);
        const pids = await run(["ip", "netns", "pids", spec.host], { check: false, timeoutMs: 5_000 });
        const openvpn = pids.stdout
          .split(/\s+/)
          .filter((pid) => pid !== "")
          .filter((pid) => {
            try {
              return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "openvpn";
            } catch {
              return false;
            }
          }).length;
        const carries = [...carriers].filter(([, id]) => id === r.instanceId).map(([az]) => az);
        return `${shortName(r)}${carries.length > 0 ? ` (carries ${carries.join(", ")})` : ""}: ${tunnels.get(r.instanceId) ?? "no tunnel"}, openvpn x${openvpn}`;
      }),
    );
    const keys = [...tunnels.values()];
    const shared = keys.filter((k, i) => keys.indexOf(k) !== i);
    this.note({
      kind: "state",
      text: `${when}: ${parts.join("; ")}${shared.length > 0 ? `; KEY IN TWO TUNNELS: ${shared.join(", ")}` : ""}`,
    });
  }

  /** A worker of an AZ (the job worker unless asked for the early one): its host, spec and environment. */
  worker(az: string, role: WorkerSpec["role"] = "job") {
    const s = workerSubnets(this.id).find((x) => x.az === az);
    const w = s?.workers.find((x) => x.role === role);
    if (!s || !w) throw new LabError(`no ${role} worker in ${az}`);
    const host = this.world.host(w.host);
    return { host, spec: s, worker: w, env: hostEnv(this.seams, join(this.dir, w.host)) };
  }

  /**
   * Whether a worker of an AZ (the job worker unless asked for the early one) resolves Beaker's name and
   * fetches its page over a tunnel, each within `timeoutMs`.
   */
  async reachBeaker(
    az: string,
    {
      timeoutMs = 10_000,
      role = "job",
    }: { readonly timeoutMs?: number; readonly role?: WorkerSpec["role"] } = {},
  ): Promise<{ readonly ok: boolean; readonly detail: string }> {
    const { host, env } = this.worker(az, role);
    const name = `beaker.${DOMAIN}`;
    const resolved = await host.exec(["getent", "hosts", name], { env, check: false, timeoutMs });
    if (!resolved.stdout.startsWith(BEAKER_IP)) {
      const why = resolved.code === null ? `no answer within ${timeoutMs / 1000} s` : resolved.stderr.trim();
      return { ok: false, detail: `${name} does not resolve (${why || "no answer"})` };
    }
    const page = await host.exec(["curl", "-sS", "--max-time", String(timeoutMs / 1000), `http://${name}/`], {
      env,
      check: false,
      timeoutMs: timeoutMs + 1_000,
    });
    return page.code === 0
      ? { ok: true, detail: page.stdout.trim() }
      : { ok: false, detail: `curl ${name}: ${page.stderr.trim()}` };
  }

  /** Whether each worker reaches Beaker by name now, by worker host: all at once, each probe bounded. */
  async probeWorkers(): Promise<ReadonlyMap<string, string>> {
    const workers = workerSubnets(this.id).flatMap((s) => s.workers.map((w) => ({ s, w })));
    const reaches = await Promise.all(
      workers.map(({ s, w }) => this.reachBeaker(s.az, { timeoutMs: STATUS_PROBE_TIMEOUT_MS, role: w.role })),
    );
    return new Map(workers.map(({ w }, i) => [w.host, reaches[i]?.detail ?? "-"]));
  }

  /** Each worker, its DNS runner and route carrier, and what probeWorkers found (probed now if not given). */
  async workerStatus(reach?: ReadonlyMap<string, string>): Promise<string[][]> {
    const [carriers, reached] = await Promise.all([this.carriers(), reach ?? this.probeWorkers()]);
    return [
      ["WORKER", "AZ", "STARTED", "DNS", "ITS RUNNER", "ROUTE CARRIER", "BEAKER BY NAME"],
      ...workerSubnets(this.id).flatMap((s) =>
        s.workers.map((w) => [
          w.host,
          s.az,
          w.role === "job" ? "per scenario" : "at bring-up",
          this.lab.dnsServiceAddress ?? "its runner",
          this.state.workerOwners[w.host] ?? "-",
          carriers.get(s.az) ?? "-",
          reached.get(w.host) ?? "-",
        ]),
      ),
    ];
  }

  /** The live runners, in launch order. */
  liveRunners(): { instanceId: string; az: string; name: string; credential: string | undefined }[] {
    return this.state.runners
      .filter((r) => r.state !== "terminated")
      .map((r) => ({
        instanceId: r.instanceId,
        az: r.az,
        name: shortName(r),
        credential: this.credentialOf(r.instanceId),
      }));
  }

  /** The runner each AZ's worker subnet route points at now (one read of the route tables). */
  async carriers(): Promise<Map<string, string | undefined>> {
    const world = await this.observe();
    return new Map(
      workerSubnets(this.id).map((s) => [
        s.az,
        world.routeTables[s.routeTableId]?.routes[INTRANET]?.instanceId,
      ]),
    );
  }

  async carrier(az: string): Promise<string | undefined> {
    return (await this.carriers()).get(az);
  }
}
