// The rendered runner and worker files, one by one: hostile values rejected before anything is rendered,
// properties of the output, shellcheck on every script and NetworkManager's own reading of the keyfile.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type LabConfig, LabConfigSchema } from "../../functions/core/config.ts";
import {
  commandMarker,
  iptablesChains,
  RUNNER_SHARED_PATHS,
  runnerPaths,
} from "../../functions/core/names.ts";
import {
  contentHash,
  gatewayRules,
  messageFunctions,
  PUT_FILE_FUNCTION,
  REMOVE_ACTION,
  RenderError,
  type RunnerSetupInput,
  renderDispatcher,
  renderGatewayRules,
  renderHealthScript,
  renderHealthService,
  renderHealthTimer,
  renderPreflight,
  renderRunnerResolvedDropIn,
  renderRunnerSetup,
  renderServiceResolvedDropIn,
  renderStopVpn,
  renderTlsKeyfile,
  renderVpnKeyfile,
  renderWorkerResolvedDropIn,
  renderWorkerScript,
  shQuote,
  tunnelOf,
  vpnConnectionUuid,
} from "../../functions/render/index.ts";
import { labs } from "../../infra/labs.ts";

const lab: LabConfig = LabConfigSchema.parse(labs[1]); // two CIDRs, two domains, IP remote
const input: RunnerSetupInput = {
  lab,
  instanceId: "i-0123456789abcdef0",
  privateIp: "10.0.1.10",
  credentialParameter: "/labgate/bar/vpn/client-2",
  workerCidrs: ["10.0.64.0/20", "10.0.80.0/20"],
};
const HOSTILE = "foo.example; rm -rf /";

const has = (program: string): boolean => spawnSync("sh", ["-c", `command -v ${program}`]).status === 0;
const inCi = process.env.CI === "true";
const requireTool = (program: string): boolean => {
  if (has(program)) return true;
  if (inCi) throw new Error(`${program} is required in CI (see .ci/apt-packages.txt)`);
  console.warn(`SKIPPED ${program} checks: ${program} is not installed`);
  return false;
};

const shellcheck = (script: string) =>
  spawnSync("shellcheck", ["-s", "bash", "-"], { input: script, encoding: "utf8" });

describe("hostile values", () => {
  it("rejects a hostile intranet domain, naming the field, before rendering anything", () => {
    const bad = { ...lab, intranetDomains: [HOSTILE] } as LabConfig;
    expect(() => renderRunnerSetup({ ...input, lab: bad })).toThrow(RenderError);
    expect(() => renderRunnerSetup({ ...input, lab: bad })).toThrow(
      /lab\.intranetDomains\.0: must be a DNS name/,
    );
    expect(() => renderWorkerScript(bad, "10.0.1.10")).toThrow(/intranetDomains/);
    expect(() => renderVpnKeyfile(bad, { local: "172.30.0.2", remote: "172.30.0.1" })).toThrow(
      /intranetDomains/,
    );
  });

  it.each([
    ["a lab name", { name: "bar; reboot" }, /lab\.name/],
    ["an intranet CIDR", { intranetCidrs: ["10.0.0.0/8 -j ACCEPT"] }, /lab\.intranetCidrs\.0/],
    ["a DNS server", { dnsServers: ["10.0.0.1$(id)"] }, /lab\.dnsServers\.0/],
    ["a worker script path", { workerUserScriptPath: "/etc/x'; rm -rf /" }, /lab\.workerUserScriptPath/],
    ["a VPN remote", { vpn: { ...lab.vpn, remote: "`reboot`" } }, /lab\.vpn\.remote/],
  ])("rejects %s that a shell would interpret", (_what, patch, field) => {
    expect(() => renderRunnerSetup({ ...input, lab: { ...lab, ...patch } as LabConfig })).toThrow(field);
  });

  it.each([
    ["a private address", { privateIp: "10.0.1.10; reboot" }, /privateIp must be an IPv4 address/],
    ["an instance id", { instanceId: "i-0123$(reboot)" }, /instanceId must be an EC2 instance id/],
    [
      "a worker CIDR",
      { workerCidrs: ["10.0.64.0/20", "0.0.0.0/0 -j ACCEPT"] },
      /workerCidrs\[1\] must be an IPv4 CIDR/,
    ],
    [
      "a credential of another lab",
      { credentialParameter: "/labgate/foo/vpn/client-1" },
      /not one of lab bar's/,
    ],
  ])("rejects %s with a clear message", (_what, patch, message) => {
    expect(() => renderRunnerSetup({ ...input, ...patch })).toThrow(message);
  });

  it("rejects hostile tunnel addresses and runner addresses in the per-file renderers", () => {
    expect(() => renderVpnKeyfile(lab, { local: "172.30.0.2\nplugins=x", remote: "172.30.0.1" })).toThrow(
      /tunnel local address/,
    );
    expect(() => renderWorkerResolvedDropIn(lab, "10.0.1.10\nDNS=8.8.8.8")).toThrow(/runner private address/);
    expect(() => renderRunnerResolvedDropIn("::1")).toThrow(/privateIp/);
    expect(() => renderHealthScript(lab, "i-x;reboot")).toThrow(/instanceId/);
  });

  it("quotes for bash so that a value stays one word", () => {
    const quoted = shQuote("it's $(id) `x`");
    const echoed = spawnSync("bash", ["-c", `printf %s ${quoted}`], { encoding: "utf8" });
    expect(echoed.stdout).toBe("it's $(id) `x`");
  });
});

describe("runner setup", () => {
  const setup = renderRunnerSetup(input);

  it("is identified by the hash of its tunnel and of its body, which its last step records and prints", () => {
    const [body] = setup.script.split("\n# 9. ");
    expect(setup.hash.slice(8)).toBe(contentHash(body ?? "").slice(0, 8));
    expect(setup.hash).toMatch(/^[0-9a-f]{16}$/);
    expect(setup.script).toContain(`echo "labgate: applied setup ${setup.hash}"`);
    expect(setup.script).toContain(runnerPaths("bar").setupHash);
    expect(renderRunnerSetup(input)).toEqual(setup);
    expect(renderRunnerSetup({ ...input, privateIp: "10.0.1.11" }).hash).not.toBe(setup.hash);
  });

  it("names its tunnel apart: what restarts the VPN changes the first half, nothing else does", () => {
    const tunnel = tunnelOf(setup.hash);
    // Not the tunnel: the runner's address (resolved's listener), the worker subnets (the gateway's rules).
    expect(tunnelOf(renderRunnerSetup({ ...input, privateIp: "10.0.1.11" }).hash)).toBe(tunnel);
    expect(tunnelOf(renderRunnerSetup({ ...input, instanceId: "i-0fedcba9876543210" }).hash)).toBe(tunnel);
    expect(tunnelOf(renderRunnerSetup({ ...input, workerCidrs: ["10.0.9.0/24"] }).hash)).toBe(tunnel);
    // The tunnel: the VPN's settings in the keyfile, and which key.
    const lab = input.lab;
    for (const changed of [
      { ...lab, vpn: { ...lab.vpn, cipher: "AES-128-CBC" as const } },
      { ...lab, vpn: { ...lab.vpn, port: 1195 } },
      { ...lab, dnsServers: [...lab.dnsServers, "10.210.0.54"] },
      { ...lab, intranetDomains: [...lab.intranetDomains, "extra.example"] },
    ]) {
      expect(tunnelOf(renderRunnerSetup({ ...input, lab: changed }).hash)).not.toBe(tunnel);
    }
  });

  it("starts over with bash when SSM runs it with sh, and fails fast", () => {
    const lines = setup.script.split("\n");
    // biome-ignore lint/suspicious/noTemplateCurlyInString: bash parameter expansion, not a template
    expect(lines).toContain('if [ -z "${BASH_VERSION:-}" ]; then exec /bin/bash "$0" "$@"; fi');
    expect(lines).toContain("set -Eeuo pipefail");
  });

  it("never turns forwarding on at boot (an earlier labgate's sysctl.d file goes), and closes the gateway before the VPN comes up", () => {
    expect(setup.script).not.toContain("net.ipv4.ip_forward = 1");
    expect(setup.script).toContain(`readonly LEGACY_SYSCTL='${RUNNER_SHARED_PATHS.legacySysctl}'`);
    expect(setup.script).toContain('rm -f "$LEGACY_SYSCTL"');
    const closing = setup.script.indexOf('"$DISPATCHER" "$TUN" vpn-pre-up');
    const bringingUp = setup.script.indexOf("nmcli --wait 60 connection up");
    const opening = setup.script.indexOf('"$DISPATCHER" "$TUN" vpn-up');
    expect(closing).toBeGreaterThan(0);
    expect(closing).toBeLessThan(bringingUp);
    expect(bringingUp).toBeLessThan(opening);
  });

  it("fetches the credential on the runner itself and never carries or prints the key", () => {
    expect(setup.script).toContain(
      'aws ssm get-parameter --name "$CREDENTIAL_PARAMETER" --with-decryption --query Parameter.Value',
    );
    expect(setup.script).not.toMatch(/BEGIN OpenVPN Static key V1-----\n[0-9a-f]/);
    expect(setup.script).toContain('put_file 0600 "$STATIC_KEY" <"$CREDENTIAL"');
  });

  it("has the stop-vpn script remove the lab's rules and chains through the dispatcher", () => {
    expect(renderStopVpn(lab).script).toContain(`"$DISPATCHER" "$TUN" ${REMOVE_ACTION}`);
  });

  it("passes shellcheck, and so do the stop-vpn script and the preflight of its own", () => {
    if (!requireTool("shellcheck")) return;
    for (const script of [setup.script, renderStopVpn(lab).script, renderPreflight(lab)]) {
      const result = shellcheck(script);
      expect(result.stdout).toBe("");
      expect(result.status).toBe(0);
    }
  });

  it("re-executes itself with bash when sh runs it after the control plane's marker line", () => {
    if (!requireTool("dash")) return;
    // The opening of the script, up to its first real step, then a probe.
    const opening = setup.script.slice(0, setup.script.indexOf("\n# 0. The preflight"));
    expect(opening.length).toBeGreaterThan(0);
    expect(opening).not.toContain("\npreflight\n");
    const dir = mkdtempSync(join(tmpdir(), "labgate-render-"));
    const file = join(dir, "_script.sh");
    writeFileSync(
      file,
      `${commandMarker("bar", "setup", setup.hash)}\n${opening}echo "bash $BASH_VERSION"\n`,
    );
    const result = spawnSync("dash", ["-c", `dash ${file}`], { encoding: "utf8" });
    rmSync(dir, { recursive: true });
    expect(result.stderr).toBe("");
    expect(result.stdout).toMatch(/^bash \d/);
  });
});

describe("NetworkManager keyfile", () => {
  const keyfile = renderVpnKeyfile(lab, { local: "172.30.0.2", remote: "172.30.0.1" });

  it("connects to the lab's port, or to the client's own server port when its credential names one", () => {
    expect(keyfile).toContain("port=1194\n");
    expect(renderVpnKeyfile(lab, { local: "172.30.0.2", remote: "172.30.0.1", port: 1195 })).toContain(
      "port=1195\n",
    );
    expect(() => renderVpnKeyfile(lab, { local: "172.30.0.2", remote: "172.30.0.1", port: 70000 })).toThrow(
      /tunnel port 70000/,
    );
  });

  it("routes only the intranet through the lab's own tun device, with the lab's DNS for ~domains", () => {
    expect(keyfile).toContain("connection-type=static-key");
    expect(keyfile).toContain("dev=tun-bar\n");
    expect(keyfile).toContain("never-default=true");
    expect(keyfile).toContain("route1=10.210.0.0/16\nroute2=10.211.4.0/24\n");
    expect(keyfile).toContain("dns=10.210.0.53;\n");
    expect(keyfile).toContain("dns-search=~bar.example;~lab.bar.example;\n");
    expect(keyfile).toContain(`uuid=${vpnConnectionUuid("bar")}\n`);
    expect(keyfile).toContain("static-key=/etc/labgate/bar/static.key\n");
  });

  it("is read back by nmcli --offline exactly as rendered", () => {
    if (!requireTool("nmcli")) return;
    const result = spawnSync("nmcli", ["--offline", "connection", "modify", "connection.id", "labgate-bar"], {
      input: keyfile,
      encoding: "utf8",
    });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(keyfile);
  });

  it("for a TLS credential: the client's certificate and key, the server's certificate as the only CA, no cipher", () => {
    const tls = renderTlsKeyfile(lab, 1300);
    expect(tls).toContain("connection-type=tls\n");
    expect(tls).toContain("ca=/etc/labgate/bar/server.crt\ncert=/etc/labgate/bar/client.crt\n");
    expect(tls).toContain("key=/etc/labgate/bar/static.key\n");
    expect(tls).toContain("port=1300\n");
    expect(tls).toContain("ping=10\nping-restart=60\n");
    // The server pushes the tunnel's addresses and negotiates the cipher.
    expect(tls).not.toMatch(/^(cipher|local-ip|remote-ip|static-key)=/m);
    expect(tls).toContain("dev=tun-bar\n");
    expect(tls).toContain("never-default=true");
  });

  it("is read back by nmcli --offline exactly as rendered, for a TLS credential too", () => {
    if (!requireTool("nmcli")) return;
    const tls = renderTlsKeyfile(lab);
    const result = spawnSync("nmcli", ["--offline", "connection", "modify", "connection.id", "labgate-bar"], {
      input: tls,
      encoding: "utf8",
    });
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe(tls);
  });

  it("gives each lab a stable, distinct connection UUID", () => {
    expect(vpnConnectionUuid("bar")).toBe(vpnConnectionUuid("bar"));
    expect(vpnConnectionUuid("bar")).not.toBe(vpnConnectionUuid("foo"));
    expect(vpnConnectionUuid("bar")).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });
});

describe("gateway rules", () => {
  const gateway = { workerCidrs: ["10.0.64.0/20"], privateIp: "10.0.1.10" };
  const closed = gatewayRules(lab, gateway, "closed");
  const open = gatewayRules(lab, gateway, "open");

  it("closed: nothing into or out of the tunnel, nothing from the workers to link-local or forwarded to the DNS service address, only DNS (private and service address) and ICMP to the runner", () => {
    expect(closed).toEqual({
      forward: [
        "-s 10.0.64.0/20 -d 169.254.0.0/16 -j DROP",
        "-s 10.0.64.0/20 -d 100.64.53.2/32 -j DROP",
        "-i tun-bar -j DROP",
        "-o tun-bar -j DROP",
      ],
      input: [
        "-i lo -j RETURN",
        "-i tun-bar -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-i tun-bar -j DROP",
        "-s 10.0.64.0/20 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-s 10.0.64.0/20 -d 10.0.1.10/32 -p udp -m udp --dport 53 -j ACCEPT",
        "-s 10.0.64.0/20 -d 10.0.1.10/32 -p tcp -m tcp --dport 53 -j ACCEPT",
        "-s 10.0.64.0/20 -d 100.64.53.2/32 -p udp -m udp --dport 53 -j ACCEPT",
        "-s 10.0.64.0/20 -d 100.64.53.2/32 -p tcp -m tcp --dport 53 -j ACCEPT",
        "-s 10.0.64.0/20 -p icmp -j ACCEPT",
        "-s 10.0.64.0/20 -j REJECT --reject-with icmp-port-unreachable",
      ],
      nat: [],
      mss: ["-o tun-bar -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu"],
    });
  });

  it("open: adds only the workers' way into the tunnel, the replies back, and the masquerade, after the link-local drop", () => {
    expect(open.forward).toEqual([
      "-s 10.0.64.0/20 -d 169.254.0.0/16 -j DROP",
      "-s 10.0.64.0/20 -d 100.64.53.2/32 -j DROP",
      "-d 10.0.64.0/20 -i tun-bar -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
      "-i tun-bar -j DROP",
      "-s 10.0.64.0/20 -o tun-bar -j ACCEPT",
      "-o tun-bar -j DROP",
    ]);
    expect(open.input).toEqual(closed.input);
    expect(open.nat).toEqual(["-s 10.0.64.0/20 -o tun-bar -j MASQUERADE"]);
    expect(open.mss).toEqual(closed.mss);
  });

  it("covers every worker subnet, and matches only the lab's own tunnel", () => {
    const two = gatewayRules(lab, { ...gateway, workerCidrs: input.workerCidrs }, "open");
    for (const cidr of input.workerCidrs) {
      expect(two.forward).toContain(`-s ${cidr} -o tun-bar -j ACCEPT`);
      expect(two.input).toContain(`-s ${cidr} -j REJECT --reject-with icmp-port-unreachable`);
      expect(two.nat).toContain(`-s ${cidr} -o tun-bar -j MASQUERADE`);
    }
    const interfaces = Object.values(two)
      .flat()
      .flatMap((rule) => [...rule.matchAll(/-[io] (\S+)/g)].map((m) => m[1]));
    expect(new Set(interfaces)).toEqual(new Set(["tun-bar", "lo"]));
  });

  it("is iptables-restore input that empties and refills each of the lab's chains, and only those", () => {
    const text = renderGatewayRules(lab, gateway, "closed");
    const chains = iptablesChains("bar");
    expect(text.split("\n").filter((l) => l.startsWith("*") || l.startsWith(":") || l === "COMMIT")).toEqual([
      "*filter",
      `:${chains.forward} - [0:0]`,
      `:${chains.input} - [0:0]`,
      "COMMIT",
      "*nat",
      `:${chains.nat} - [0:0]`,
      "COMMIT",
      "*mangle",
      `:${chains.mss} - [0:0]`,
      "COMMIT",
    ]);
    expect(text).toContain(`-A ${chains.forward} -i tun-bar -j DROP\n`);
    expect(text).not.toMatch(/^-[AI] (?!labgate-bar-)/m);
  });

  it("rejects a hostile private address or worker CIDR", () => {
    expect(() => gatewayRules(lab, { ...gateway, privateIp: "10.0.1.10 -j ACCEPT" }, "open")).toThrow(
      /privateIp must be an IPv4 address/,
    );
    expect(() => gatewayRules(lab, { ...gateway, workerCidrs: ["0.0.0.0/0 -j ACCEPT"] }, "open")).toThrow(
      /workerCidrs\[0\] must be an IPv4 CIDR/,
    );
  });

  it("names each lab's chains apart, within iptables' 28 characters even for the longest lab name", () => {
    const longest = iptablesChains("abcdefghijk");
    for (const name of Object.values(longest)) expect(name.length).toBeLessThanOrEqual(28);
    expect(new Set(Object.values(longest)).size).toBe(4);
    const other = Object.values(iptablesChains("foo"));
    for (const name of Object.values(iptablesChains("bar"))) expect(other).not.toContain(name);
  });
});

describe("dispatcher", () => {
  const dispatcher = renderDispatcher(lab, { workerCidrs: input.workerCidrs, privateIp: input.privateIp });

  it("acts only for its lab's connection, with both rule sets of its lab", () => {
    expect(dispatcher).toContain(`readonly VPN_UUID='${vpnConnectionUuid("bar")}'`);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: bash parameter expansion, not a template
    expect(dispatcher).toContain('[[ ${CONNECTION_UUID:-} == "$VPN_UUID" ]] || exit 0');
    expect(dispatcher).toContain("readonly COMMENT='labgate:bar'");
    const gateway = { workerCidrs: input.workerCidrs, privateIp: input.privateIp };
    expect(dispatcher).toContain(renderGatewayRules(lab, gateway, "open"));
    expect(dispatcher).toContain(renderGatewayRules(lab, gateway, "closed"));
  });

  it("takes its lock in root's own folder, and never touches a chain's policy", () => {
    expect(runnerPaths("bar").lock).toBe("/run/labgate/bar.lock");
    // biome-ignore lint/suspicious/noTemplateCurlyInString: bash parameter expansion, not a template
    expect(dispatcher).toContain('install -d -m 0700 -o root -g root "${LOCK%/*}"');
    expect(dispatcher).not.toMatch(/ -P (INPUT|FORWARD|OUTPUT)\b/);
    expect(dispatcher).not.toMatch(/ip_forward=0/);
  });

  it("passes shellcheck", () => {
    if (!requireTool("shellcheck")) return;
    expect(shellcheck(dispatcher).stdout).toBe("");
  });
});

describe("worker user script and resolved drop-ins", () => {
  it("sends each intranet domain to the lab's DNS service address alone, then restarts resolved", () => {
    const script = renderWorkerScript(lab, "10.0.1.10");
    expect(script).toContain("[Resolve]\nDNS=100.64.53.2\nDomains=~bar.example ~lab.bar.example\n");
    expect(script).toContain("systemctl restart systemd-resolved");
    if (requireTool("shellcheck")) expect(shellcheck(script).stdout).toBe("");
  });

  it("sends them to the runner alone for a lab without a DNS service address", () => {
    const without = LabConfigSchema.parse({ ...labs[1], dnsServiceAddress: undefined });
    expect(renderWorkerScript(without, "10.0.1.10")).toContain("[Resolve]\nDNS=10.0.1.10\nDomains=");
    expect(renderServiceResolvedDropIn(without)).toBeUndefined();
  });

  it("makes the runner's resolved listen on its private address, and on the lab's DNS service address", () => {
    expect(renderRunnerResolvedDropIn("10.0.1.10")).toContain("[Resolve]\nDNSStubListenerExtra=10.0.1.10\n");
    expect(renderServiceResolvedDropIn(lab)).toContain("[Resolve]\nDNSStubListenerExtra=100.64.53.2\n");
  });
});

describe("health reporter", () => {
  it("publishes TunnelHealthy per lab and runner every 10 s, at high resolution, in the lab's namespace", () => {
    const script = renderHealthScript(lab, "i-0123456789abcdef0");
    expect(script).toContain("--namespace 'labgate/bar'");
    expect(script).toContain("--metric-name 'TunnelHealthy'");
    expect(script).toContain("--storage-resolution 1");
    expect(script).toContain('--dimensions "Lab=$LAB,InstanceId=$INSTANCE_ID"');
    expect(renderHealthService(lab)).toContain(`ExecStart=${runnerPaths("bar").healthScript}`);
    expect(renderHealthTimer(lab)).toContain("OnUnitActiveSec=10s");
    if (requireTool("shellcheck")) expect(shellcheck(script).stdout).toBe("");
  });
});

describe("put_file and SELinux labels", () => {
  // put_file makes files root-owned: as root only (CI runs as root).
  const asRoot = process.getuid?.() === 0;
  if (!asRoot && inCi) throw new Error("the put_file tests need root in CI");

  /** Runs put_file twice on a new folder's file (the second time unchanged), with a restorecon that logs. */
  const putTwice = (selinuxLabels: string) => {
    const dir = mkdtempSync(join(tmpdir(), "labgate-put-file-"));
    writeFileSync(join(dir, "restorecon"), `#!/bin/sh\necho "$*" >>${dir}/restorecon.log\n`, { mode: 0o755 });
    const target = join(dir, "etc", "labgate.conf");
    const script = `set -Eeuo pipefail
${messageFunctions("foo")}
SELINUX_LABELS=${selinuxLabels}
${PUT_FILE_FUNCTION}
echo one | put_file 0644 ${target}
echo one | put_file 0644 ${target}
`;
    writeFileSync(join(dir, "put.sh"), script);
    const result = spawnSync("bash", [join(dir, "put.sh")], {
      encoding: "utf8",
      env: { PATH: `${dir}:${process.env.PATH}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let log = "";
    try {
      log = readFileSync(join(dir, "restorecon.log"), "utf8");
    } catch {
      // restorecon never ran
    }
    rmSync(dir, { recursive: true });
    return { result, log, target, dir };
  };

  it.skipIf(!asRoot)("restores the label of each folder and file it writes where SELinux is enabled", () => {
    const { result, log, target, dir } = putTwice("1");
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe(`labgate foo: wrote ${target}\nlabgate foo: unchanged ${target}\n`);
    expect(log).toBe(`-F ${join(dir, "etc")}\n-F ${target}\n`);
  });

  it.skipIf(!asRoot)("leaves labels alone where SELinux is not enabled", () => {
    const { result, log } = putTwice("0");
    expect(result.status).toBe(0);
    expect(log).toBe("");
  });
});
