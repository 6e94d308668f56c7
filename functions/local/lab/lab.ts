// The lab in a box: a VPC router whose per-subnet kernel routing tables play the worker subnets' route
// tables, runners on the real NetworkManager/OpenVPN/iptables/systemd-resolved, workers with their own
// resolver, and the external lab (one static-key OpenVPN server per credential, or one TLS server for all,
// DNS, a web server standing in for Beaker). It implements the same LabProvider port as the AWS adapters: the unchanged core plans,
// this applies: routes with `ip route replace`, the rendered setup run in place of SSM Run Command, the
// worker script run in place of user data. Lifecycle hooks, state changes and alarms are produced here.
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Action } from "../../core/actions.ts";
import type { LabConfig } from "../../core/config.ts";
import {
  COMMAND_TAG,
  CREDENTIAL_TAG,
  commandMarker,
  runnerPaths,
  SETUP_TAG,
  tunDevice,
} from "../../core/names.ts";
import type { InstanceState, Route, World } from "../../core/world.ts";
import { applyStateAction, isStateAction } from "../../reconcile/labgate-state.ts";
import type { ApplyOutcome, LabProvider } from "../../reconcile/ports.ts";
import type { Observability, Report } from "../../reconcile/reconcile.ts";
import { reconcile } from "../../reconcile/reconcile.ts";
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
  writeShims,
} from "../hosts.ts";
import { MemoryStore, type MemoryStoreSnapshot } from "../memory-store.ts";
import { type NetnsRecord, NetnsWorld } from "../netns.ts";
import { addRunnerSubnet, attachRunner } from "./router.ts";
import {
  AZS,
  BEAKER_IP,
  CREDENTIAL_COUNT,
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
}

interface LabState {
  readonly version: 2;
  readonly netns: NetnsRecord;
  readonly dir: string;
  readonly runners: LocalRunner[];
  /** The last runner number used per AZ (new runners count on). */
  readonly launched: Record<string, number>;
  /** The runner whose worker script configured each AZ's worker (the worker's DNS server). */
  readonly workerOwners: Record<string, string>;
  /** labgate's store of the lab (leases, command records): the same port as DynamoDB in AWS. */
  readonly store: MemoryStoreSnapshot;
  /** What the credential parameters hold (absent in the state of a lab brought up before TLS: static keys). */
  readonly credentialKind?: CredentialKind;
}

export interface LabOptions {
  /** Static keys (the default) or TLS client certificates (README "Credential parameters"). */
  readonly credentialKind?: CredentialKind;
}

export interface Event {
  readonly trigger: string;
  /** When it was produced (ms since the epoch): the moment it reaches labgate. */
  readonly at: number;
}

/** One thing that happened to the lab: a route change, a command, a hook, a host booting or going away. */
export interface TimelineEntry {
  readonly at: number;
  readonly kind: "route" | "command-sent" | "command-done" | "hook" | "host-up" | "host-down" | "fault";
  readonly text: string;
  readonly az?: string;
  readonly runner?: string;
  /** For a route change: the runner the route pointed at before, if any. */
  readonly from?: string;
}

export class LabError extends Error {
  override name = "LabError";
}

const STATE_FILE = "state.json";

export class LocalLab implements LabProvider {
  readonly lab: LabConfig = localLab();
  private readonly events: Event[] = [];
  /** Outcomes of commands that finished (SSM's view), by command id. */
  private readonly outcomes = new Map<string, "success" | "failed">();
  private readonly inflight = new Set<Promise<void>>();
  /** What happened to the lab in this process, in order: the evidence a scenario's measurements are read against. */
  readonly timeline: TimelineEntry[] = [];
  /** Every reconcile this process ran, with the event that caused it. */
  readonly history: { readonly event: Event; readonly report: Report; readonly doneAt: number }[] = [];

  private readonly store: MemoryStore;

  private constructor(
    private readonly state: LabState,
    private readonly world: NetnsWorld,
    private readonly observability: Observability,
  ) {
    this.store = MemoryStore.restore(state.store);
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
    };
  }

  // ---- bringing it up and down -------------------------------------------------------------------------

  /** Builds the network, the external lab and the runners, then lets labgate set everything up. */
  static async up(dir: string, observability: Observability, options: LabOptions = {}): Promise<LocalLab> {
    if (existsSync(join(dir, STATE_FILE))) {
      throw new LabError(`a lab is already up (${join(dir, STATE_FILE)}); run \`npm run lab -- down\` first`);
    }
    mkdirSync(dir, { recursive: true });
    const world = new NetnsWorld();
    const lab = new LocalLab(
      {
        version: 2,
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
    try {
      writeShims(lab.seams);
      await lab.buildNetwork();
      await lab.buildExternalLab();
      lab.save();
      // The group launches its runners; labgate leases, sets up and routes them through the lifecycle hooks.
      await Promise.all(AZS.flatMap((az) => Array.from({ length: RUNNERS_PER_AZ }, () => lab.launch(az))));
      await lab.settle();
      await lab.buildWorkers();
      lab.save();
      return lab;
    } catch (error) {
      await lab.down().catch(() => undefined);
      throw error;
    }
  }

  static load(dir: string, observability: Observability): LocalLab {
    const file = join(dir, STATE_FILE);
    if (!existsSync(file)) throw new LabError(`no lab is up (no ${file}); start one with \`npm run lab\``);
    const state = JSON.parse(readFileSync(file, "utf8")) as LabState;
    if (state.version !== 2)
      throw new LabError(`${file} was written by an older labgate: remove the lab by hand`);
    return new LocalLab(state, NetnsWorld.restore(state.netns), observability);
  }

  save(): void {
    const state: LabState = { ...this.state, netns: this.world.record(), store: this.store.snapshot() };
    writeFileSync(join(this.dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
  }

  /** Stops everything the lab started, by pid, and deletes its namespaces and state. */
  async down(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
    await this.world.stopAll();
    rmSync(join(this.dir, STATE_FILE), { force: true });
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
      const worker = await this.world.addHost(s.workerHost);
      await this.world.link(router, s.routerIf, `${s.gateway}/24`, worker, "eth0", `${s.workerIp}/24`);
      await worker.exec(["ip", "route", "add", "default", "via", s.gateway]);
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
      for (let i = 1; i <= CREDENTIAL_COUNT; i++) {
        const server = credentialServer(i);
        const keyFile = join(labDir, `client-${i}.key`);
        const parameter = credentialFile(this.seams, this.lab.vpn.credentials[i - 1] as string);
        await makeCredential(keyFile, parameter, {
          local: server.clientIp,
          remote: server.serverIp,
          port: server.port,
        });
        startStaticKeyServer(
          labHost,
          { ...server, keyFile, cipher: this.lab.vpn.cipher, listen: LAB_PUBLIC_IP },
          join(labDir, `openvpn-${i}.log`),
        );
      }
    }
    await startIntranet(labHost, labDir, BEAKER_IP, DOMAIN);
  }

  /**
   * Each worker is configured by the worker script of its own runner: the runner of its AZ that does not
   * carry the subnet's route, so that killing the route's carrier shows the failover of the route alone (a
   * worker whose own runner dies goes with it in a real CI).
   */
  private async buildWorkers(): Promise<void> {
    for (const s of workerSubnets(this.id)) {
      const worker = this.world.host(s.workerHost);
      const workerDir = join(this.dir, s.workerHost);
      mkdirSync(workerDir, { recursive: true });
      await startBus(worker, workerDir);
      await startResolved(this.world, worker, workerDir, this.seams);
    }
    await this.spawnWorkers();
  }

  /**
   * A new CI job: each worker starts from the worker script of a runner of its AZ that does not carry the
   * subnet's route and whose tunnel is healthy (the runner that spawns it is its DNS server).
   */
  async spawnWorkers(): Promise<void> {
    const carriers = await this.carriers();
    for (const s of workerSubnets(this.id)) {
      const carrier = carriers.get(s.az);
      const owner = this.state.runners.find(
        (r) =>
          r.az === s.az &&
          r.state === "running" &&
          r.lifecycle === "InService" &&
          r.alarm !== "ALARM" &&
          r.instanceId !== carrier,
      );
      if (!owner)
        throw new LabError(`no healthy runner in ${s.az} besides the route's carrier to spawn the worker`);
      this.state.workerOwners[s.az] = owner.instanceId;
      const worker = this.world.host(s.workerHost);
      const workerDir = join(this.dir, s.workerHost);
      const spec = runnerSpec(this.id, owner.az, owner.n);
      const script = readFileSync(
        join(onRunner(this.runnerDir(spec.host), "/etc/gitlab-runner"), "worker-user-data.sh"),
        "utf8",
      );
      const file = join(workerDir, "user-data");
      writeFileSync(file, script, { mode: 0o755 });
      await worker.exec([file], { env: hostEnv(this.seams, workerDir) });
    }
    this.save();
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
    await attachRunner(this.world.host(hostNames(this.id).router), host, spec.routerIf, az);
    this.note({ kind: "host-up", az, runner: spec.instanceId, text: `${spec.instanceId} booted in ${az}` });
    await prepareRunner(this.world, host, this.runnerDir(spec.host), this.seams, [
      { ifname: "eth0", name: "eth0", cidr: `${spec.privateIp}/${cidr.split("/")[1]}`, gateway },
    ]);
    runner.state = "running";
    this.save();
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
   * The instance lives, its tunnel dies: the lab's server stops answering it. The runner's own rendered
   * health reporter notices, as it would every minute, and its alarm goes to ALARM.
   */
  async cutTunnel(instanceId: string): Promise<number> {
    const r = this.runner(instanceId);
    const index = this.lab.vpn.credentials.indexOf(this.credentialOf(instanceId) ?? "") + 1;
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
    return this.reportHealth(instanceId);
  }

  /** The lab's server answers the runner again; its health reporter says so, and its alarm clears. */
  async restoreTunnel(instanceId: string): Promise<number> {
    const r = this.runner(instanceId);
    const index = this.lab.vpn.credentials.indexOf(this.credentialOf(instanceId) ?? "") + 1;
    const host = this.world.host(runnerSpec(this.id, r.az, r.n).host);
    const port = this.serverPort(index);
    await host.exec(["iptables", "-D", "OUTPUT", "-p", "udp", "--dport", port, "-j", "DROP"], {
      check: false,
    });
    return this.reportHealth(instanceId);
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
    const r = this.runner(instanceId);
    const spec = runnerSpec(this.id, r.az, r.n);
    const out = await this.world.host(spec.host).exec([runnerPaths(this.lab.name).healthScript], {
      env: hostEnv(this.seams, this.runnerDir(spec.host)),
      check: false,
    });
    const value = /TunnelHealthy=([01])/.exec(out.stdout)?.[1];
    if (value === undefined)
      throw new LabError(`the health reporter of ${instanceId} said nothing: ${out.stderr}`);
    const state = value === "1" ? "OK" : "ALARM";
    if (r.alarm !== undefined && r.alarm !== state) {
      r.alarm = state;
      this.save();
      this.emit(`alarm labgate-foo-tunnel-${instanceId} ${state}`);
    }
    return Number(value);
  }

  private runner(instanceId: string): LocalRunner {
    const r = this.state.runners.find((x) => x.instanceId === instanceId);
    if (!r || r.state === "terminated")
      throw new LabError(`no live runner ${instanceId}; see \`npm run lab -- status\``);
    return r;
  }

  /** Finds a live runner by instance id or by its short name (a1, b2...). */
  resolve(name: string): string {
    const r = this.state.runners.find(
      (x) => x.state !== "terminated" && (x.instanceId === name || `${x.az.slice(-1)}${x.n}` === name),
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

  /** Reconciles for every event, and for every command that finishes, until nothing is left to do. */
  async settle(timeoutMs = 180_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (Date.now() > deadline) throw new LabError(`the lab did not settle within ${timeoutMs / 1000} s`);
      const event = this.events.shift();
      if (event) {
        const { runnerIds: _ids, ...report } = await reconcile(this.lab, this, {
          ...this.observability,
          dryRun: false,
          trigger: event.trigger,
        });
        this.history.push({ event, report, doneAt: Date.now() });
        this.save();
        if (report.errors.length > 0)
          throw new LabError(`reconcile after "${event.trigger}" failed: ${report.errors.join("; ")}`);
        continue;
      }
      if (this.inflight.size > 0) {
        await Promise.race(this.inflight);
        continue;
      }
      return;
    }
  }

  // ---- the LabProvider port --------------------------------------------------------------------------

  async observe(): Promise<World> {
    const router = this.world.host(hostNames(this.id).router);
    const subnets = workerSubnets(this.id);
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
          for (const e of entries) {
            if (e.dst !== INTRANET) continue;
            const target = this.state.runners.find(
              (r) => runnerSpec(this.id, r.az, r.n).privateIp === e.gateway,
            );
            routes[INTRANET] = {
              instanceId: target?.instanceId,
              eniId: target ? runnerSpec(this.id, target.az, target.n).eniId : undefined,
              blackhole: target === undefined || target.state === "terminated",
            };
          }
          return [s.routeTableId, { routeTableId: s.routeTableId, routes }] as const;
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
      case "complete-lifecycle":
        await this.completeLifecycle(action.instanceId, action.result);
        return done;
      case "put-health-alarm":
        this.runner(action.instanceId).alarm = "INSUFFICIENT_DATA";
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
        writeFileSync(
          join(dir, `${kind}-${commandId}.out`),
          `${result.stdout}\n--- stderr\n${result.stderr}`,
        );
      })
      .catch((error: unknown) => {
        this.outcomes.set(commandId, "failed");
        writeFileSync(join(dir, `${kind}-${commandId}.out`), String(error));
      })
      .finally(() => {
        this.inflight.delete(running);
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

  /** Runners, their credentials and what each carries, as rows for a table. */
  async status(): Promise<string[][]> {
    const carriers = await this.carriers();
    const carried = (id: string) =>
      workerSubnets(this.id)
        .filter((s) => carriers.get(s.az) === id)
        .map((s) => `${s.subnetId} (${s.az})`);
    const tunnels = await this.liveTunnels();
    return [
      ["RUNNER", "NAME", "AZ", "STATE", "LIFECYCLE", "CREDENTIAL", "TUNNEL", "ALARM", "CARRIES"],
      ...this.state.runners.map((r) => [
        r.instanceId,
        `${r.az.slice(-1)}${r.n}`,
        r.az,
        r.state,
        r.lifecycle ?? "-",
        this.credentialOf(r.instanceId) ?? "-",
        tunnels.get(r.instanceId) ?? "-",
        r.alarm ?? "-",
        carried(r.instanceId).join(", ") || "-",
      ]),
    ];
  }

  /** For each live runner, the credential its running tunnel really uses (read from the runner itself). */
  async liveTunnels(): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (const r of this.state.runners.filter((x) => x.state === "running")) {
      const spec = runnerSpec(this.id, r.az, r.n);
      const host = this.world.host(spec.host);
      const link = await host.exec(["ip", "link", "show", tunDevice(this.lab.name)], { check: false });
      if (link.code !== 0) continue;
      const key = join(onRunner(this.runnerDir(spec.host), "/etc/labgate"), this.lab.name, "static.key");
      if (!existsSync(key)) continue;
      // The static key is the whole parameter; a TLS client's key is one of its parts.
      const text = readFileSync(key, "utf8").trim();
      const index = this.lab.vpn.credentials.findIndex(
        (p) =>
          text !== "" &&
          existsSync(credentialFile(this.seams, p)) &&
          readFileSync(credentialFile(this.seams, p), "utf8").includes(text),
      );
      found.set(r.instanceId, index >= 0 ? (this.lab.vpn.credentials[index] as string) : "unknown key");
    }
    return found;
  }

  /** Runs a command on a worker (e.g. ping or curl Beaker). */
  worker(az: string) {
    const s = workerSubnets(this.id).find((x) => x.az === az);
    if (!s) throw new LabError(`no worker in ${az}`);
    const host = this.world.host(s.workerHost);
    return { host, spec: s, env: hostEnv(this.seams, join(this.dir, s.workerHost)) };
  }

  /** Whether the worker of an AZ resolves Beaker's name through its runner and fetches its page over a tunnel. */
  async reachBeaker(az: string): Promise<{ readonly ok: boolean; readonly detail: string }> {
    const { host, env } = this.worker(az);
    const name = `beaker.${DOMAIN}`;
    const resolved = await host.exec(["getent", "hosts", name], { env, check: false, timeoutMs: 10_000 });
    if (!resolved.stdout.startsWith(BEAKER_IP))
      return { ok: false, detail: `${name} does not resolve (${resolved.stderr.trim() || "no answer"})` };
    const page = await host.exec(["curl", "-sS", "--max-time", "5", `http://${name}/`], {
      env,
      check: false,
      timeoutMs: 10_000,
    });
    return page.code === 0
      ? { ok: true, detail: page.stdout.trim() }
      : { ok: false, detail: `curl ${name}: ${page.stderr.trim()}` };
  }

  async workerStatus(): Promise<string[][]> {
    const rows = [["WORKER", "AZ", "DNS RUNNER", "ROUTE CARRIER", "BEAKER BY NAME"]];
    const carriers = await this.carriers();
    for (const s of workerSubnets(this.id)) {
      const reach = await this.reachBeaker(s.az);
      rows.push([
        s.workerHost,
        s.az,
        this.state.workerOwners[s.az] ?? "-",
        carriers.get(s.az) ?? "-",
        reach.detail,
      ]);
    }
    return rows;
  }

  /** The live runners, in launch order. */
  liveRunners(): { instanceId: string; az: string; name: string; credential: string | undefined }[] {
    return this.state.runners
      .filter((r) => r.state !== "terminated")
      .map((r) => ({
        instanceId: r.instanceId,
        az: r.az,
        name: `${r.az.slice(-1)}${r.n}`,
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
