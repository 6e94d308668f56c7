// The runner side end to end, on the real programs in network namespaces: a lab (static-key OpenVPN server,
// dnsmasq, a web server standing in for Beaker, and a stand-in for the metadata address beyond the runner's
// Ethernet), a runner as after a reboot (FORWARD policy ACCEPT, no Docker) where the rendered setup runs and
// NetworkManager brings the VPN up and calls the rendered dispatcher, and a worker configured by the rendered
// worker script. Each attack on the gateway is attempted and must be refused, each legitimate path must work:
// the worker resolves through the lab's DNS service address (on the runner's loopback), and the runner's
// tunnel watch reports its tunnel as its probes find it.
// Seams, kept small: a fake `aws` (serves the credential, records metrics) and a `systemctl` shim (restarts
// the host's own systemd-resolved by pid; there is no systemd here). The lab then moves the runner's
// credential from a static key to TLS (a TLS server in the lab's namespace).
import { createHash } from "node:crypto";
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LabConfig, LabConfigSchema } from "../../functions/core/config.ts";
import {
  iptablesChains,
  iptablesComment,
  runnerPaths,
  TUNNEL_TAG,
  TUNNEL_WATCH,
  tunDevice,
} from "../../functions/core/names.ts";
import { parseTunnelReport } from "../../functions/core/tunnel-report.ts";
import {
  type Certificate,
  credentialFile,
  hostEnv,
  makeCertificate,
  makeCredential,
  makeTlsCredential,
  missingPrograms,
  onRunner as onRunnerIn,
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
} from "../../functions/local/hosts.ts";
import { type Host, NetnsWorld, netnsUnavailableReason, run, waitFor } from "../../functions/local/netns.ts";
import {
  clientsOf,
  dnsAnswers,
  httpGet,
  type Listener,
  pings,
  startListener,
} from "../../functions/local/probes.ts";
import {
  gatewayRules,
  renderDispatcher,
  renderRunnerSetup,
  renderStopVpn,
  tunnelOf,
  vpnConnectionUuid,
} from "../../functions/render/index.ts";

const skipReason = netnsUnavailableReason();
if (skipReason && process.env.CI === "true") {
  throw new Error(`the runner end-to-end test cannot run in CI: ${skipReason}`);
}
if (skipReason) console.warn(`SKIPPED runner end-to-end test: ${skipReason}`);

const WORKER_CIDR = "10.1.0.0/24";
const RUNNER_PRIVATE_IP = "10.1.0.1";
const WORKER_IP = "10.1.0.10";
const RUNNER_ETH_IP = "198.18.0.1";
const LAB_ETH_IP = "198.18.0.2";
const BEAKER_IP = "10.200.0.10";
/** The lab's DNS service address: the worker subnet routes it to the runner, which answers it on loopback. */
const SERVICE_IP = "100.64.53.1";
const TUNNEL_LOCAL = "172.30.0.2";
const TUNNEL_REMOTE = "172.30.0.1";
const INSTANCE_ID = "i-0123456789abcdef0";
/** The lab's TLS server: its port, its tunnel network, and the address it gives its first client. */
const TLS_PORT = 1195;
const TLS_NETWORK = "172.31.0.0";
const TLS_CLIENT_ADDRESS = "172.31.0.2";
/** Beyond the runner's Ethernet, as the instance metadata service is: what a worker must never reach. */
const METADATA_IP = "169.254.169.254";
/** A port that something listens on, on the runner and on the worker (sshd, the runner's metrics...). */
const PROBE_PORT = 8022;
/** What an earlier labgate wrote: forwarding turned on at every boot, before any filter. */
const LEGACY_SYSCTL = "90-labgate-forward.conf";

describe.skipIf(skipReason !== undefined)(
  "runner and worker end to end in network namespaces",
  { timeout: 180_000 },
  () => {
    const world = new NetnsWorld();
    const labName = `t${world.id}a`;
    const otherLabName = `t${world.id}b`;
    const domain = `${labName}.example`;
    const credential = `/labgate/${labName}/vpn/client-1`;
    const dir = `/tmp/labgate-e2e-${world.id}`;
    const lab: LabConfig = LabConfigSchema.parse({
      name: labName,
      vpcId: "vpc-0f0000000000f0001",
      intranetCidrs: ["10.200.0.0/16"],
      intranetDomains: [domain],
      dnsServers: [BEAKER_IP],
      runners: { autoScalingGroupName: `${labName}-runners`, instanceRoleName: `${labName}-runner-role` },
      workerSubnets: { ids: ["subnet-0f0000000000a0001"] },
      vpn: { remote: LAB_ETH_IP, credentials: [credential] },
      dnsServiceAddress: SERVICE_IP,
    });
    const otherLab: LabConfig = LabConfigSchema.parse({
      ...lab,
      name: otherLabName,
      intranetDomains: ["other.example"],
      // Its own: a lab that leaves the runner takes its address off it (the labs file refuses two on one).
      dnsServiceAddress: "100.64.53.2",
    });
    const setup = renderRunnerSetup({
      lab,
      instanceId: INSTANCE_ID,
      privateIp: RUNNER_PRIVATE_IP,
      credentialParameter: credential,
      workerCidrs: [WORKER_CIDR],
    });
    const tun = tunDevice(labName);
    const comment = iptablesComment(labName);
    const chains = iptablesChains(labName);
    const paths = runnerPaths(labName);
    // Where the runner's system paths really live (bind mounts inside its mount namespace).
    const runnerRoot = join(dir, "runner");
    const onRunner = (path: string): string => onRunnerIn(runnerRoot, path);

    let labHost: Host;
    let runner: Host;
    let worker: Host;
    let labVpnPid = 0;
    let ethUuid = "";
    let keyLine = "";
    let startLabVpnAgain: () => number = () => 0;
    let server: Certificate;
    let clientCertificate: Certificate;
    // Listeners that record who reached them: on the worker, on the runner (any address), and the metadata
    // stand-in on the lab's public side, which the runner reaches through its Ethernet (default route).
    let onWorker: Listener;
    let onRunnerPort: Listener;
    let metadata: Listener;

    const seams: SeamPaths = {
      shims: join(dir, "shims"),
      credentials: join(dir, "credentials"),
      awsLog: join(dir, "aws.log"),
      tags: join(dir, "tags"),
    };
    const credFile = credentialFile(seams, credential);
    const envFor = (hostDir: string): NodeJS.ProcessEnv => hostEnv(seams, hostDir);
    const runCommand = (host: Host, hostDir: string, name: string, marker: string, script: string) =>
      runCommandScript(host, hostDir, seams, name, marker, script);
    const runSetup = (rendered = setup) =>
      runCommand(
        runner,
        runnerRoot,
        "setup",
        `# labgate lab=${labName} kind=setup hash=${rendered.hash}`,
        rendered.script,
      );
    const dispatch = (action: string, dispatcher: string = paths.dispatcher, lab = labName) =>
      runner.exec([dispatcher, tunDevice(lab), action], {
        env: { ...process.env, CONNECTION_UUID: vpnConnectionUuid(lab) },
        timeoutMs: 30_000,
        check: false,
      });

    const nm = (...args: string[]) => runner.exec(["nmcli", ...args], { check: false });
    const connectionState = async (uuid: string) =>
      (await nm("-g", "GENERAL.STATE", "connection", "show", "uuid", uuid)).stdout.trim();
    /** Every line of the runner's firewall that belongs to a lab: its chains, their rules, the jumps to them. */
    const labRules = async (name: string) =>
      (await runner.exec(["iptables-save"])).stdout
        .split("\n")
        .filter(
          (l) =>
            l.includes(`labgate-${name}-`) ||
            l.includes(`"labgate:${name}"`) ||
            l.includes(`labgate:${name} `),
        );
    const rulesOf = async (chain: string, table = "filter") =>
      (await runner.exec(["iptables", "-t", table, "-S", chain], { check: false })).stdout
        .split("\n")
        .filter((l) => l.startsWith("-A "));
    const forwarding = async () => (await runner.exec(["sysctl", "-n", "net.ipv4.ip_forward"])).stdout.trim();
    const jumpTo = (builtin: string, chain: string) =>
      `-A ${builtin} -m comment --comment "${comment}" -j ${chain}`;
    const gatewayOpen = async () =>
      (await rulesOf(chains.forward)).includes(`-A ${chains.forward} -s ${WORKER_CIDR} -o ${tun} -j ACCEPT`);
    const tunGone = async () => (await runner.exec(["ip", "link", "show", tun], { check: false })).code !== 0;
    const workerReachesBeaker = async () =>
      (await httpGet(worker, `http://beaker.${domain}/`)) === `beaker stand-in; client=${TUNNEL_LOCAL}\n`;
    // The lab's side sends from inside its intranet (Beaker's address), to which the worker subnets' route
    // tables route back through the runner, over its end of the tunnel.
    const labSideRoutesIntoTunnel = async () => {
      await labHost.exec(["ip", "route", "replace", WORKER_CIDR, "dev", "tun0", "table", "200"]);
      await labHost.exec(["ip", "route", "replace", `${SERVICE_IP}/32`, "dev", "tun0", "table", "200"]);
    };
    /** What the runner's tunnel watch reported last (its instance's tag, as the fake aws keeps it). */
    const tunnelReport = () => {
      try {
        return parseTunnelReport(readFileSync(tagFile(seams, INSTANCE_ID, TUNNEL_TAG), "utf8"));
      } catch {
        return undefined;
      }
    };
    /** The watch's output (the systemctl stand-in keeps a service's output beside the runner's files). */
    const watchLog = () => {
      try {
        return readFileSync(join(runnerRoot, `${paths.watchService.split("/").pop()}.log`), "utf8");
      } catch {
        return "";
      }
    };
    /** Drops (or lets through again) the runner's DNS queries into its tunnel: the lab's DNS goes silent. */
    const silenceLabDns = async (silent: boolean) => {
      for (const proto of ["udp", "tcp"])
        await runner.exec(
          ["iptables", silent ? "-I" : "-D", "OUTPUT", "-o", tun, "-p", proto, "--dport", "53", "-j", "DROP"],
          { check: silent },
        );
    };

    /**
     * Everything the setup could change on the runner: its files (every bind-mounted system folder but
     * NetworkManager's own state, which the daemon writes by itself; and resolved's and systemd's /etc), its
     * NetworkManager connections, its iptables rules, forwarding, and the credentials it fetched.
     */
    const runnerState = async () => {
      const files: string[] = [];
      const walk = (dir: string, rel: string) => {
        for (const name of readdirSync(dir).sort()) {
          const path = join(dir, name);
          const st = lstatSync(path);
          const what = st.isSymbolicLink()
            ? `-> ${readlinkSync(path)}`
            : st.isDirectory()
              ? "dir"
              : createHash("sha256").update(readFileSync(path)).digest("hex");
          files.push(`${rel}/${name} ${(st.mode & 0o7777).toString(8)} ${what}`);
          if (st.isDirectory()) walk(path, `${rel}/${name}`);
        }
      };
      for (const bind of readdirSync(join(runnerRoot, "binds"))) {
        if (bind === "_var_lib_NetworkManager" || bind === "_run_NetworkManager") continue;
        walk(join(runnerRoot, "binds", bind), bind);
      }
      walk(join(runnerRoot, "systemd-etc"), "_etc_systemd");
      const connections = (await nm("-t", "-f", "NAME,UUID,TYPE,DEVICE", "connection", "show")).stdout;
      const secondaries = (await nm("-g", "connection.secondaries", "connection", "show", "uuid", ethUuid))
        .stdout;
      const rules = (await runner.exec(["iptables-save"])).stdout
        .split("\n")
        .filter((l) => !l.startsWith("#"))
        .map((l) => l.replace(/\[\d+:\d+\]$/, ""));
      const forwarding = (await runner.exec(["sysctl", "-n", "net.ipv4.ip_forward"])).stdout;
      const fetched = readFileSync(join(dir, "aws.log"), { encoding: "utf8", flag: "a+" })
        .split("\n")
        .filter((l) => l.startsWith("ssm get-parameter"));
      return { files, connections, secondaries, rules, forwarding, fetched };
    };

    beforeAll(async () => {
      const missing = await missingPrograms();
      if (missing.length > 0)
        throw new Error(`missing for the end-to-end test (see .ci/apt-packages.txt): ${missing.join(", ")}`);
      mkdirSync(dir, { recursive: true });
      writeShims(seams);

      labHost = await world.addHost(world.unique("lgl"));
      runner = await world.addHost(world.unique("lgr"));
      worker = await world.addHost(world.unique("lgw"));
      await world.link(worker, "w0", `${WORKER_IP}/24`, runner, "r0", undefined);
      await world.link(runner, "r1", undefined, labHost, "l1", `${LAB_ETH_IP}/24`);
      // The worker subnet's route table, as labgate routes it: the intranet and the DNS service address.
      await run(["ip", "-n", worker.name, "route", "add", "10.200.0.0/16", "via", RUNNER_PRIVATE_IP]);
      await run(["ip", "-n", worker.name, "route", "add", `${SERVICE_IP}/32`, "via", RUNNER_PRIVATE_IP]);

      // The lab: static-key OpenVPN server, DNS for the intranet domain, and "Beaker".
      const labDir = join(dir, "lab");
      mkdirSync(labDir, { recursive: true });
      await run(["ip", "-n", labHost.name, "addr", "add", `${BEAKER_IP}/32`, "dev", "lo"]);
      keyLine = await makeCredential(join(labDir, "static.key"), credFile, {
        local: TUNNEL_LOCAL,
        remote: TUNNEL_REMOTE,
      });
      const startLabVpn = () =>
        startStaticKeyServer(
          labHost,
          {
            tun: "tun0",
            serverIp: TUNNEL_REMOTE,
            clientIp: TUNNEL_LOCAL,
            keyFile: join(labDir, "static.key"),
            cipher: lab.vpn.cipher,
            listen: LAB_ETH_IP,
            port: lab.vpn.port,
          },
          join(labDir, "openvpn.log"),
        );
      labVpnPid = startLabVpn();
      startLabVpnAgain = startLabVpn;
      await startIntranet(labHost, labDir, BEAKER_IP, domain);

      // The metadata stand-in: on the lab host's public side, answering the runner's Ethernet (as the metadata
      // service answers the instance's own network interface). Attacks from the lab's side use table 200.
      await run(["ip", "-n", labHost.name, "addr", "add", `${METADATA_IP}/32`, "dev", "lo"]);
      await labHost.exec(["ip", "rule", "add", "from", METADATA_IP, "lookup", "201"]);
      await labHost.exec(["ip", "route", "add", WORKER_CIDR, "via", RUNNER_ETH_IP, "table", "201"]);
      await labHost.exec(["ip", "rule", "add", "from", BEAKER_IP, "lookup", "200"]);
      metadata = await startListener(labHost, labDir, "metadata", METADATA_IP, 80);

      // The runner: as after a reboot, a private bus, systemd-resolved, NetworkManager managing its Ethernet;
      // a runner set up by an earlier labgate also has forwarding turned on at boot.
      mkdirSync(onRunner("/etc/sysctl.d"), { recursive: true });
      writeFileSync(join(onRunner("/etc/sysctl.d"), LEGACY_SYSCTL), "net.ipv4.ip_forward = 1\n");
      ethUuid = await prepareRunner(world, runner, runnerRoot, seams, [
        { ifname: "r1", name: "eth-r1", cidr: `${RUNNER_ETH_IP}/24`, gateway: LAB_ETH_IP },
        { ifname: "r0", name: "workers-r0", cidr: `${RUNNER_PRIVATE_IP}/24` },
      ]);
      onRunnerPort = await startListener(runner, runnerRoot, "runner-port", "0.0.0.0", PROBE_PORT);

      // The worker: its own bus and systemd-resolved, configured later by the worker script.
      const workerRoot = join(dir, "worker");
      mkdirSync(workerRoot, { recursive: true });
      await startBus(worker, workerRoot);
      await startResolved(world, worker, workerRoot, seams);
      onWorker = await startListener(worker, workerRoot, "worker-port", "0.0.0.0", PROBE_PORT);
      // A CI job may route what it likes to its runner: here, the metadata address and the tunnel's address.
      for (const address of [METADATA_IP, TUNNEL_LOCAL])
        await worker.exec(["ip", "route", "add", `${address}/32`, "via", RUNNER_PRIVATE_IP]);
    }, 120_000);

    const resolvConf = readFileSync("/etc/resolv.conf", "utf8");
    afterAll(async () => {
      // A run whose mounts another run on this machine detached has written to the machine's own paths.
      const lost = [
        ...(runner ? await runner.lostMounts() : []),
        ...(worker ? await worker.lostMounts() : []),
      ];
      await world.stopAll();
      expect(lost, "bind mounts detached during the run (by another run's cleanup?)").toEqual([]);
      // NetworkManager writes /etc/resolv.conf unless told not to: the machine's own must be untouched.
      expect(readFileSync("/etc/resolv.conf", "utf8")).toBe(resolvConf);
    }, 60_000);

    it("refuses, before changing anything, a runner whose default interface NetworkManager does not manage", async () => {
      // As on Ubuntu with netplan's networkd renderer, or Amazon Linux 2023: the Ethernet is not NetworkManager's.
      await runner.exec(["nmcli", "device", "set", "r1", "managed", "no"]);
      try {
        await waitFor("r1 to be unmanaged", async () =>
          (await nm("-g", "GENERAL.STATE", "device", "show", "r1")).stdout.includes("unmanaged"),
        );
        const before = await runnerState();
        const refused = await runSetup();
        expect(refused.code).toBe(1);
        expect(refused.stderr).toContain(
          `labgate ${labName}: preflight: NetworkManager does not manage r1 (the default route's interface): on Ubuntu set 'renderer: NetworkManager' in netplan; on Debian remove r1 from /etc/network/interfaces`,
        );
        expect(refused.stderr).toContain("FAILED: preflight: this runner lacks 1 requirement(s)");
        expect(refused.stdout).not.toContain("setting up");
        const after = await runnerState();
        expect(after).toEqual(before);
        expect(after.fetched).toEqual([]);
        // Nothing of labgate's but what an earlier version left (the runner is an upgraded one).
        expect(
          after.files.filter(
            (f) => (f.startsWith("_etc_labgate/") || f.includes("labgate")) && !f.includes(LEGACY_SYSCTL),
          ),
        ).toEqual([]);
      } finally {
        await runner.exec(["nmcli", "device", "set", "r1", "managed", "yes"]);
        await waitFor(
          "the runner's Ethernet to be back",
          async () => (await connectionState(ethUuid)) === "activated",
        );
      }
      expect((await runner.exec(["ip", "-4", "route", "show", "default"])).stdout).toContain("dev r1");
    });

    it("applies the rendered setup under sh: tunnel up and the lab's DNS answering through it, hash recorded", async () => {
      const result = await runSetup();
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(`labgate ${labName}: check: tunnel ${tun} up`);
      expect(result.stdout).toContain("check: lab DNS through the tunnel answers");
      expect(result.stdout).toContain(`labgate: applied setup ${setup.hash}`);
      expect(keyLine).toMatch(/^[0-9a-f]{32}$/);
      expect(result.stdout + result.stderr).not.toContain(keyLine);

      const key = statSync(join(onRunner("/etc/labgate"), labName, "static.key"));
      expect(key.mode & 0o777).toBe(0o600);
      expect(key.uid).toBe(0);
      expect(statSync(join(onRunner("/etc/labgate"), labName)).mode & 0o777).toBe(0o700);
      expect(readFileSync(join(onRunner("/var/lib/labgate"), labName, "setup.hash"), "utf8").trim()).toBe(
        setup.hash,
      );
      // Forwarding is on now that the filter is in place, and nothing turns it on at boot any more.
      expect(await forwarding()).toBe("1");
      expect(readdirSync(onRunner("/etc/sysctl.d"))).toEqual([]);
      const dispatcher = statSync(
        join(onRunner("/etc/NetworkManager"), "dispatcher.d", `90-labgate-${labName}`),
      );
      expect(dispatcher.mode & 0o777).toBe(0o755);
      expect(
        (await runner.exec(["nmcli", "-g", "connection.secondaries", "connection", "show", "uuid", ethUuid]))
          .stdout,
      ).toContain(vpnConnectionUuid(labName));
      // The lab's chains, each jumped from its built-in chain; FORWARD and INPUT go to them before anything.
      expect((await rulesOf("FORWARD"))[0]).toBe(jumpTo("FORWARD", chains.forward));
      expect((await rulesOf("INPUT"))[0]).toBe(jumpTo("INPUT", chains.input));
      expect(await rulesOf("POSTROUTING", "nat")).toContain(jumpTo("POSTROUTING", chains.nat));
      expect(await rulesOf("FORWARD", "mangle")).toContain(jumpTo("FORWARD", chains.mss));
      // Exactly the rendered rules, open.
      const rendered = gatewayRules(
        lab,
        { workerCidrs: [WORKER_CIDR], privateIp: RUNNER_PRIVATE_IP },
        "open",
      );
      for (const [chain, table, rules] of [
        [chains.forward, "filter", rendered.forward],
        [chains.input, "filter", rendered.input],
        [chains.nat, "nat", rendered.nat],
        [chains.mss, "mangle", rendered.mss],
      ] as const)
        expect(await rulesOf(chain, table)).toEqual(rules.map((r) => `-A ${chain} ${r}`));
      expect((await runner.exec(["iptables", "-S"])).stdout).toContain("-P FORWARD ACCEPT");
    });

    it("lets the worker resolve beaker.<domain> through its runner and fetch the page over the tunnel, masqueraded", async () => {
      const workerRoot = join(dir, "worker");
      const script = readFileSync(join(onRunner("/etc/gitlab-runner"), "worker-user-data.sh"), "utf8");
      // cloud-init runs user data as an executable file (its #! line).
      const file = join(workerRoot, "user-data");
      writeFileSync(file, script, { mode: 0o755 });
      const result = await worker.exec([file], { env: envFor(workerRoot), check: false });
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      const name = `beaker.${domain}`;
      await waitFor(`${name} to resolve on the worker`, async () => {
        const r = await worker.exec(["getent", "hosts", name], { check: false });
        return r.stdout.startsWith(BEAKER_IP);
      });
      const page = await worker.exec(["curl", "-sS", "--max-time", "10", `http://${name}/`]);
      // The lab has no route to the workers: the reply came back because the runner masqueraded.
      expect(page.stdout.trim()).toBe(`beaker stand-in; client=${TUNNEL_LOCAL}`);
    });

    it("lets the worker resolve through the lab's DNS service address, which the runner answers on its loopback", async () => {
      const dropIn = readFileSync(
        join(dir, "worker", "systemd-etc", "resolved.conf.d", `90-labgate-${labName}.conf`),
        "utf8",
      );
      expect(dropIn).toContain(`\nDNS=${SERVICE_IP}\n`);
      expect((await runner.exec(["ip", "-4", "addr", "show", "dev", "lo"])).stdout).toContain(
        `inet ${SERVICE_IP}/32`,
      );
      const name = `beaker.${domain}`;
      expect(await dnsAnswers(worker, SERVICE_IP, name)).toBe(BEAKER_IP);
      expect(await dnsAnswers(worker, SERVICE_IP, name, { tcp: true })).toBe(BEAKER_IP);
      // The runner's private address stops answering the worker's DNS: its names still resolve, through the
      // service address (the worker's only server for the lab's names).
      const drop = (op: string, proto: string) =>
        worker.exec([
          "iptables",
          op,
          "OUTPUT",
          "-d",
          RUNNER_PRIVATE_IP,
          "-p",
          proto,
          "--dport",
          "53",
          "-j",
          "DROP",
        ]);
      for (const proto of ["udp", "tcp"]) await drop("-I", proto);
      try {
        expect(await dnsAnswers(worker, RUNNER_PRIVATE_IP, name)).toBe("");
        await waitFor(`${name} to resolve on the worker without its runner's address`, async () => {
          const r = await worker.exec(["getent", "hosts", name], { check: false, timeoutMs: 10_000 });
          return r.stdout.startsWith(BEAKER_IP);
        });
      } finally {
        for (const proto of ["udp", "tcp"]) await drop("-D", proto);
      }
    });

    it("leaves one copy of each rule after running the setup and the dispatcher again, and changes nothing", async () => {
      const before = await labRules(labName);
      const again = await runSetup();
      expect(again.code).toBe(0);
      expect(again.stdout).not.toMatch(/: wrote /);
      expect(again.stdout).not.toContain("bringing");
      expect((await dispatch("vpn-up")).code).toBe(0);
      expect((await dispatch("vpn-up")).code).toBe(0);
      const rules = await labRules(labName);
      expect(rules).toEqual(before);
      expect(new Set(rules).size).toBe(rules.length);
    });

    it("publishes TunnelHealthy=1 from the health reporter while the tunnel carries DNS", async () => {
      const result = await runner.exec([paths.healthScript], { env: envFor(runnerRoot) });
      expect(result.stdout).toContain("TunnelHealthy=1");
      const log = readFileSync(join(dir, "aws.log"), "utf8").trim().split("\n");
      expect(log.at(-1)).toBe(
        `cloudwatch put-metric-data --namespace labgate/${labName} --metric-name TunnelHealthy --unit Count --value 1 --storage-resolution 1 --dimensions Lab=${labName},InstanceId=${INSTANCE_ID}`,
      );
    });

    it("runs the tunnel watch the setup started, which reports the tunnel up once its probes succeed", async () => {
      await waitFor("the tunnel watch to report up", () => tunnelReport()?.state === "up", {
        timeoutMs: 30_000,
      });
      expect(readFileSync(join(dir, "aws.log"), "utf8")).toContain(
        `ec2 create-tags --resources ${INSTANCE_ID} --tags Key=${TUNNEL_TAG},Value=up `,
      );
      expect(watchLog()).toContain(
        `watching ${tun}: a probe every 1 s, down after 3 failed, up after 5 good`,
      );
    });

    it("reports nothing when the lab's DNS misses a reply or two, and the tunnel down after 3 failed probes in a row", async () => {
      const { downAfter } = TUNNEL_WATCH;
      const upSince = tunnelReport();
      expect(upSince?.state).toBe("up");
      // A blip: the lab's DNS silent until one probe failed, then answering again.
      const before = watchLog().length;
      await silenceLabDns(true);
      try {
        await waitFor(
          "a probe to fail",
          () => watchLog().slice(before).includes("probe failed (1 in a row"),
          {
            timeoutMs: 10_000,
            intervalMs: 50,
          },
        );
      } finally {
        await silenceLabDns(false);
      }
      await waitFor(
        "the probes to succeed again",
        () => watchLog().slice(before).includes("the probe succeeds again"),
        {
          timeoutMs: 10_000,
        },
      );
      expect(watchLog().slice(before)).not.toContain(`probe failed (${downAfter} in a row`);
      expect(tunnelReport()).toEqual(upSince);

      // An outage: the tunnel is reported down right after the third failed probe, and up after five good ones.
      const outage = watchLog().length;
      const silentAt = Date.now();
      await silenceLabDns(true);
      try {
        await waitFor("the tunnel watch to report down", () => tunnelReport()?.state === "down", {
          timeoutMs: 30_000,
          intervalMs: 50,
        });
        const reportedAt = Date.now();
        const lines = watchLog().slice(outage).trim().split("\n");
        expect(lines.slice(0, downAfter + 1)).toEqual([
          ...Array.from(
            { length: downAfter },
            (_, i) => `labgate ${labName} watch: probe failed (${i + 1} in a row; down after ${downAfter})`,
          ),
          `labgate ${labName} watch: reported the tunnel down`,
        ]);
        console.log(
          `tunnel watch: lab DNS silent -> reported down in ${((reportedAt - silentAt) / 1000).toFixed(1)} s`,
        );
      } finally {
        await silenceLabDns(false);
      }
      await waitFor("the tunnel watch to report up again", () => tunnelReport()?.state === "up", {
        timeoutMs: 30_000,
      });
      expect(watchLog().slice(outage)).toContain("reported the tunnel up");
    });

    it("refuses a connection the lab's side opens to a worker through the tunnel", async () => {
      await labSideRoutesIntoTunnel();
      const attempt = await httpGet(labHost, `http://${WORKER_IP}:${PROBE_PORT}/`, { source: BEAKER_IP });
      expect.soft(attempt).toBeUndefined();
      expect.soft(clientsOf(onWorker)).not.toContain(BEAKER_IP);
      // The worker's own connections to the lab still work.
      expect(await workerReachesBeaker()).toBe(true);
    });

    it("refuses the lab's side every port of the runner: on its tunnel address, its private address, and the DNS stub", async () => {
      await labSideRoutesIntoTunnel();
      expect.soft(await httpGet(labHost, `http://${TUNNEL_LOCAL}:${PROBE_PORT}/`)).toBeUndefined();
      expect
        .soft(await httpGet(labHost, `http://${RUNNER_PRIVATE_IP}:${PROBE_PORT}/`, { source: BEAKER_IP }))
        .toBeUndefined();
      expect.soft(clientsOf(onRunnerPort)).toEqual([]);
      // The stub answers the workers on the private address; the lab's side must not use it to resolve the VPC.
      const name = `beaker.${domain}`;
      expect.soft(await dnsAnswers(labHost, RUNNER_PRIVATE_IP, name, { source: BEAKER_IP })).toBe("");
      expect
        .soft(await dnsAnswers(labHost, RUNNER_PRIVATE_IP, name, { source: BEAKER_IP, tcp: true }))
        .toBe("");
      // Nor the lab's DNS service address, which the runner answers only for its workers.
      expect.soft(await dnsAnswers(labHost, SERVICE_IP, name, { source: BEAKER_IP })).toBe("");
      expect.soft(await dnsAnswers(labHost, SERVICE_IP, name, { source: BEAKER_IP, tcp: true })).toBe("");
    });

    it("lets a worker reach only DNS and ICMP on its runner: its other ports are refused", async () => {
      expect.soft(await httpGet(worker, `http://${RUNNER_PRIVATE_IP}:${PROBE_PORT}/`)).toBeUndefined();
      expect.soft(await httpGet(worker, `http://${TUNNEL_LOCAL}:${PROBE_PORT}/`)).toBeUndefined();
      expect.soft(clientsOf(onRunnerPort)).toEqual([]);
      const name = `beaker.${domain}`;
      expect.soft(await dnsAnswers(worker, RUNNER_PRIVATE_IP, name)).toBe(BEAKER_IP);
      expect.soft(await dnsAnswers(worker, RUNNER_PRIVATE_IP, name, { tcp: true })).toBe(BEAKER_IP);
      expect.soft(await dnsAnswers(worker, SERVICE_IP, name)).toBe(BEAKER_IP);
      expect.soft(await httpGet(worker, `http://${SERVICE_IP}:${PROBE_PORT}/`)).toBeUndefined();
      expect(await pings(worker, RUNNER_PRIVATE_IP)).toBe(true);
    });

    it("refuses a worker's requests to the metadata address routed through the runner", async () => {
      expect.soft(await httpGet(worker, `http://${METADATA_IP}/`)).toBeUndefined();
      expect.soft(clientsOf(metadata)).toEqual([]);
      expect(await workerReachesBeaker()).toBe(true);
    });

    it("keeps the gateway closed while the lab's VPN is down: the worker still cannot reach the metadata address or the runner's ports", async () => {
      await runner.exec(["nmcli", "connection", "down", "uuid", vpnConnectionUuid(labName)], {
        check: false,
      });
      await waitFor(`${tun} to go`, tunGone);
      expect.soft(await httpGet(worker, `http://${METADATA_IP}/`)).toBeUndefined();
      expect.soft(await httpGet(worker, `http://${RUNNER_PRIVATE_IP}:${PROBE_PORT}/`)).toBeUndefined();
      expect.soft(clientsOf(metadata)).toEqual([]);
      expect.soft(clientsOf(onRunnerPort)).toEqual([]);

      // And it opens again on vpn-up, which NetworkManager calls.
      await runner.exec(["nmcli", "connection", "up", "uuid", vpnConnectionUuid(labName)]);
      await waitFor("the gateway to open on vpn-up", gatewayOpen);
      expect(await workerReachesBeaker()).toBe(true);
    });

    it("forwards nothing on a rebooted runner before the lab's filter is in place, which the Ethernet's activation installs before the tunnel exists", async () => {
      // A reboot: the VPN gone, the firewall empty, forwarding as /etc/sysctl.d says (systemd-sysctl at boot).
      await runner.exec(["nmcli", "connection", "down", "uuid", vpnConnectionUuid(labName)], {
        check: false,
      });
      await waitFor(`${tun} to go`, tunGone);
      for (const table of ["filter", "nat", "mangle"]) {
        await runner.exec(["iptables", "-t", table, "-F"]);
        await runner.exec(["iptables", "-t", table, "-X"]);
      }
      await runner.exec(["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
      for (const file of readdirSync(onRunner("/etc/sysctl.d")))
        await runner.exec(["sysctl", "-q", "-p", `/etc/sysctl.d/${file}`]);
      expect.soft(await forwarding()).toBe("0");
      expect.soft(await httpGet(worker, `http://${METADATA_IP}/`)).toBeUndefined();
      expect.soft(clientsOf(metadata)).toEqual([]);
      // Nothing keeps the DNS service address on loopback across a reboot, and systemd-resolved starts before
      // NetworkManager activates anything.
      await runner.exec(["ip", "addr", "del", `${SERVICE_IP}/32`, "dev", "lo"]);
      await runner.exec(["systemctl", "restart", "systemd-resolved"], { env: envFor(runnerRoot) });

      // The Ethernet connection activates as at boot, and its secondary VPN with it. The firewall, read the
      // moment the tunnel appears (a bounded watch: 30 s at most):
      await runner.exec(["nmcli", "connection", "down", "uuid", ethUuid]);
      const watch = runner.exec(
        [
          "bash",
          "-c",
          `for _ in $(seq 3000); do ip link show dev ${tun} >/dev/null 2>&1 && exec iptables-save; sleep 0.01; done; exit 1`,
        ],
        { check: false, timeoutMs: 60_000 },
      );
      const up = await runner.exec(["nmcli", "--wait", "60", "connection", "up", "uuid", ethUuid], {
        check: false,
      });
      expect(up.code).toBe(0);
      const seen = await watch;
      expect(seen.code).toBe(0);
      const whenTheTunnelAppeared = seen.stdout.split("\n");
      expect.soft(whenTheTunnelAppeared).toContain(jumpTo("FORWARD", chains.forward));
      expect.soft(whenTheTunnelAppeared).toContain(jumpTo("INPUT", chains.input));
      expect.soft(whenTheTunnelAppeared).toContain(`-A ${chains.forward} -i ${tun} -j DROP`);
      expect.soft(whenTheTunnelAppeared).toContain(`-A ${chains.input} -i ${tun} -j DROP`);

      // Then vpn-up opens the gateway and turns forwarding on.
      await waitFor("the gateway to open on vpn-up", gatewayOpen);
      await waitFor("forwarding to be on", async () => (await forwarding()) === "1");
      expect(await workerReachesBeaker()).toBe(true);
      // The Ethernet's pre-up put the DNS service address back, and resolved (started without it) answers there.
      expect((await runner.exec(["ip", "-4", "addr", "show", "dev", "lo"])).stdout).toContain(
        `inet ${SERVICE_IP}/32`,
      );
      expect(await dnsAnswers(worker, SERVICE_IP, `beaker.${domain}`)).toBe(BEAKER_IP);
      expect.soft(await httpGet(worker, `http://${METADATA_IP}/`)).toBeUndefined();
      expect.soft(clientsOf(metadata)).toEqual([]);
    });

    it("leaves a second lab's rules on the runner alone when the first goes down, and removes only its own", async () => {
      const otherDispatcher = join(runnerRoot, "other-dispatcher");
      writeFileSync(
        otherDispatcher,
        renderDispatcher(otherLab, { workerCidrs: [WORKER_CIDR], privateIp: RUNNER_PRIVATE_IP }),
        { mode: 0o755 },
      );
      chmodSync(otherDispatcher, 0o755);
      // The second lab as its setup leaves it: its key (it holds a credential here), its tunnel, its dispatcher.
      mkdirSync(join(onRunner("/etc/labgate"), otherLabName), { recursive: true });
      writeFileSync(join(onRunner("/etc/labgate"), otherLabName, "static.key"), "a stand-in\n");
      await runner.exec(["ip", "tuntap", "add", "dev", tunDevice(otherLabName), "mode", "tun"]);
      try {
        expect((await dispatch("vpn-up", otherDispatcher, otherLabName)).code).toBe(0);
        const otherRules = await labRules(otherLabName);
        expect(otherRules.length).toBeGreaterThan(10);
        // Both labs' jumps come before anything else in FORWARD and INPUT.
        const other = iptablesChains(otherLabName);
        for (const [builtin, own, theirs] of [
          ["FORWARD", chains.forward, other.forward],
          ["INPUT", chains.input, other.input],
        ] as const) {
          expect((await rulesOf(builtin)).slice(0, 2).sort()).toEqual(
            [
              jumpTo(builtin, own),
              `-A ${builtin} -m comment --comment "labgate:${otherLabName}" -j ${theirs}`,
            ].sort(),
          );
        }

        // NetworkManager takes the lab's VPN down and calls the rendered dispatcher with vpn-down: closed.
        await runner.exec(["nmcli", "connection", "down", "uuid", vpnConnectionUuid(labName)]);
        await waitFor("the lab's gateway to close on vpn-down", async () => !(await gatewayOpen()));
        expect(await rulesOf(chains.nat, "nat")).toEqual([]);
        expect(await labRules(otherLabName)).toEqual(otherRules);

        // And back up (once the old openvpn has let go of the tun device): NetworkManager calls it with vpn-up.
        await waitFor(`${tun} to go`, tunGone);
        await runner.exec(["nmcli", "connection", "up", "uuid", vpnConnectionUuid(labName)]);
        await waitFor("the lab's gateway to open again on vpn-up", gatewayOpen);
        const ownRules = await labRules(labName);

        expect((await dispatch("vpn-down", otherDispatcher, otherLabName)).code).toBe(0);
        expect((await dispatch("labgate-remove", otherDispatcher, otherLabName)).code).toBe(0);
        expect(await labRules(otherLabName)).toEqual([]);
        expect(await labRules(labName)).toEqual(ownRules);
        expect(await workerReachesBeaker()).toBe(true);
      } finally {
        await runner.exec(["ip", "tuntap", "del", "dev", tunDevice(otherLabName), "mode", "tun"]);
        rmSync(join(onRunner("/etc/labgate"), otherLabName), { recursive: true, force: true });
      }
    });

    it("works beside Docker: its jumps go back ahead of DOCKER-USER, the FORWARD policy and Docker's chain stay, an earlier labgate's rules there go", async () => {
      // What Docker does when it starts after the VPN: its DOCKER-USER chain, jumped first from FORWARD.
      await runner.exec(["iptables", "-N", "DOCKER-USER"]);
      await runner.exec(["iptables", "-I", "FORWARD", "1", "-j", "DOCKER-USER"]);
      try {
        // What an earlier labgate dispatcher put there.
        await runner.exec([
          "iptables",
          "-I",
          "DOCKER-USER",
          "-s",
          WORKER_CIDR,
          "-o",
          tun,
          "-m",
          "comment",
          "--comment",
          comment,
          "-j",
          "ACCEPT",
        ]);
        expect((await dispatch("vpn-up")).code).toBe(0);
        const forward = await rulesOf("FORWARD");
        expect(forward[0]).toBe(jumpTo("FORWARD", chains.forward));
        expect(forward).toContain("-A FORWARD -j DOCKER-USER");
        expect(await rulesOf("DOCKER-USER")).toEqual([]);
        expect((await runner.exec(["iptables", "-S"])).stdout).toContain("-P FORWARD ACCEPT");
        await labSideRoutesIntoTunnel();
        expect(
          await httpGet(labHost, `http://${WORKER_IP}:${PROBE_PORT}/`, { source: BEAKER_IP }),
        ).toBeUndefined();
        expect(clientsOf(onWorker)).not.toContain(BEAKER_IP);
        expect(await workerReachesBeaker()).toBe(true);
      } finally {
        await runner.exec(["iptables", "-D", "FORWARD", "-j", "DOCKER-USER"], { check: false });
        await runner.exec(["iptables", "-F", "DOCKER-USER"], { check: false });
        await runner.exec(["iptables", "-X", "DOCKER-USER"], { check: false });
      }
    });

    it("replaces the lab's rules at once when its worker subnets change, through the setup", async () => {
      const extra = "10.1.1.0/24";
      const wider = renderRunnerSetup({
        lab,
        instanceId: INSTANCE_ID,
        privateIp: RUNNER_PRIVATE_IP,
        credentialParameter: credential,
        workerCidrs: [WORKER_CIDR, extra],
      });
      const before = await labRules(labName);
      const widened = await runSetup(wider);
      expect(widened.stderr).toBe("");
      expect(widened.code).toBe(0);
      expect(await rulesOf(chains.nat, "nat")).toEqual([
        `-A ${chains.nat} -s ${WORKER_CIDR} -o ${tun} -j MASQUERADE`,
        `-A ${chains.nat} -s ${extra} -o ${tun} -j MASQUERADE`,
      ]);
      expect(await rulesOf(chains.forward)).toContain(`-A ${chains.forward} -s ${extra} -o ${tun} -j ACCEPT`);
      expect(await rulesOf(chains.input)).toContain(
        `-A ${chains.input} -s ${extra} -j REJECT --reject-with icmp-port-unreachable`,
      );

      const back = await runSetup();
      expect(back.code).toBe(0);
      expect(await labRules(labName)).toEqual(before);
      expect(await workerReachesBeaker()).toBe(true);
    });

    it("keeps the tunnel when a new setup leaves it alone: other worker subnets, the same tun device, no restart", async () => {
      const ifindex = async () =>
        (
          JSON.parse((await runner.exec(["ip", "-j", "link", "show", tun])).stdout) as { ifindex: number }[]
        )[0]?.ifindex;
      const before = await ifindex();
      const other = renderRunnerSetup({
        lab,
        instanceId: INSTANCE_ID,
        privateIp: RUNNER_PRIVATE_IP,
        credentialParameter: credential,
        workerCidrs: [WORKER_CIDR, "10.1.2.0/24"],
      });
      expect(tunnelOf(other.hash)).toBe(tunnelOf(setup.hash));
      expect(other.hash).not.toBe(setup.hash);
      const applied = await runSetup(other);
      expect(applied.code).toBe(0);
      expect(applied.stdout).not.toContain("restarting");
      expect(await ifindex()).toBe(before);
      expect((await runSetup()).code).toBe(0);
      expect(await ifindex()).toBe(before);
      expect(await workerReachesBeaker()).toBe(true);
    });

    it("runs one labgate command of the lab at a time: a setup waits while another command holds the lock", async () => {
      const holderLog = join(runnerRoot, "command-lock.log");
      const holder = runner.start(["flock", paths.commandLock, "-c", "echo held; sleep 4"], holderLog);
      try {
        await waitFor("the other command to take the lock", () =>
          readFileSync(holderLog, "utf8").includes("held"),
        );
        const started = Date.now();
        const applied = await runSetup();
        const waited = Date.now() - started;
        expect(applied.code).toBe(0);
        expect(applied.stdout).toContain(`waiting for another labgate command of lab ${labName}`);
        expect(waited).toBeGreaterThanOrEqual(2_000);
        console.log(`setup behind a held command lock: ${waited} ms`);
      } finally {
        try {
          process.kill(-holder, "SIGKILL");
        } catch {
          // Gone already.
        }
      }
    });

    it("keeps the dispatcher's lock out of local users' reach: an unprivileged user cannot hold it, so the dispatcher never waits on one", async () => {
      // An unprivileged user (nobody) tries to take the lab's lock and keep it.
      const holderLog = join(runnerRoot, "lock-holder.log");
      const holder = runner.start(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"].concat([
          "flock",
          paths.lock,
          "-c",
          "echo held; sleep 60",
        ]),
        holderLog,
      );
      try {
        await waitFor("the unprivileged holder to take the lock or give up", () => {
          const said = readFileSync(holderLog, "utf8");
          let alive = true;
          try {
            process.kill(holder, 0);
          } catch {
            alive = false;
          }
          return said.includes("held") || !alive;
        });
        expect(readFileSync(holderLog, "utf8")).not.toContain("held");
        const started = Date.now();
        const call = await dispatch("vpn-up");
        expect(call.stderr).toBe("");
        expect(call.code).toBe(0);
        console.log(
          `dispatcher vpn-up with an unprivileged user trying the lock: ${Date.now() - started} ms`,
        );
        const folder = statSync(onRunner("/run/labgate"));
        expect(folder.mode & 0o777).toBe(0o700);
        expect(folder.uid).toBe(0);
      } finally {
        try {
          process.kill(-holder, "SIGKILL");
        } catch {
          // Already gone: it could not open the lock.
        }
      }
    });

    it("keeps the runner's Ethernet up when it activates with the lab's OpenVPN server down", async () => {
      process.kill(labVpnPid, "SIGTERM");
      await waitFor("the lab's OpenVPN server to stop", async () => {
        const r = await labHost.exec(["ip", "link", "show", "tun0"], { check: false });
        return r.code !== 0;
      });
      // As at boot: the Ethernet connection activates, and its secondary VPN with it.
      await runner.exec(["nmcli", "connection", "down", "uuid", ethUuid]);
      const up = await runner.exec(["nmcli", "--wait", "60", "connection", "up", "uuid", ethUuid], {
        check: false,
      });
      expect(up.stderr).toBe("");
      expect(up.code).toBe(0);
      // The guard held the secondary until the old openvpn let go of the tun device, so it did not fail.
      await waitFor(
        "the VPN secondary to come up",
        async () => (await connectionState(vpnConnectionUuid(labName))) === "activated",
      );
      expect(await connectionState(ethUuid)).toBe("activated");
      expect((await runner.exec(["ip", "-4", "route", "show", "default"])).stdout).toContain("dev r1");
      await runner.exec(["ping", "-c", "1", "-W", "2", LAB_ETH_IP]);

      // The tunnel is up without a peer: the health reporter says unhealthy, since the lab's DNS is silent.
      const health = await runner.exec([paths.healthScript], { env: envFor(runnerRoot) });
      expect(health.stdout).toContain("TunnelHealthy=0");
    });

    it("never leaves a VPN that cannot come up as a secondary: the setup fails clearly, the Ethernet stays up", async () => {
      const good = readFileSync(credFile, "utf8");
      // A key OpenVPN cannot use: NetworkManager's activation of the VPN fails.
      writeFileSync(credFile, good.replace(/^[0-9a-f]{32}$/gm, "zz".repeat(16)), {
        mode: 0o600,
      });
      try {
        const failed = await runSetup();
        expect(failed.code).not.toBe(0);
        expect(failed.stderr).toContain("could not bring");
        expect(failed.stdout).not.toContain("applied setup");
        const secondaries = await runner.exec([
          "nmcli",
          "-g",
          "connection.secondaries",
          "connection",
          "show",
          "uuid",
          ethUuid,
        ]);
        expect(secondaries.stdout).not.toContain(vpnConnectionUuid(labName));
        expect(await connectionState(ethUuid)).toBe("activated");
      } finally {
        writeFileSync(credFile, good, { mode: 0o600 });
      }
      // The lab comes back: the setup applies again.
      labVpnPid = startLabVpnAgain();
      const again = await runSetup();
      expect(again.stderr).toBe("");
      expect(again.code).toBe(0);
      expect(again.stdout).toContain(`labgate: applied setup ${setup.hash}`);
    });

    it("moves to a TLS credential in place: the lab's TLS server, the server pinned, the worker's traffic through it", async () => {
      // The lab issues this client a certificate and overwrites the parameter (README "Credential parameters").
      const labDir = join(dir, "lab");
      server = await makeCertificate(labDir, "lab-server");
      const issued = await makeTlsCredential(labDir, "client-1", credFile, server, TLS_PORT);
      clientCertificate = issued.client;
      startTlsServer(
        labHost,
        {
          tun: "tun1",
          network: TLS_NETWORK,
          server,
          clientFingerprints: [issued.client.fingerprint],
          listen: LAB_ETH_IP,
          port: TLS_PORT,
        },
        join(labDir, "openvpn-tls.log"),
      );
      await waitFor(
        "the lab's TLS server",
        async () => (await labHost.exec(["ip", "link", "show", "tun1"], { check: false })).code === 0,
      );

      // The same setup (its hash does not depend on the parameter's value), run again as on a new runner.
      const result = await runSetup();
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(
        `tunnel from ${credential}: TLS; client CN=client-1, server certificate sha256 ${server.fingerprint}, server port ${TLS_PORT}`,
      );
      expect(result.stdout).toContain(`labgate ${labName}: check: tunnel ${tun} up`);
      expect(result.stdout).toContain("check: lab DNS through the tunnel answers");
      expect(result.stdout).toContain(`labgate: applied setup ${setup.hash}`);
      expect(issued.keyLine.length).toBeGreaterThan(20);
      expect(result.stdout + result.stderr).not.toContain(issued.keyLine);

      const keyfile = readFileSync(
        join(onRunner("/etc/NetworkManager"), "system-connections", `labgate-${labName}.nmconnection`),
        "utf8",
      );
      expect(keyfile).toContain("connection-type=tls\n");
      expect(keyfile).toContain(`port=${TLS_PORT}\n`);
      const key = statSync(join(onRunner("/etc/labgate"), labName, "static.key"));
      expect(key.mode & 0o777).toBe(0o600);
      expect(readFileSync(join(onRunner("/etc/labgate"), labName, "static.key"), "utf8")).toBe(
        readFileSync(issued.client.key, "utf8"),
      );
      expect(readFileSync(join(onRunner("/etc/labgate"), labName, "server.crt"), "utf8")).toBe(
        readFileSync(server.certificate, "utf8"),
      );
      expect(
        (await runner.exec(["nmcli", "-g", "connection.secondaries", "connection", "show", "uuid", ethUuid]))
          .stdout,
      ).toContain(vpnConnectionUuid(labName));
      expect(await gatewayOpen()).toBe(true);

      // The worker's request reaches Beaker through the TLS tunnel, from the address the lab's server gave.
      const page = await worker.exec(["curl", "-sS", "--max-time", "10", `http://beaker.${domain}/`]);
      expect(page.stdout.trim()).toBe(`beaker stand-in; client=${TLS_CLIENT_ADDRESS}`);

      const again = await runSetup();
      expect(again.code).toBe(0);
      expect(again.stdout).not.toMatch(/: wrote /);
      expect(again.stdout).not.toContain("bringing");
    });

    it("refuses an impostor of the lab's server that presents another certificate with the same name", async () => {
      // Another server with its own self-signed certificate for the same name, which accepts this client.
      const labDir = join(dir, "lab");
      mkdirSync(join(labDir, "impostor"), { recursive: true });
      const impostor = await makeCertificate(join(labDir, "impostor"), "lab-server");
      const impostorPid = startTlsServer(
        labHost,
        {
          tun: "tun2",
          network: "172.31.9.0",
          server: impostor,
          clientFingerprints: [clientCertificate.fingerprint],
          listen: LAB_ETH_IP,
          port: TLS_PORT + 1,
        },
        join(labDir, "openvpn-impostor.log"),
      );
      // The runner's openvpn as NetworkManager's plugin starts it, with the files the setup wrote.
      const log = join(dir, "impostor-client.log");
      const client = runner.start(
        ["openvpn", "--client", "--remote", LAB_ETH_IP, String(TLS_PORT + 1), "udp", "--nobind"].concat(
          ["--dev", "tunimp", "--dev-type", "tun", "--route-noexec", "--ifconfig-noexec", "--verb", "3"],
          ["--ca", paths.tlsCa, "--cert", paths.tlsCert, "--key", paths.staticKey],
        ),
        log,
      );
      try {
        await waitFor("the runner's openvpn to refuse the impostor", () =>
          readFileSync(log, "utf8").includes("VERIFY ERROR"),
        );
        expect(readFileSync(log, "utf8")).not.toContain("Initialization Sequence Completed");
      } finally {
        process.kill(client, "SIGTERM");
        process.kill(impostorPid, "SIGTERM");
      }
    });

    it("stops the VPN for good with the stop-vpn script, leaves no rule or chain of the lab, and exits 0 when already down", async () => {
      const stop = renderStopVpn(lab);
      const first = await runCommand(
        runner,
        runnerRoot,
        "stop",
        `# labgate lab=${labName} kind=stop-vpn hash=${stop.hash}`,
        stop.script,
      );
      expect(first.stderr).toBe("");
      expect(first.code).toBe(0);
      expect(await connectionState(vpnConnectionUuid(labName))).toBe("");
      const secondaries = await runner.exec([
        "nmcli",
        "-g",
        "connection.secondaries",
        "connection",
        "show",
        "uuid",
        ethUuid,
      ]);
      expect(secondaries.stdout).not.toContain(vpnConnectionUuid(labName));
      expect(await labRules(labName)).toEqual([]);
      expect((await runner.exec(["iptables", "-S"])).stdout).toContain("-P FORWARD ACCEPT");
      expect(() => statSync(join(onRunner("/etc/labgate"), labName, "static.key"))).toThrow();
      expect(await connectionState(ethUuid)).toBe("activated");
      // Its DNS service address and its tunnel watch are gone with it.
      expect((await runner.exec(["ip", "-4", "addr", "show", "dev", "lo"])).stdout).not.toContain(SERVICE_IP);
      const watchPid = join(runnerRoot, `${paths.watchService.split("/").pop()}.pid`);
      expect(() => statSync(watchPid)).toThrow();

      const second = await runCommand(runner, runnerRoot, "stop", "# again", stop.script);
      expect(second.code).toBe(0);
      expect(second.stdout).toContain("was not up");
    });
  },
);
