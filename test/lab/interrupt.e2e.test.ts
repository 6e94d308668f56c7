// Ctrl-C during `npm run lab`: the real command, interrupted at a few moments of its bring-up, then `down`
// (twice) must leave no namespace, process or mount of that lab. What the lab made is read from its own state
// file at the moment of the interrupt: the namespaces, the processes it started (and those running in its
// namespaces), the mount points.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { missingPrograms } from "../../functions/local/hosts.ts";
import { netnsUnavailableReason, run, waitFor } from "../../functions/local/netns.ts";

const skipReason = netnsUnavailableReason();
if (skipReason && process.env.CI === "true")
  throw new Error(`the lab interrupt test cannot run in CI: ${skipReason}`);
if (skipReason) console.warn(`SKIPPED lab interrupt test: ${skipReason}`);

const ROOT = new URL("../..", import.meta.url).pathname;

interface Saved {
  readonly owner?: { readonly pid: number };
  readonly netns: {
    readonly id: string;
    readonly namespaces: readonly string[];
    readonly pids: readonly number[];
    readonly pidFiles: readonly string[];
    readonly createdMountPoints: readonly string[];
    readonly hosts: readonly { readonly holderPid: number }[];
  };
}

const startTime = (pid: number): string | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
};

/** Every process of the lab at this moment, with its start time (to tell it from a later one of that pid). */
const processesOf = async (saved: Saved): Promise<Map<number, string>> => {
  const pids = new Set<number>([
    ...saved.netns.pids,
    ...saved.netns.hosts.map((h) => h.holderPid),
    ...saved.netns.pidFiles.flatMap((f) => (existsSync(f) ? [Number(readFileSync(f, "utf8").trim())] : [])),
  ]);
  for (const ns of saved.netns.namespaces) {
    const out = await run(["ip", "netns", "pids", ns], { check: false });
    for (const p of out.stdout.split(/\s+/).filter(Boolean)) pids.add(Number(p));
  }
  const found = new Map<number, string>();
  for (const pid of pids) {
    const t = startTime(pid);
    if (t !== undefined) found.set(pid, t);
  }
  return found;
};

const lab = (dir: string, ...args: string[]) =>
  spawnSync("npm", ["run", "-s", "lab", "--", ...args], {
    cwd: ROOT,
    env: { ...process.env, LABGATE_LAB_DIR: dir },
    encoding: "utf8",
    timeout: 120_000,
  });

/** `npm run lab` in a process group of its own, as a terminal runs it; its output collected as it comes. */
const bringUp = (dir: string) => {
  const child = spawn("npm", ["run", "lab"], {
    cwd: ROOT,
    env: { ...process.env, LABGATE_LAB_DIR: dir },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out = { stdout: "", stderr: "" };
  child.stdout?.on("data", (d: Buffer) => {
    out.stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out.stderr += d.toString();
  });
  // Ctrl-C in a terminal ends npm itself by the signal; a signal to the lab's process alone, with its code.
  const exited = new Promise<string>((resolve) =>
    child.on("exit", (code, signal) => resolve(signal ?? `exit ${code}`)),
  );
  return { child, out, exited };
};

const exitWithin = async (exited: Promise<string>, ms: number): Promise<string> =>
  Promise.race([exited, new Promise<"running">((r) => setTimeout(() => r("running"), ms))]);

const cases: {
  readonly moment: string;
  readonly after: RegExp;
  readonly signal: NodeJS.Signals;
  /** group: Ctrl-C in a terminal (the whole process group); owner: the lab's own process alone. */
  readonly to: "group" | "owner";
}[] = [
  { moment: "once the network exists", after: /\] network: /, signal: "SIGINT", to: "group" },
  { moment: "while runners boot", after: /\] runner \w+ .* booted/, signal: "SIGTERM", to: "owner" },
  {
    moment: "while labgate sets the runners up",
    after: /labgate, on "lifecycle launch/,
    signal: "SIGINT",
    to: "group",
  },
  // Killed outright, it cleans nothing: its state file must name everything it made, for `down`.
  {
    moment: "while labgate sets the runners up",
    after: /labgate, on "lifecycle launch/,
    signal: "SIGKILL",
    to: "owner",
  },
];

describe.skipIf(skipReason !== undefined)("interrupting `npm run lab`", { timeout: 300_000 }, () => {
  for (const c of cases) {
    it(`leaves nothing of the lab after ${c.signal} (${c.to}) ${c.moment} and \`down\` twice`, async () => {
      const missing = await missingPrograms();
      expect(missing, "missing for the lab (see .ci/apt-packages.txt)").toEqual([]);
      const dir = join(mkdtempSync(join(tmpdir(), "labgate-interrupt-")), "lab");
      const { child, out, exited } = bringUp(dir);
      try {
        await waitFor(`"${c.after.source}" in the bring-up's output`, () => c.after.test(out.stdout), {
          timeoutMs: 150_000,
        });
        const saved = JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as Saved;
        const processes = await processesOf(saved);
        expect(saved.netns.namespaces.length).toBeGreaterThan(0);
        expect(processes.size).toBeGreaterThan(0);

        const target = c.to === "group" ? -(child.pid as number) : (saved.owner?.pid as number);
        process.kill(target, c.signal);
        const end = await exitWithin(exited, 90_000);
        if (c.signal === "SIGKILL") {
          expect(end).not.toBe("running");
          expect(existsSync(join(dir, "state.json")), "the state file of the killed bring-up").toBe(true);
        } else {
          expect(end, `npm run lab after ${c.signal}:\n${out.stdout}\n${out.stderr}`).toBe(
            c.to === "group" ? c.signal : "exit 130",
          );
          expect(out.stderr).toContain("interrupted: the bring-up stopped and removed everything it made");
        }

        for (let i = 0; i < 2; i++) {
          const down = lab(dir, "down");
          expect(down.status, `down #${i + 1}: ${down.stdout}${down.stderr}`).toBe(0);
        }

        const namespaces = (await run(["ip", "netns", "list"])).stdout;
        for (const ns of saved.netns.namespaces) expect(namespaces).not.toMatch(new RegExp(`^${ns}\\b`, "m"));
        const alive = [...processes].filter(([pid, t]) => startTime(pid) === t).map(([pid]) => pid);
        expect(alive, "processes of the lab still running").toEqual([]);
        const mounts = readFileSync("/proc/mounts", "utf8")
          .split("\n")
          .filter(
            (l) => saved.netns.namespaces.some((ns) => l.includes(`/run/netns/${ns} `)) || l.includes(dir),
          );
        expect(mounts).toEqual([]);
        // The mount points a run creates on this machine (/etc/labgate...) stay, empty: removing one would
        // detach the bind mounts another run on the machine has on it (functions/local/netns.ts).
        expect(existsSync(dir), `${dir} is left`).toBe(false);
      } finally {
        // Whatever the outcome, nothing of this test stays: its own process group, then the lab.
        if ((await exitWithin(exited, 0)) === "running") {
          try {
            process.kill(-(child.pid as number), "SIGKILL");
          } catch {
            // Gone meanwhile.
          }
        }
        if (existsSync(join(dir, "state.json"))) lab(dir, "down");
        rmSync(join(dir, ".."), { recursive: true, force: true });
      }
    });
  }
});
