// Hosts in network namespaces, for the end-to-end tests and the local lab, on the real programs: each host is
// a network namespace with its own long-lived mount namespace (so that bind mounts give it private /etc,
// /run... folders), and every process started is remembered by pid and stopped at the end, even on failure.
// The record of what was created can be saved and restored, so that a later process (`npm run lab -- down`)
// stops what an earlier one started; a name is recorded before it is created and a pid as soon as it exists,
// so that a record saved on every change (onChange) covers whatever an interruption leaves behind.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { platform } from "node:os";

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly input?: string;
  /** Kill the command after this long (default 60 s). */
  readonly timeoutMs?: number;
  /** Reject when the command exits non-zero (default true). */
  readonly check?: boolean;
  /** Kill the command (SIGTERM) and reject with InterruptedError when this aborts. */
  readonly signal?: AbortSignal;
}

export class CommandError extends Error {
  override name = "CommandError";
}

/** The work was interrupted (Ctrl-C): not worth retrying, whatever it was. */
export class InterruptedError extends Error {
  override name = "InterruptedError";
}

/** Runs a program (no shell) and collects its output; bounded in time. */
export const run = (argv: readonly string[], options: RunOptions = {}): Promise<RunResult> => {
  const [program, ...args] = argv;
  if (program === undefined) throw new CommandError("empty command");
  const timeoutMs = options.timeoutMs ?? 60_000;
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(new InterruptedError(`${argv.join(" ")}: interrupted`));
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, {
      env: options.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
      ...(signal && { signal }),
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (cause) => {
      clearTimeout(timer);
      if (signal?.aborted) reject(new InterruptedError(`${argv.join(" ")}: interrupted`, { cause }));
      else reject(new CommandError(`${argv.join(" ")}: ${cause.message}`, { cause }));
    });
    child.on("close", (code, killedBy) => {
      clearTimeout(timer);
      const result = { code, stdout, stderr };
      if (signal?.aborted) {
        reject(new InterruptedError(`${argv.join(" ")}: interrupted`));
      } else if ((options.check ?? true) && code !== 0) {
        const why = killedBy ? `killed by ${killedBy} (timeout ${timeoutMs} ms?)` : `exited ${code}`;
        reject(new CommandError(`${argv.join(" ")} ${why}\nstdout: ${stdout}\nstderr: ${stderr}`));
      } else {
        resolve(result);
      }
    });
    // A command may exit without reading its input.
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input ?? "");
  });
};

/**
 * Polls `condition` until it returns true or the deadline passes; throws naming what it waited for. An
 * interruption ends the wait at once.
 */
export const waitFor = async (
  what: string,
  condition: () => Promise<boolean> | boolean,
  { timeoutMs = 20_000, intervalMs = 200 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await condition()) return;
    } catch (error) {
      if (error instanceof InterruptedError) throw error;
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
};

/** Why namespace tests cannot run here, or undefined when they can. */
export const netnsUnavailableReason = (): string | undefined => {
  if (platform() !== "linux") return `needs Linux network namespaces (this is ${platform()})`;
  if (process.getuid?.() !== 0) return "needs root (network namespaces, iptables, NetworkManager)";
  if (!existsSync("/dev/net/tun")) return "needs /dev/net/tun";
  return undefined;
};

const pidsOf = (text: string): number[] =>
  text
    .split(/\s+/)
    .filter((w) => /^\d+$/.test(w))
    .map(Number);

/** Every descendant of the given pids, from /proc (children first listed after their parent). */
const descendants = (roots: readonly number[]): number[] => {
  const parent = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parent.set(Number(entry), ppid);
    } catch {
      // The process exited meanwhile.
    }
  }
  const found: number[] = [];
  const queue = [...roots];
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    for (const [child, ppid] of parent) {
      if (ppid === pid && !found.includes(child)) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
};

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Stops processes and all their descendants: `signal`, then SIGKILL for those still there after 5 s. */
const stopPids = async (pids: readonly number[], signal: NodeJS.Signals = "SIGTERM"): Promise<void> => {
  const roots = [...new Set(pids)];
  const all = [...new Set([...roots, ...descendants(roots)])].filter((p) => p !== process.pid);
  for (const pid of all) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
  // SIGKILL cannot be caught: nothing to wait for (and a killed orphan may linger as a zombie a while).
  if (signal === "SIGKILL") return;
  await waitFor("the processes to exit", () => all.every((p) => !alive(p)), { timeoutMs: 5_000 }).catch(
    () => {
      for (const pid of all.filter(alive)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
    },
  );
};

/** A host: a network namespace plus a mount namespace held open by a sleeping process. */
export class Host {
  private readonly bound: string[] = [];

  constructor(
    readonly net: NetnsWorld,
    readonly name: string,
    readonly holderPid: number,
  ) {}

  /** The argv prefix that enters this host's mount and network namespaces. */
  enter(argv: readonly string[]): string[] {
    return ["nsenter", `--target=${this.holderPid}`, "--mount", "--net", "--", ...argv];
  }

  exec(argv: readonly string[], options?: RunOptions): Promise<RunResult> {
    return this.net.run(this.enter(argv), options);
  }

  /** Bind-mounts a folder or file of the test over a system path, in this host only. */
  async bind(source: string, target: string): Promise<void> {
    this.net.ensureMountPoint(target, existsSync(source) && !readdirSafe(source) ? "file" : "dir");
    await this.exec(["mount", "--bind", source, target]);
    // Never let a test write to the machine's own paths because a mount silently did not happen.
    await this.exec(["mountpoint", "-q", target]);
    this.bound.push(target);
  }

  /**
   * The bind mounts of this host that are gone: another run on this machine that removes a folder this host
   * binds over detaches the mount, and what this host wrote there since went to the machine's own path.
   */
  async lostMounts(): Promise<string[]> {
    const lost: string[] = [];
    for (const target of this.bound)
      if ((await this.exec(["mountpoint", "-q", target], { check: false })).code !== 0) lost.push(target);
    return lost;
  }

  /** Starts a long-running program in this host (it must stay in the foreground); remembers its pid. */
  start(argv: readonly string[], logFile: string, env?: NodeJS.ProcessEnv): number {
    return this.net.startProcess(this.enter(argv), logFile, env);
  }
}

const readdirSafe = (path: string): string[] | undefined => {
  try {
    return readdirSync(path);
  } catch {
    return undefined;
  }
};

/**
 * The namespaces and processes of one test run. Names are unique per run (a short random id), and stopAll()
 * undoes everything by pid and by name of what this run created, never by program name.
 */
export interface NetnsRecord {
  readonly id: string;
  readonly namespaces: readonly string[];
  readonly pids: readonly number[];
  readonly pidFiles: readonly string[];
  readonly hosts: readonly { readonly name: string; readonly holderPid: number }[];
}

export class NetnsWorld {
  readonly id: string;
  /** Called after every change of the record (a namespace about to be made, a process started...). */
  onChange: () => void = () => undefined;
  private readonly interruption = new AbortController();
  /** Commands run through this world and not finished yet. */
  private readonly running = new Set<Promise<RunResult>>();
  private readonly namespaces: string[] = [];
  private readonly pids: number[] = [];
  private readonly children: ChildProcess[] = [];
  private readonly pidFiles: string[] = [];
  private readonly hosts = new Map<string, Host>();

  constructor(id: string = randomBytes(2).toString("hex")) {
    this.id = id;
    // Every command in flight listens to it: many at once are normal here, not a leak.
    setMaxListeners(200, this.interruption.signal);
  }

  /** What this world created, to stop it from another process later. */
  record(): NetnsRecord {
    return {
      id: this.id,
      namespaces: [...this.namespaces],
      pids: [...this.pids],
      pidFiles: [...this.pidFiles],
      hosts: [...this.hosts.values()].map((h) => ({ name: h.name, holderPid: h.holderPid })),
    };
  }

  static restore(record: NetnsRecord): NetnsWorld {
    const world = new NetnsWorld(record.id);
    world.namespaces.push(...record.namespaces);
    world.pids.push(...record.pids);
    world.pidFiles.push(...record.pidFiles);
    for (const h of record.hosts) world.hosts.set(h.name, new Host(world, h.name, h.holderPid));
    return world;
  }

  /**
   * Stops this world's work: its running commands are killed, and whatever it is asked to run or start
   * from now on fails with InterruptedError (stopAll still undoes everything).
   */
  interrupt(): void {
    this.interruption.abort();
  }

  get interrupted(): boolean {
    return this.interruption.signal.aborted;
  }

  /** Runs a command as part of this world's work: interrupt() kills it. */
  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const running = run(argv, { ...options, signal: this.interruption.signal });
    this.running.add(running);
    const forget = () => this.running.delete(running);
    running.then(forget, forget);
    return running;
  }

  host(name: string): Host {
    const host = this.hosts.get(name);
    if (!host) throw new CommandError(`no host ${name} in this world`);
    return host;
  }

  /** A name unique to this run: prefix + id (keep it short: interface names are 15 characters at most). */
  unique(prefix: string): string {
    return `${prefix}${this.id}`;
  }

  async addHost(name: string): Promise<Host> {
    if (this.interrupted) throw new InterruptedError(`adding host ${name}: interrupted`);
    // Recorded first: whatever happens next, stopAll deletes it (deleting a namespace never made is harmless).
    this.namespaces.push(name);
    this.onChange();
    await this.run(["ip", "netns", "add", name]);
    await this.run(["ip", "-n", name, "link", "set", "lo", "up"]);
    // ip netns exec gives the namespace's own /sys; unshare keeps a private mount namespace alive.
    const holder = this.startProcess(
      ["ip", "netns", "exec", name, "unshare", "--mount", "--propagation", "private", "sleep", "infinity"],
      "/dev/null",
    );
    await waitFor(`the mount namespace holder of ${name}`, () => {
      try {
        return readlinkSync(`/proc/${holder}/exe`).endsWith("/sleep");
      } catch {
        return false;
      }
    });
    const host = new Host(this, name, holder);
    this.hosts.set(name, host);
    return host;
  }

  /**
   * Stops every process of one host (its namespace's and their descendants) and deletes its namespace;
   * `abrupt` kills them at once (SIGKILL), as when an instance dies, instead of letting them shut down.
   */
  async removeHost(name: string, { abrupt = false }: { abrupt?: boolean } = {}): Promise<void> {
    const host = this.hosts.get(name);
    const inNamespace = pidsOf((await run(["ip", "netns", "pids", name], { check: false })).stdout);
    await stopPids([...inNamespace, ...(host ? [host.holderPid] : [])], abrupt ? "SIGKILL" : "SIGTERM");
    await run(["ip", "netns", "del", name], { check: false });
    this.hosts.delete(name);
    const index = this.namespaces.indexOf(name);
    if (index >= 0) this.namespaces.splice(index, 1);
    this.onChange();
  }

  /** A veth pair between two hosts, addressed and up. */
  async link(
    a: Host,
    aIf: string,
    aCidr: string | undefined,
    b: Host,
    bIf: string,
    bCidr: string | undefined,
  ) {
    await this.run([
      "ip",
      "link",
      "add",
      aIf,
      "netns",
      a.name,
      "type",
      "veth",
      "peer",
      "name",
      bIf,
      "netns",
      b.name,
    ]);
    for (const [host, ifname, cidr] of [
      [a, aIf, aCidr],
      [b, bIf, bCidr],
    ] as const) {
      if (cidr) await this.run(["ip", "-n", host.name, "addr", "add", cidr, "dev", ifname]);
      await this.run(["ip", "-n", host.name, "link", "set", ifname, "up"]);
    }
  }

  startProcess(argv: readonly string[], logFile: string, env?: NodeJS.ProcessEnv): number {
    const [program, ...args] = argv;
    if (program === undefined) throw new CommandError("empty command");
    if (this.interrupted) throw new InterruptedError(`starting ${program}: interrupted`);
    const fd = openSync(logFile, "a");
    const child = spawn(program, args, {
      env: env ?? process.env,
      stdio: ["ignore", fd, fd],
      detached: true,
    });
    closeSync(fd);
    if (child.pid === undefined) throw new CommandError(`could not start ${argv.join(" ")}`);
    child.on("error", () => undefined);
    // Long-lived: it must not keep this process alive (a lab outlives the command that started it).
    child.unref();
    this.children.push(child);
    this.pids.push(child.pid);
    this.onChange();
    return child.pid;
  }

  /** A pid file written by something the test started indirectly (e.g. a restart shim): stopped too. */
  trackPidFile(path: string): void {
    this.pidFiles.push(path);
    this.onChange();
  }

  /**
   * Creates a missing folder to bind over, and leaves it there for good: removing a folder that is a mount
   * point in another run's namespace (another test on this machine) detaches that mount (Linux >= 3.18), and
   * that run would then write into the machine's own /etc.
   */
  ensureMountPoint(path: string, kind: "dir" | "file"): void {
    if (existsSync(path)) return;
    if (kind === "file") throw new CommandError(`mount point ${path} does not exist`);
    mkdirSync(path, { recursive: true });
  }

  /**
   * Stops every process this run started (and their descendants, and anything left in its namespaces),
   * after interrupting its work in flight, so that nothing is created behind its back.
   */
  async stopAll(): Promise<void> {
    this.interrupt();
    await Promise.allSettled([...this.running]);
    const fromFiles = this.pidFiles.flatMap((f) => (existsSync(f) ? pidsOf(readFileSync(f, "utf8")) : []));
    const inNamespaces: number[] = [];
    for (const ns of this.namespaces) {
      const r = await run(["ip", "netns", "pids", ns], { check: false });
      inNamespaces.push(...pidsOf(r.stdout));
    }
    await stopPids([...this.pids, ...fromFiles, ...inNamespaces]);
    for (const ns of this.namespaces.splice(0)) await run(["ip", "netns", "del", ns], { check: false });
  }
}
