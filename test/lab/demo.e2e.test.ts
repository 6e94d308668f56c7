// The README's demo, run as written: its `sh` block is read from README.md (so the two cannot drift) and
// each line is run as the real `npm run lab` command. Every command must succeed, do what its comment says,
// and print a lab whose tables tell the truth: a healthy runner's alarm is OK and its tunnel working, a cut
// tunnel is not shown working, a terminated runner holds no credential, and `down` leaves nothing.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { missingPrograms } from "../../functions/local/hosts.ts";
import { netnsUnavailableReason, run } from "../../functions/local/netns.ts";

const skipReason = netnsUnavailableReason();
if (skipReason && process.env.CI === "true") throw new Error(`the demo test cannot run in CI: ${skipReason}`);
if (skipReason) console.warn(`SKIPPED README demo test: ${skipReason}`);

const ROOT = new URL("../..", import.meta.url).pathname;

/** The commands of the README's demo block, without their comments. */
const demoCommands = (readme: string): string[] => {
  const section = readme.split(/^### The demo$/m)[1];
  const block = section && /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  if (!block) throw new Error("README.md has no sh block under ### The demo");
  return block
    .split("\n")
    .map((l) => l.replace(/#.*$/, "").trim())
    .filter(Boolean);
};

interface Row {
  readonly [column: string]: string;
}

/** The runner table a command printed (the one whose header starts with RUNNER), as rows by column. */
const runnerTable = (stdout: string): Row[] => {
  const lines = stdout.split("\n");
  const start = lines.findIndex((l) => l.startsWith("RUNNER "));
  if (start < 0) throw new Error(`no runner table in:\n${stdout}`);
  const header = (lines[start] as string).split(/\s{2,}/);
  const rows: Row[] = [];
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith("i-")) break;
    const cells = line.split(/\s{2,}/);
    rows.push(Object.fromEntries(header.map((h, i) => [h, cells[i] ?? ""])));
  }
  return rows;
};

const carrierOf = (rows: readonly Row[], az: string): Row | undefined =>
  rows.find((r) => r.CARRIES?.includes(`(${az})`));

describe.skipIf(skipReason !== undefined)("the README's demo", { timeout: 600_000 }, () => {
  const dir = join(mkdtempSync(join(tmpdir(), "labgate-demo-")), "lab");
  const lab = (args: readonly string[]) => {
    const started = performance.now();
    const out = spawnSync("npm", ["run", "-s", ...args], {
      cwd: ROOT,
      env: { ...process.env, LABGATE_LAB_DIR: dir },
      encoding: "utf8",
      timeout: 300_000,
    });
    return { ...out, seconds: (performance.now() - started) / 1000 };
  };

  afterAll(() => {
    if (existsSync(join(dir, "state.json"))) lab(["lab", "--", "down"]);
    rmSync(join(dir, ".."), { recursive: true, force: true });
  }, 120_000);

  it("runs as written, each command doing what it says", async () => {
    expect(await missingPrograms(), "missing for the lab (see .ci/apt-packages.txt)").toEqual([]);
    const commands = demoCommands(readFileSync(join(ROOT, "README.md"), "utf8"));
    expect(commands[0]).toBe("npm run lab");
    expect(commands.at(-1)).toBe("npm run lab -- down");

    let rows: Row[] = [];
    let labId = "";
    for (const command of commands) {
      const [npm, verb, ...args] = command.split(/\s+/);
      expect([npm, verb], command).toEqual(["npm", "run"]);
      const out = lab(args);
      const said = `${command} (exit ${out.status}, ${out.seconds.toFixed(1)} s):\n${out.stdout}\n${out.stderr}`;
      console.log(said);
      expect(out.status, said).toBe(0);
      expect(out.stderr, said).not.toMatch(/^lab: /m);
      const [, , what, target] = args; // lab -- <what> <target>
      const before = rows;

      if (what === "down") {
        expect(out.stdout).toContain("the lab is down");
        const namespaces = (await run(["ip", "netns", "list"])).stdout;
        expect(namespaces).not.toContain(labId);
        expect(readFileSync("/proc/mounts", "utf8")).not.toContain(labId);
        expect(existsSync(dir)).toBe(false);
        continue;
      }
      rows = runnerTable(out.stdout);
      for (const r of rows) {
        if (r.STATE === "terminated") {
          expect(r, "a terminated runner holds nothing").toMatchObject({
            CREDENTIAL: "-",
            TUNNEL: "-",
            ALARM: "-",
          });
        } else {
          // Every runner reports, as in AWS: its alarm has data, and says what its tunnel does.
          expect(r.ALARM, `${r.NAME}'s alarm`).toMatch(/^(OK|ALARM)$/);
          expect(r.TUNNEL === "working", `${r.NAME}: tunnel ${r.TUNNEL}, alarm ${r.ALARM}`).toBe(
            r.ALARM === "OK",
          );
        }
      }
      if (what === undefined) {
        expect(out.stdout).toContain("the lab is up");
        expect(
          out.stdout.match(/^\[\s*\d+\.\d s\] /gm)?.length,
          "steps printed with their time",
        ).toBeGreaterThan(5);
        labId = /bringing lab foo up in \S+\/(\w+):/.exec(out.stdout)?.[1] ?? "";
        expect(labId).not.toBe("");
        expect(rows.map((r) => [r.STATE, r.ALARM, r.TUNNEL])).toEqual(
          Array(4).fill(["running", "OK", "working"]),
        );
      }
      if (what === "replace" || what === "kill" || what === "cut-tunnel") {
        const az = `eu-local-1${(target as string).slice(-1)}`;
        const old = carrierOf(before, az);
        expect(old, `a runner carried ${az} before ${command}`).toBeDefined();
        const now = rows.find((r) => r.RUNNER === old?.RUNNER);
        const next = carrierOf(rows, az);
        expect(next?.RUNNER, `${az}'s carrier after ${command}`).not.toBe(old?.RUNNER);
        expect(next?.STATE).toBe("running");
        if (what === "cut-tunnel") {
          expect(now).toMatchObject({ STATE: "running", ALARM: "ALARM", CARRIES: "-" });
          expect(now?.TUNNEL).toMatch(/^dead/);
          // Its own watch reported it first (the report moved the routes; the alarm followed).
          expect(now?.REPORT).toMatch(/^down /);
        } else {
          expect(now).toMatchObject({ STATE: "terminated", CREDENTIAL: "-" });
        }
        if (what === "replace") expect(rows.length).toBe(before.length + 1);
      }
      if (what === "status") {
        // Each worker's probe ends within its bound: Beaker's page, or why not. Every worker resolves Beaker,
        // the early ones (started before any failover, from runners since replaced or killed) too.
        const workers = out.stdout.split("\n").filter((l) => /^lg[we][ab]/.test(l));
        expect(workers).toHaveLength(4);
        for (const w of workers) expect(w).toMatch(/beaker stand-in; client=/);
        expect(out.seconds, "status, every probe bounded").toBeLessThan(9);
      }
    }
  });
});
