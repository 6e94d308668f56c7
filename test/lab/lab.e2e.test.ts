// The lab in a box, end to end: labgate's unchanged core and reconcile loop on the local provider, real
// NetworkManager/OpenVPN/iptables/systemd-resolved runners, workers pinging Beaker and looking its name up, and
// the failover scenarios an operator can play with `npm run lab`, each played on the runner that spawned the
// worker measured. Timings are measured by `npm run bench:failover`; this test asserts behaviour: reachability
// by name (also of the workers started before any failover), no packet or lookup lost on a planned
// replacement, lookups back after an unplanned one, credentials never shared.
import { existsSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eligibility } from "../../functions/core/plan.ts";
import { missingPrograms } from "../../functions/local/hosts.ts";
import { LocalLab } from "../../functions/local/lab/lab.ts";
import { explainLosses, playScenario, type ScenarioResult } from "../../functions/local/lab/scenarios.ts";
import { AZS, BEAKER_IP, credentialServer, hostNames } from "../../functions/local/lab/topology.ts";
import { netnsUnavailableReason, run } from "../../functions/local/netns.ts";
import { clientsOf, startListener } from "../../functions/local/probes.ts";
import { labObservability } from "../../functions/reconcile/observability.ts";

const skipReason = netnsUnavailableReason();
if (skipReason && process.env.CI === "true") throw new Error(`the lab test cannot run in CI: ${skipReason}`);
if (skipReason) console.warn(`SKIPPED lab in a box test: ${skipReason}`);

describe.skipIf(skipReason !== undefined)("the lab in a box", { timeout: 240_000 }, () => {
  const dir = `/tmp/labgate-lab-test-${process.pid}`;
  const resolvConf = readFileSync("/etc/resolv.conf", "utf8");
  let lab: LocalLab | undefined;

  const up = (): LocalLab => {
    if (!lab) throw new Error("the lab did not come up");
    return lab;
  };

  /** No credential is used by two running tunnels, and every running tunnel uses the credential leased to it. */
  const expectCredentialsUnshared = async (): Promise<void> => {
    const tunnels = await up().liveTunnels();
    const used = [...tunnels.values()];
    expect(new Set(used).size).toBe(used.length);
    for (const r of up().liveRunners()) {
      if (tunnels.has(r.instanceId)) expect(tunnels.get(r.instanceId)).toBe(r.credential);
    }
  };

  const observability = labObservability("foo", { quiet: true });
  // A bring-up that times out goes on in the background: it is interrupted, and whatever it made comes down.
  const bringUp = new AbortController();
  let bringingUp: Promise<LocalLab> | undefined;

  beforeAll(async () => {
    const missing = await missingPrograms();
    if (missing.length > 0)
      throw new Error(`missing for the lab (see .ci/apt-packages.txt): ${missing.join(", ")}`);
    process.env.POWERTOOLS_METRICS_DISABLED = "true";
    bringingUp = LocalLab.up(dir, observability, { signal: bringUp.signal });
    lab = await bringingUp;
  }, 300_000);

  afterAll(async () => {
    if (lab) return lab.down();
    bringUp.abort();
    await bringingUp?.catch(() => undefined);
    await LocalLab.down(dir, observability);
  }, 120_000);

  it("sets every runner up through its launch hook and routes each worker subnet to a runner of its AZ", async () => {
    const runners = up().liveRunners();
    expect(runners).toHaveLength(4);
    expect(new Set(runners.map((r) => r.credential)).size).toBe(4);
    for (const az of AZS) {
      const carrier = await up().carrier(az);
      expect(runners.find((r) => r.instanceId === carrier)?.az).toBe(az);
      expect(await up().reachBeaker(az)).toMatchObject({ ok: true });
    }
    await expectCredentialsUnshared();
  });

  /** The credentials of the pool that no live runner holds. */
  const freeCredentials = (): string[] => {
    const held = new Set(
      up()
        .liveRunners()
        .map((r) => r.credential),
    );
    return up().lab.vpn.credentials.filter((c) => !held.has(c));
  };

  /** Make before break, reconcile by reconcile: the new runner is in service before the old one's routes move. */
  const REPLACE_ACTIONS = [
    // The plan decides leases first (a setup's rollout needs them: functions/core/plan.ts).
    "lifecycle launch …: lease-credential, disable-source-dest-check, push-setup",
    "command … success: record-command, complete-lifecycle, put-health-alarm",
    // The new alarm's state (INSUFFICIENT_DATA until the runner reports) is kept in the store.
    "group activity: launch of … successful: record-health",
    // The intranet's route and the DNS service address's move together.
    "lifecycle terminate …: replace-route, replace-route, stop-vpn",
    "command … success: record-command, release-credential, complete-lifecycle",
    "instance … terminated: forget-runner, delete-health-alarms",
  ];

  const expectNoLoss = (result: ScenarioResult): void => {
    for (const p of result.pings) {
      expect(p.judged).toBeGreaterThan(20);
      expect(p.lost, `pings lost by the worker of ${p.az}\n${explainLosses(result)}`).toBe(0);
    }
    for (const l of result.lookups) {
      expect(l.sent).toBeGreaterThan(20);
      expect(l.failed, `lookups failed on the worker of ${l.az}\n${explainLosses(result)}`).toBe(0);
    }
  };

  /** The job worker's lookups came back after the repair, and every worker, early ones too, resolves now. */
  const expectResolvingAfter = (result: ScenarioResult): void => {
    expect(result.lookupsBackSeconds, explainLosses(result)).toBeDefined();
    expect(Number.isFinite(result.lookupsBackSeconds), explainLosses(result)).toBe(true);
    expect(result.reachedBeakerByName).toBe(true);
    expect(result.earlyWorkersResolve).toBe(true);
  };

  it("replaces the runner that spawned the worker without losing a packet or a lookup, and frees its credential", async () => {
    const before = up().liveRunners();
    const result = await playScenario(up(), "replace", "eu-local-1a", "test-replace-a");
    expectNoLoss(result);
    expect(result.reachedBeakerByName).toBe(true);
    expect(result.earlyWorkersResolve).toBe(true);
    expect(result.actions).toEqual(REPLACE_ACTIONS);
    const freed = before.find((r) => r.instanceId === result.runner)?.credential;
    expect(freed).toBeDefined();
    expect(freeCredentials()).toContain(freed);
    expect(
      up()
        .liveRunners()
        .some((r) => r.instanceId === result.runner),
    ).toBe(false);
    await expectCredentialsUnshared();
  });

  it("gives a free credential to the runner it launches, and replaces a runner of the other AZ the same way", async () => {
    const before = new Set(
      up()
        .liveRunners()
        .map((r) => r.instanceId),
    );
    const free = freeCredentials();
    expect(free.length).toBeGreaterThan(0);
    const result = await playScenario(up(), "replace", "eu-local-1b", "test-replace-b");
    const fresh = up()
      .liveRunners()
      .find((r) => !before.has(r.instanceId));
    expect(free).toContain(fresh?.credential);
    expectNoLoss(result);
    expect(result.reachedBeakerByName).toBe(true);
    expect(result.earlyWorkersResolve).toBe(true);
    expect(result.actions).toEqual(REPLACE_ACTIONS);
    await expectCredentialsUnshared();
  });

  it("moves the route off a runner that dies without warning; the group's replacement joins without a flap", async () => {
    const result = await playScenario(up(), "kill", "eu-local-1b", "test-kill-b");
    expect(result.eventToRepairSeconds).toBeDefined();
    expect(await up().carrier("eu-local-1b")).not.toBe(result.runner);
    expect(result.actions[0]).toMatch(/terminated: replace-route/);
    // The replacement launched afterwards takes no route away from a runner that works.
    expect(result.actions.slice(1).join(" ")).not.toMatch(/-route/);
    expectResolvingAfter(result);
    await expectCredentialsUnshared();
  });

  it("moves the routes off a runner whose tunnel died while it lives, on its own watch's report, before its alarm", async () => {
    const result = await playScenario(up(), "cut-tunnel", "eu-local-1a", "test-cut-a");
    expect(result.actions).toEqual([
      // The report alone moves both routes; the alarm (3 reports of 10 s in AWS) never had to. Once the tunnel
      // is restored, the watch reports up (no action) and the routes stay where they are.
      "tunnel report … down: replace-route, replace-route",
    ]);
    expect(result.faultToReportSeconds).toBeDefined();
    expect(await up().carrier("eu-local-1a")).not.toBe(result.runner);
    expectResolvingAfter(result);
    for (const az of AZS) expect(await up().reachBeaker(az)).toMatchObject({ ok: true });
    await expectCredentialsUnshared();
  });

  it("rotates the key of the runner carrying AZ b's route without losing a packet: drained, stopped, given another key", async () => {
    const before = up().liveRunners();
    const result = await playScenario(up(), "rotate", "eu-local-1b", "test-rotate-b");
    expectNoLoss(result);
    const retired = before.find((r) => r.instanceId === result.runner)?.credential;
    expect(retired).toBeDefined();
    expect(up().lab.vpn.credentials).not.toContain(retired);
    const after = up()
      .liveRunners()
      .find((r) => r.instanceId === result.runner);
    expect(after?.credential).toBeDefined();
    expect(after?.credential).not.toBe(retired);
    // Make before break: the route moved first, then the VPN stopped; the runner came back with another key.
    expect(result.actions).toEqual([
      "configuration deployed: … retired, … added: replace-route, replace-route, stop-vpn",
      "command … success: record-command, release-credential",
      "requeue (… gave its key back: lease it another and set it up again): lease-credential, push-setup",
      "command … success: record-command",
    ]);
    expect(await up().carrier("eu-local-1b")).not.toBe(result.runner);
    expect(result.reachedBeakerByName).toBe(true);
    await expectCredentialsUnshared();
  });

  it("rolls a configuration change that restarts every tunnel out one runner per AZ at a time, without losing a packet", async () => {
    const result = await playScenario(up(), "config-change", "eu-local-1a", "test-config-change");
    expectNoLoss(result);
    expect(result.setupsPending).toBe(0);
    // Two waves of one runner per AZ; each runner carrying routes drained before its tunnel restarted.
    const pushes = result.timeline.filter((e) => e.kind === "command-sent");
    expect(pushes).toHaveLength(4);
    expect(result.findings).not.toContain("rollout-halted");
    expect(result.reachedBeakerByName).toBe(true);
    await expectCredentialsUnshared();
  });

  it("halts a bad configuration's rollout at the first failures, the lab reachable with one runner per AZ out, and recovers on the fix", async () => {
    const result = await playScenario(up(), "bad-config", "eu-local-1a", "test-bad-config");
    expectNoLoss(result);
    expect(result.findings).toContain("rollout-halted");
    expect(result.outOfServiceByAz).toEqual({ "eu-local-1a": 1, "eu-local-1b": 1 });
    // The fix was deployed at the end of the scenario: every runner works again.
    const world = await up().observe();
    expect([...eligibility(world, up().lab).values()].every((why) => why === undefined)).toBe(true);
    expect(result.reachedBeakerByName).toBe(true);
  });

  it("refuses the lab's side a connection into a worker through its runner's tunnel (FORWARD policy ACCEPT, no Docker)", async () => {
    const az = AZS[0];
    const carrier = await up().carrier(az);
    const credential = (await up().liveTunnels()).get(carrier ?? "");
    const index = up().lab.vpn.credentials.indexOf(credential ?? "") + 1;
    expect(index).toBeGreaterThan(0);
    const { host: worker, spec } = up().worker(az);
    const listener = await startListener(worker, up().dir, "worker-port", "0.0.0.0", 8022);
    // From Beaker's address (the worker subnet's route table sends replies to it through the carrier), over
    // the carrier's own tunnel.
    const labSide = ["ip", "netns", "exec", hostNames(up().id).lab];
    await run([...labSide, "ip", "rule", "add", "from", BEAKER_IP, "lookup", "300"]);
    await run([
      ...labSide,
      "ip",
      "route",
      "add",
      spec.cidr,
      "dev",
      credentialServer(index).tun,
      "table",
      "300",
    ]);
    const url = `http://${spec.workerIp}:8022/`;
    const attempt = await run([...labSide, "curl", "-sS", "--max-time", "3", "--interface", BEAKER_IP, url], {
      check: false,
    });
    expect(attempt.code).not.toBe(0);
    expect(clientsOf(listener)).toEqual([]);
    expect(await up().reachBeaker(az)).toMatchObject({ ok: true });
  });

  it("stops everything it started and leaves the machine's own files alone", async () => {
    const id = up().id;
    await up().down();
    lab = undefined;
    const namespaces = (await run(["ip", "netns", "list"])).stdout;
    expect(namespaces).not.toContain(id);
    expect(existsSync(`${dir}/state.json`)).toBe(false);
    expect(readFileSync("/etc/resolv.conf", "utf8")).toBe(resolvConf);
  });
});
