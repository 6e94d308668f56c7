// The runner side end to end, on the real programs in network namespaces: a lab (static-key OpenVPN server,
// dnsmasq, a web server standing in for Beaker), a runner where the rendered setup runs and NetworkManager
// brings the VPN up and calls the rendered dispatcher behind Docker's firewall, and a worker configured by the
// rendered worker script. Seams, kept small: a fake `aws` (serves the credential, records metrics) and a
// `systemctl` shim (restarts the host's own systemd-resolved by pid; there is no systemd here). The lab then
// moves the runner's credential from a static key to TLS (a TLS server in the lab's namespace).
import { createHash } from "node:crypto";
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LabConfig, LabConfigSchema } from "../../functions/core/config.ts";
import { iptablesComment, runnerPaths, tunDevice } from "../../functions/core/names.ts";
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
  writeShims,
} from "../../functions/local/hosts.ts";
import { type Host, NetnsWorld, netnsUnavailableReason, run, waitFor } from "../../functions/local/netns.ts";
import {
  renderDispatcher,
  renderRunnerSetup,
  renderStopVpn,
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
const TUNNEL_LOCAL = "172.30.0.2";
const TUNNEL_REMOTE = "172.30.0.1";
const INSTANCE_ID = "i-0123456789abcdef0";
/** The lab's TLS server: its port, its tunnel network, and the address it gives its first client. */
const TLS_PORT = 1195;
const TLS_NETWORK = "172.31.0.0";
const TLS_CLIENT_ADDRESS = "172.31.0.2";

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
    });
    const otherLab: LabConfig = LabConfigSchema.parse({
      ...lab,
      name: otherLabName,
      intranetDomains: ["other.example"],
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

    const seams: SeamPaths = {
      shims: join(dir, "shims"),
      credentials: join(dir, "credentials"),
      awsLog: join(dir, "aws.log"),
    };
    const credFile = credentialFile(seams, credential);
    const envFor = (hostDir: string): NodeJS.ProcessEnv => hostEnv(seams, hostDir);
    const runCommand = (host: Host, hostDir: string, name: string, marker: string, script: string) =>
      runCommandScript(host, hostDir, seams, name, marker, script);
    const runSetup = () =>
      runCommand(
        runner,
        runnerRoot,
        "setup",
        `# labgate lab=${labName} kind=setup hash=${setup.hash}`,
        setup.script,
      );

    const nm = (...args: string[]) => runner.exec(["nmcli", ...args], { check: false });
    const connectionState = async (uuid: string) =>
      (await nm("-g", "GENERAL.STATE", "connection", "show", "uuid", uuid)).stdout.trim();
    const ownRules = async (which: string) => {
      const saved = await runner.exec(["iptables-save"]);
      return saved.stdout
        .split("\n")
        .filter((l) => l.includes(`--comment "${which}"`) || l.includes(`--comment ${which} `));
    };
    const jumpsToDockerUser = async () =>
      (await runner.exec(["iptables", "-S", "FORWARD"])).stdout
        .split("\n")
        .filter((l) => l === "-A FORWARD -j DOCKER-USER").length;

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
      await run(["ip", "-n", worker.name, "route", "add", "10.200.0.0/16", "via", RUNNER_PRIVATE_IP]);

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

      // The runner: Docker's firewall, a private bus, systemd-resolved, NetworkManager managing its Ethernet.
      ethUuid = await prepareRunner(world, runner, runnerRoot, seams, [
        { ifname: "r1", name: "eth-r1", cidr: `${RUNNER_ETH_IP}/24`, gateway: LAB_ETH_IP },
        { ifname: "r0", name: "workers-r0", cidr: `${RUNNER_PRIVATE_IP}/24` },
      ]);

      // The worker: its own bus and systemd-resolved, configured later by the worker script.
      const workerRoot = join(dir, "worker");
      mkdirSync(workerRoot, { recursive: true });
      await startBus(worker, workerRoot);
      await startResolved(world, worker, workerRoot, seams);
    }, 120_000);

    const resolvConf = readFileSync("/etc/resolv.conf", "utf8");
    afterAll(async () => {
      await world.stopAll();
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
        expect(after.files.filter((f) => f.startsWith("_etc_labgate/") || f.includes("labgate"))).toEqual([]);
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
      expect(
        readFileSync(join(runnerRoot, "binds", "_etc_sysctl.d", "90-labgate-forward.conf"), "utf8"),
      ).toContain("net.ipv4.ip_forward = 1");
      expect((await runner.exec(["sysctl", "-n", "net.ipv4.ip_forward"])).stdout.trim()).toBe("1");
      const dispatcher = statSync(
        join(onRunner("/etc/NetworkManager"), "dispatcher.d", `90-labgate-${labName}`),
      );
      expect(dispatcher.mode & 0o777).toBe(0o755);
      expect(
        (await runner.exec(["nmcli", "-g", "connection.secondaries", "connection", "show", "uuid", ethUuid]))
          .stdout,
      ).toContain(vpnConnectionUuid(labName));
      expect((await ownRules(comment)).length).toBe(4);
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

    it("leaves one copy of each rule after running the setup and the dispatcher again, and changes nothing", async () => {
      const again = await runSetup();
      expect(again.code).toBe(0);
      expect(again.stdout).not.toMatch(/: wrote /);
      expect(again.stdout).not.toContain("bringing");
      const dispatcherPath = paths.dispatcher;
      await runner.exec([dispatcherPath, tun, "vpn-up"], {
        env: { ...process.env, CONNECTION_UUID: vpnConnectionUuid(labName) },
      });
      await runner.exec([dispatcherPath, tun, "vpn-up"], {
        env: { ...process.env, CONNECTION_UUID: vpnConnectionUuid(labName) },
      });
      const rules = await ownRules(comment);
      expect(rules).toHaveLength(4);
      expect(new Set(rules).size).toBe(4);
      expect(await jumpsToDockerUser()).toBe(1);
    });

    it("publishes TunnelHealthy=1 from the health reporter while the tunnel carries DNS", async () => {
      const result = await runner.exec([paths.healthScript], { env: envFor(runnerRoot) });
      expect(result.stdout).toContain("TunnelHealthy=1");
      const log = readFileSync(join(dir, "aws.log"), "utf8").trim().split("\n");
      expect(log.at(-1)).toBe(
        `cloudwatch put-metric-data --namespace labgate/${labName} --metric-name TunnelHealthy --unit Count --value 1 --storage-resolution 1 --dimensions Lab=${labName},InstanceId=${INSTANCE_ID}`,
      );
    });

    it("removes exactly its own rules on vpn-down: a second lab's rules on the runner survive", async () => {
      const otherDispatcher = join(runnerRoot, "other-dispatcher");
      writeFileSync(otherDispatcher, renderDispatcher(otherLab, [WORKER_CIDR]), { mode: 0o755 });
      chmodSync(otherDispatcher, 0o755);
      await runner.exec(["ip", "tuntap", "add", "dev", tunDevice(otherLabName), "mode", "tun"]);
      await runner.exec([otherDispatcher, tunDevice(otherLabName), "vpn-up"], {
        env: { ...process.env, CONNECTION_UUID: vpnConnectionUuid(otherLabName) },
      });
      expect(await ownRules(iptablesComment(otherLabName))).toHaveLength(4);

      // NetworkManager takes the lab's VPN down and calls the rendered dispatcher with vpn-down.
      await runner.exec(["nmcli", "connection", "down", "uuid", vpnConnectionUuid(labName)]);
      await waitFor("the lab's rules to go on vpn-down", async () => (await ownRules(comment)).length === 0);
      expect(await ownRules(iptablesComment(otherLabName))).toHaveLength(4);
      expect(await jumpsToDockerUser()).toBe(1);

      // And back up (once the old openvpn has let go of the tun device): NetworkManager calls it with vpn-up.
      await waitFor(
        `${tun} to go`,
        async () => (await runner.exec(["ip", "link", "show", tun], { check: false })).code !== 0,
      );
      await runner.exec(["nmcli", "connection", "up", "uuid", vpnConnectionUuid(labName)]);
      await waitFor(
        "the lab's rules to come back on vpn-up",
        async () => (await ownRules(comment)).length === 4,
      );

      await runner.exec([otherDispatcher, tunDevice(otherLabName), "vpn-down"], {
        env: { ...process.env, CONNECTION_UUID: vpnConnectionUuid(otherLabName) },
      });
      expect(await ownRules(iptablesComment(otherLabName))).toHaveLength(0);
      expect(await ownRules(comment)).toHaveLength(4);
      await runner.exec(["ip", "tuntap", "del", "dev", tunDevice(otherLabName), "mode", "tun"]);
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
      expect(await ownRules(comment)).toHaveLength(4);

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

    it("stops the VPN for good with the stop-vpn script, removes the lab's rules, and exits 0 when already down", async () => {
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
      expect(await ownRules(comment)).toHaveLength(0);
      expect(() => statSync(join(onRunner("/etc/labgate"), labName, "static.key"))).toThrow();
      expect(await connectionState(ethUuid)).toBe("activated");

      const second = await runCommand(runner, runnerRoot, "stop", "# again", stop.script);
      expect(second.code).toBe(0);
      expect(second.stdout).toContain("was not up");
    });
  },
);
