// `npm run lab` as a newcomer meets it, before any lab is up: what it says about typos, about a lab that is
// in the way, and about taking down a lab that is not there. The real CLI, in a folder of its own.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const TSX = new URL("../../node_modules/.bin/tsx", import.meta.url).pathname;
const CLI = new URL("../../functions/cli/lab.ts", import.meta.url).pathname;
let dir = "";

const lab = (...args: string[]) => {
  const out = spawnSync(TSX, [CLI, ...args], {
    env: { ...process.env, LABGATE_LAB_DIR: dir },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: out.status, stdout: out.stdout, stderr: out.stderr };
};

beforeEach(() => {
  dir = join(mkdtempSync(join(tmpdir(), "labgate-cli-")), "lab");
});
afterEach(() => rmSync(join(dir, ".."), { recursive: true, force: true }));

describe("npm run lab, without a lab", { timeout: 120_000 }, () => {
  it("names an unknown command as such (exit 2), not as a lab that is not up", () => {
    const out = lab("stauts");
    expect(out.code).toBe(2);
    expect(out.stderr).toContain("unknown command stauts");
    expect(out.stderr).not.toContain("no lab is up");
  });

  it("names a bad runner name as such (exit 2)", () => {
    const out = lab("kill", "z1");
    expect(out.code).toBe(2);
    expect(out.stderr).toContain("no AZ z");
    expect(out.stderr).not.toContain("no lab is up");
  });

  it("takes down a lab that is not there, twice, successfully", () => {
    for (let i = 0; i < 2; i++) {
      const out = lab("down");
      expect(out.code).toBe(0);
      expect(out.stdout).toContain("nothing to take down");
    }
    expect(existsSync(dir)).toBe(false);
  });

  it("says a lab is already up before saying it brings one up", () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, "state.json"),
      JSON.stringify({ version: 3, phase: "up", owner: undefined, netns: { namespaces: [] } }),
    );
    const out = lab("up");
    expect(out.code).toBe(1);
    expect(out.stderr).toContain("a lab is already up");
    expect(out.stdout).not.toMatch(/bringing/);
  });

  it("says a bring-up was interrupted and that down removes what it left", () => {
    mkdirSync(dir, { recursive: true });
    const netns = {
      id: "x",
      namespaces: ["lgvx"],
      pids: [],
      pidFiles: [],
      createdMountPoints: [],
      hosts: [],
    };
    writeFileSync(
      join(dir, "state.json"),
      JSON.stringify({ version: 3, phase: "bringing-up", owner: { pid: 1, startTime: "-1" }, netns }),
    );
    for (const command of ["up", "status"]) {
      const out = lab(command);
      expect(out.code).toBe(1);
      expect(out.stderr).toMatch(/bring-up was interrupted and left 1 namespace.*npm run lab -- down/);
    }
  });
});
