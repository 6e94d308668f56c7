// The tunnel watch, run for real by bash against a scripted tunnel: stub nmcli, ip and dig answer as a runner
// whose probes succeed or fail in a given order, a stub aws records the reports, and sleep is skipped so
// that a minute of probes takes a moment (the real programs and timing: test/e2e/runner.e2e.test.ts). What it must show: the hysteresis (a verdict only after enough
// probes in a row, so one or two lost replies report nothing), each change reported once, and a report that
// could not be written tried again.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TUNNEL_TAG, TUNNEL_WATCH } from "../../functions/core/names.ts";
import { parseTunnelReport } from "../../functions/core/tunnel-report.ts";
import { renderWatchScript, renderWatchService } from "../../functions/render/index.ts";
import { labs } from "../../infra/labs.ts";

const [, bar] = labs;
if (bar?.name !== "bar") throw new Error("infra/labs.ts must list bar second");
const INSTANCE = "i-0123456789abcdef0";
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/**
 * Runs the watch until its probes run out: `probes` is one character per probe, `o` the lab's DNS answers, `x`
 * it does not. `failWrites` reports fail before one is written. Returns the reports written and the log. The
 * stubs are bash functions (BASH_ENV), which win over the programs of the PATH the script sets itself.
 */
const watch = (probes: string, { failWrites = 0 } = {}) => {
  const dir = mkdtempSync(join(tmpdir(), "labgate-watch-"));
  dirs.push(dir);
  writeFileSync(join(dir, "probes"), probes.split("").join("\n"));
  writeFileSync(join(dir, "fail-writes"), String(failWrites));
  writeFileSync(
    join(dir, "stubs.sh"),
    `nmcli() { echo activated; }
ip() {
  case "$*" in
    "link show dev tun-bar up") echo "9: tun-bar: <POINTOPOINT,UP,LOWER_UP> mtu 1500" ;;
    "-4 route get "*) echo "$4 dev tun-bar src 172.30.0.2 uid 0" ;;
    *) return 1 ;;
  esac
}
# Each probe takes the next outcome; when none is left, the watch is over.
dig() {
  local f=${dir}/probes next
  [[ -s $f ]] || exit 0
  next=$(head -n 1 "$f")
  tail -n +2 "$f" >"$f.rest" && mv "$f.rest" "$f"
  [[ $next == o ]]
}
aws() {
  local n
  n=$(cat ${dir}/fail-writes)
  if ((n > 0)); then
    echo $((n - 1)) >${dir}/fail-writes
    echo "An error occurred (RequestLimitExceeded) when calling the CreateTags operation" >&2
    return 254
  fi
  printf '%s\\n' "$*" >>${dir}/aws.log
}
sleep() { :; }
`,
  );
  const result = spawnSync("bash", ["-c", renderWatchScript(bar, INSTANCE)], {
    env: { PATH: process.env.PATH, BASH_ENV: join(dir, "stubs.sh"), AWS_DEFAULT_REGION: "eu-central-1" },
    // Not a socket on stdin (node's pipes are): Debian's bash would take itself for sshd's and read ~/.bashrc
    // instead of BASH_ENV.
    stdio: ["ignore", "pipe", "pipe"],
    encoding: "utf8",
    timeout: 30_000,
  });
  expect(result.error).toBeUndefined();
  let calls: string[] = [];
  try {
    calls = readFileSync(join(dir, "aws.log"), "utf8").trim().split("\n");
  } catch {
    // No report was written.
  }
  const reports = calls.map((c) => {
    expect(c).toContain(`ec2 create-tags --resources ${INSTANCE} `);
    const value = new RegExp(`--tags Key=${TUNNEL_TAG},Value=(\\S+ \\S+) `).exec(c)?.[1];
    return parseTunnelReport(value)?.state;
  });
  return { reports, log: result.stdout + result.stderr };
};

describe("the tunnel watch", () => {
  const { downAfter, upAfter } = TUNNEL_WATCH;
  const ok = (n: number) => "o".repeat(n);
  const ko = (n: number) => "x".repeat(n);

  it(`reports up only after ${upAfter} good probes in a row, then nothing while the tunnel stays up`, () => {
    expect(watch(ok(upAfter - 1)).reports).toEqual([]);
    expect(watch(ok(upAfter)).reports).toEqual(["up"]);
    expect(watch(ok(upAfter + 20)).reports).toEqual(["up"]);
  });

  it(`reports down after ${downAfter} failed probes in a row, and only then`, () => {
    const { reports, log } = watch(ok(upAfter) + ko(downAfter) + ko(10));
    expect(reports).toEqual(["up", "down"]);
    expect(log).toContain(`probe failed (${downAfter} in a row; down after ${downAfter})`);
    // Quiet while the tunnel stays down: failures are logged up to the verdict only.
    expect(log).not.toContain(`probe failed (${downAfter + 1} in a row`);
  });

  it(`reports nothing for up to ${downAfter - 1} lost replies in a row, however often they come`, () => {
    const blips = `${ok(upAfter)}${`${ko(downAfter - 1)}${ok(1)}`.repeat(5)}${ko(1)}${ok(3)}`;
    const { reports, log } = watch(blips);
    expect(reports).toEqual(["up"]);
    expect(log).toContain("the probe succeeds again after 2 failed");
  });

  it(`reports up again after ${upAfter} good probes in a row, not before`, () => {
    const down = ok(upAfter) + ko(downAfter);
    expect(watch(down + ok(upAfter - 1) + ko(1) + ok(upAfter - 1)).reports).toEqual(["up", "down"]);
    expect(watch(down + ok(upAfter)).reports).toEqual(["up", "down", "up"]);
  });

  it("tries a report that could not be written again after the next probe, until it is", () => {
    const { reports, log } = watch(ok(upAfter) + ko(downAfter + 2), { failWrites: 0 });
    expect(reports).toEqual(["up", "down"]);
    const failing = watch(ok(upAfter + 3), { failWrites: 2 });
    expect(failing.reports).toEqual(["up"]);
    expect(failing.log.match(/could not report the tunnel up/g)).toHaveLength(2);
    expect(log).not.toContain("could not report");
  });

  it("runs as a service that systemd restarts", () => {
    const unit = renderWatchService(bar);
    expect(unit).toContain("ExecStart=/usr/local/sbin/labgate-watch-bar\n");
    expect(unit).toContain("Restart=always\n");
  });
});
