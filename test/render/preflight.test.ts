// The preflight, run for real by bash on a fake runner: a folder of stub programs (the only PATH) and the
// files it reads (os-release, resolv.conf, NetworkManager's VPN plugins). One missing piece at a time, each
// must be named with the package that provides it on the runner's distribution.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LabConfigSchema } from "../../functions/core/config.ts";
import {
  type Family,
  messageFunctions,
  PACKAGES,
  type PreflightHost,
  preflightFunctions,
  REQUIRED_COMMANDS,
  renderPreflight,
  renderRunnerSetup,
} from "../../functions/render/index.ts";
import { labs } from "../../infra/labs.ts";

const OS_RELEASE: Record<Family | "unknown", string> = {
  debian: 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n',
  rhel: 'PRETTY_NAME="Fedora Linux 41 (Cloud Edition)"\nID=fedora\n',
  amzn: 'PRETTY_NAME="Amazon Linux 2023.6.20250107"\nID="amzn"\nID_LIKE="fedora"\nVERSION_ID="2023"\n',
  unknown: 'PRETTY_NAME="Some Linux"\nID=some\n',
};

/** Real programs the preflight itself leans on (not requirements of the setup). */
const TOOLS = ["bash", "sed", "head", "tr", "grep", "cat", "sleep"];

/** What a runner image that has everything answers; each test changes one thing. */
interface FakeRunner {
  readonly family: Family | "unknown";
  readonly missing: readonly string[];
  /** Stub programs' bodies (bash), by name; replaces the default. */
  readonly programs: Readonly<Record<string, string>>;
  readonly resolvConf: string;
  readonly plugin: "installed" | "absent" | "program-missing";
  readonly legacyTables: string;
  readonly dockerDaemonJson?: string;
  readonly uid: number;
}

const DEFAULT_PROGRAMS: Record<string, string> = {
  nmcli: `case "$*" in
  "-t -f RUNNING general") echo running ;;
  "-g GENERAL.STATE device show eth0") echo "100 (connected)" ;;
  "-g TYPE,DEVICE connection show --active") printf '802-3-ethernet:eth0\\nvpn:\\n' ;;
  *) echo "nmcli stub: unexpected $*" >&2; exit 2 ;;
esac`,
  ip: `[[ "$*" == "-4 route show default" ]] && echo "default via 10.0.0.1 dev eth0 proto static metric 100"`,
  systemctl: `case "$*" in
  "is-active --quiet systemd-resolved") exit 0 ;;
  "is-active --quiet firewalld") exit 3 ;;
  *) exit 1 ;;
esac`,
  iptables: `[[ $1 == --version ]] && echo "iptables v1.8.9 (nf_tables)"`,
  openvpn: `[[ $1 == --version ]] && printf 'OpenVPN 2.6.14 x86_64-pc-linux-gnu [SSL (OpenSSL)]\\nlibrary versions: OpenSSL 3.0\\n'`,
  id: `[[ $1 == -u ]] && echo "$FAKE_UID"`,
};

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const which = (program: string): string => {
  const r = spawnSync("sh", ["-c", `command -v ${program}`], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${program} is needed by this test`);
  return r.stdout.trim();
};

const runPreflight = (patch: Partial<FakeRunner> = {}) => {
  const fake: FakeRunner = {
    family: "debian",
    missing: [],
    programs: {},
    resolvConf: "nameserver 127.0.0.53\noptions edns0 trust-ad\n",
    plugin: "installed",
    legacyTables: "",
    uid: 0,
    ...patch,
  };
  const dir = mkdtempSync(join(tmpdir(), "labgate-preflight-"));
  dirs.push(dir);
  const bin = join(dir, "bin");
  mkdirSync(bin);
  for (const tool of TOOLS) symlinkSync(which(tool), join(bin, tool));
  const programs = { ...DEFAULT_PROGRAMS, ...fake.programs };
  for (const name of [...REQUIRED_COMMANDS, ...Object.keys(programs)]) {
    if (fake.missing.includes(name)) continue;
    const body = programs[name];
    // awk and cmp do real work in the preflight: the real ones, unless a test replaces them.
    if (body === undefined && (name === "awk" || name === "cmp")) symlinkSync(which(name), join(bin, name));
    else writeFileSync(join(bin, name), `#!/bin/bash\n${body ?? "exit 0"}\n`, { mode: 0o755 });
  }
  const pluginDir = join(dir, "VPN");
  mkdirSync(pluginDir);
  const service = join(dir, "nm-openvpn-service");
  if (fake.plugin !== "program-missing") writeFileSync(service, "#!/bin/sh\n", { mode: 0o755 });
  if (fake.plugin !== "absent") {
    writeFileSync(
      join(pluginDir, "nm-openvpn-service.name"),
      `[VPN Connection]\nname=openvpn\nservice=org.freedesktop.NetworkManager.openvpn\nprogram=${service}\n`,
    );
  }
  const host: PreflightHost = {
    osRelease: join(dir, "os-release"),
    resolvConf: join(dir, "resolv.conf"),
    vpnPluginDirs: [pluginDir, join(dir, "no-such-dir")],
    legacyTables: join(dir, "ip_tables_names"),
    dockerDaemonJson: join(dir, "daemon.json"),
  };
  writeFileSync(host.osRelease, OS_RELEASE[fake.family]);
  writeFileSync(host.resolvConf, fake.resolvConf);
  writeFileSync(host.legacyTables, fake.legacyTables);
  if (fake.dockerDaemonJson !== undefined) writeFileSync(host.dockerDaemonJson, fake.dockerDaemonJson);
  const script = join(dir, "preflight.sh");
  writeFileSync(
    script,
    `set -Eeuo pipefail\n${messageFunctions("foo")}\n${preflightFunctions(host)}\npreflight\necho "RESULT refuses-static-keys=$OPENVPN_REFUSES_STATIC_KEYS selinux-labels=$SELINUX_LABELS"\n`,
  );
  chmodSync(script, 0o644);
  const result = spawnSync(join(bin, "bash"), [script], {
    encoding: "utf8",
    env: { PATH: bin, FAKE_UID: String(fake.uid) },
    timeout: 20_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
};

/** The problems the preflight named, one per line. */
const problems = (stderr: string): string[] =>
  stderr
    .split("\n")
    .filter((l) => l.startsWith("labgate foo: preflight: "))
    .map((l) => l.slice("labgate foo: preflight: ".length));

describe("preflight on a runner image that has everything", () => {
  it("passes, says which backend and OpenVPN it found, and leaves static keys allowed", () => {
    const r = runPreflight();
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("preflight on Debian GNU/Linux 12 (bookworm) (packages of family debian)");
    expect(r.stdout).toContain("preflight: iptables backend nf_tables");
    expect(r.stdout).toContain("preflight: OpenVPN 2.6.14 (static-key and TLS credentials)");
    expect(r.stdout).toContain("preflight: every requirement is met");
    expect(r.stdout).toContain("RESULT refuses-static-keys=0 selinux-labels=0");
  });
});

describe("preflight names each missing piece and the package that provides it", () => {
  const families: Family[] = ["debian", "rhel", "amzn"];
  it.each(REQUIRED_COMMANDS.flatMap((command) => families.map((family) => [command, family] as const)))(
    "a missing %s on %s",
    (command, family) => {
      const r = runPreflight({ family, missing: [command] });
      expect(r.code).toBe(1);
      expect(problems(r.stderr)).toContain(`${command} is missing: install ${PACKAGES[command]?.[family]}`);
      expect(r.stderr).toContain("FAILED: preflight: this runner lacks");
      expect(r.stderr).toContain("nothing was changed");
      expect(r.stdout).not.toContain("RESULT");
    },
  );

  it("names what provides a program on a distribution it does not know", () => {
    const r = runPreflight({ family: "unknown", missing: ["dig"] });
    expect(problems(r.stderr)).toContain("dig is missing: install the package that provides dig");
  });

  it("NetworkManager's OpenVPN plugin, absent or with its program gone", () => {
    for (const plugin of ["absent", "program-missing"] as const) {
      const r = runPreflight({ family: "rhel", plugin });
      expect(r.code).toBe(1);
      expect(problems(r.stderr)).toEqual([
        "NetworkManager's OpenVPN plugin is missing: install NetworkManager-openvpn (EPEL on CentOS Stream and RHEL)",
      ]);
    }
    expect(problems(runPreflight({ family: "debian", plugin: "absent" }).stderr)).toEqual([
      "NetworkManager's OpenVPN plugin is missing: install network-manager-openvpn",
    ]);
  });

  it("NetworkManager not running", () => {
    const r = runPreflight({
      programs: { nmcli: `[[ "$*" == "-t -f RUNNING general" ]] && echo "not running"` },
    });
    expect(problems(r.stderr)).toEqual([
      "NetworkManager is not running: systemctl enable --now NetworkManager",
    ]);
  });

  it("the default route's interface not managed by NetworkManager, with the fix for the distribution", () => {
    const unmanaged = `case "$*" in
  "-t -f RUNNING general") echo running ;;
  "-g GENERAL.STATE device show eth0") echo "10 (unmanaged)" ;;
  *) exit 0 ;;
esac`;
    const debian = runPreflight({ programs: { nmcli: unmanaged } });
    expect(problems(debian.stderr)).toEqual([
      "NetworkManager does not manage eth0 (the default route's interface): on Ubuntu set 'renderer: NetworkManager' in netplan; on Debian remove eth0 from /etc/network/interfaces",
    ]);
    const amzn = runPreflight({ family: "amzn", programs: { nmcli: unmanaged } });
    expect(problems(amzn.stderr)).toEqual([
      "NetworkManager does not manage eth0 (the default route's interface): systemd-networkd does on Amazon Linux 2023, which labgate does not support (README)",
    ]);
    const rhel = runPreflight({ family: "rhel", programs: { nmcli: unmanaged } });
    expect(problems(rhel.stderr)).toEqual([
      "NetworkManager does not manage eth0 (the default route's interface): nmcli device set eth0 managed yes",
    ]);
  });

  it("no default route, and a default interface without an active Ethernet connection", () => {
    expect(problems(runPreflight({ programs: { ip: "exit 0" } }).stderr)).toEqual([
      "there is no IPv4 default route: NetworkManager must bring up the runner's Ethernet connection",
    ]);
    const noEthernet = DEFAULT_PROGRAMS.nmcli?.replace("802-3-ethernet:eth0", "bridge:eth0") ?? "";
    expect(problems(runPreflight({ programs: { nmcli: noEthernet } }).stderr)).toEqual([
      "eth0 (the default route's interface) has no active NetworkManager Ethernet connection",
    ]);
  });

  it("systemd-resolved not running, or not the system's resolver", () => {
    const stopped = runPreflight({ family: "rhel", programs: { systemctl: "exit 3" } });
    expect(problems(stopped.stderr)).toEqual([
      "systemd-resolved is not running: install systemd-resolved, then systemctl enable --now systemd-resolved",
    ]);
    const elsewhere = runPreflight({ resolvConf: "nameserver 10.0.0.2\nsearch ec2.internal\n" });
    expect(problems(elsewhere.stderr)[0]).toMatch(
      /resolv\.conf does not send queries to systemd-resolved \(nameserver 127\.0\.0\.53\): ln -sf \/run\/systemd\/resolve\/stub-resolv\.conf \/etc\/resolv\.conf$/,
    );
  });

  it("Docker's rules in the other iptables backend", () => {
    const dockerRules = `printf '*filter\\n:INPUT ACCEPT [0:0]\\n:DOCKER - [0:0]\\n:DOCKER-USER - [0:0]\\nCOMMIT\\n'`;
    // nf_tables iptables, Docker's rules in legacy tables (present: ip_tables_names lists them).
    const legacy = runPreflight({
      legacyTables: "filter\nnat\n",
      programs: { "iptables-legacy-save": dockerRules },
    });
    expect(problems(legacy.stderr)).toEqual([
      "Docker's rules are in the iptables-legacy backend but iptables is nf_tables: make iptables use the backend Docker uses (update-alternatives --config iptables on Debian and Ubuntu), then restart Docker",
    ]);
    // Legacy tables that hold no Docker chain are someone else's business.
    const other = runPreflight({
      legacyTables: "filter\n",
      programs: { "iptables-legacy-save": "echo '*filter'" },
    });
    expect(other.code).toBe(0);
    // No legacy tables at all: the legacy backend is not even read (it would load its modules).
    const unread = runPreflight({ programs: { "iptables-legacy-save": "echo read >&2; exit 9" } });
    expect(unread.code).toBe(0);
    expect(unread.stderr).toBe("");
    // Legacy iptables, Docker's rules in nf_tables.
    const nft = runPreflight({
      programs: { iptables: `echo "iptables v1.8.9 (legacy)"`, "iptables-nft-save": dockerRules },
    });
    expect(problems(nft.stderr)).toEqual([
      "Docker's rules are in the iptables-nft backend but iptables is legacy: make iptables use the backend Docker uses (update-alternatives --config iptables on Debian and Ubuntu), then restart Docker",
    ]);
    expect(runPreflight({ programs: { iptables: `echo "iptables v1.8.9 (legacy)"` } }).stdout).toContain(
      "preflight: iptables backend legacy",
    );
  });

  it("Docker's own nftables firewall backend, which has no DOCKER-USER chain", () => {
    const r = runPreflight({ dockerDaemonJson: '{ "firewall-backend": "nftables" }\n' });
    expect(problems(r.stderr)[0]).toMatch(/^Docker uses its nftables firewall backend \(.*daemon\.json\)/);
    expect(runPreflight({ dockerDaemonJson: '{ "log-driver": "journald" }\n' }).code).toBe(0);
  });

  it("OpenVPN 2.7: passes, but this runner takes TLS credentials only", () => {
    const r = runPreflight({
      programs: { openvpn: `echo "OpenVPN 2.7.0 x86_64-pc-linux-gnu [SSL (OpenSSL)]"` },
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      "preflight: OpenVPN 2.7.0 refuses static keys: this runner takes TLS credentials only",
    );
    expect(r.stdout).toContain("RESULT refuses-static-keys=1");
    const rc = runPreflight({ programs: { openvpn: `echo "OpenVPN 2.8_rc1 x86_64-pc-linux-gnu"` } });
    expect(rc.stdout).toContain("RESULT refuses-static-keys=1");
  });

  it("an OpenVPN too old, or one that does not say its version", () => {
    // OpenVPN before 2.5 exits 1 after printing its version.
    const old = runPreflight({ programs: { openvpn: `echo "OpenVPN 2.3.18 x86_64-pc-linux-gnu"; exit 1` } });
    expect(problems(old.stderr)).toEqual(["OpenVPN 2.3.18 is too old: labgate needs 2.4 or later"]);
    const mute = runPreflight({ programs: { openvpn: "echo hello" } });
    expect(problems(mute.stderr)).toEqual(["openvpn --version does not say which OpenVPN this is"]);
  });

  it("SELinux: labels restored where it is enabled, restorecon required there", () => {
    const enforcing = runPreflight({
      family: "rhel",
      programs: { getenforce: "echo Enforcing", restorecon: "exit 0" },
    });
    expect(enforcing.code).toBe(0);
    expect(enforcing.stdout).toContain(
      "preflight: SELinux Enforcing: the labels of what the setup writes are restored",
    );
    expect(enforcing.stdout).toContain("selinux-labels=1");
    const permissive = runPreflight({
      family: "rhel",
      programs: { getenforce: "echo Permissive", restorecon: "exit 0" },
    });
    expect(permissive.stdout).toContain("selinux-labels=1");
    const disabled = runPreflight({ family: "rhel", programs: { getenforce: "echo Disabled" } });
    expect(disabled.stdout).toContain("selinux-labels=0");
    const lacking = runPreflight({ family: "rhel", programs: { getenforce: "echo Enforcing" } });
    expect(problems(lacking.stderr)).toEqual([
      "SELinux is Enforcing but restorecon is missing: install policycoreutils",
    ]);
  });

  it("firewalld running is refused", () => {
    const r = runPreflight({ family: "rhel", programs: { systemctl: "exit 0" } });
    expect(problems(r.stderr)).toEqual([
      "firewalld is running: labgate's forwarding and NAT rules do not survive it (README); systemctl disable --now firewalld",
    ]);
  });

  it("not root", () => {
    expect(problems(runPreflight({ uid: 1000 }).stderr)).toEqual(["the setup must run as root"]);
  });

  it("names every problem at once", () => {
    const r = runPreflight({ family: "rhel", missing: ["dig", "aws"], plugin: "absent", resolvConf: "" });
    expect(problems(r.stderr)).toHaveLength(4);
    expect(r.stderr).toContain("FAILED: preflight: this runner lacks 4 requirement(s)");
  });
});

describe("preflight in the setup", () => {
  const lab = LabConfigSchema.parse(labs[0]);
  const setup = renderRunnerSetup({
    lab,
    instanceId: "i-0123456789abcdef0",
    privateIp: "10.0.1.10",
    credentialParameter: lab.vpn.credentials[0] ?? "",
    workerCidrs: ["10.0.64.0/20"],
  }).script;

  it("runs before the setup fetches the key or writes anything", () => {
    const first = setup.indexOf("\npreflight\n");
    expect(first).toBeGreaterThan(0);
    for (const step of ["aws ssm get-parameter", "\nput_file ", "mktemp -d", "install -d"]) {
      expect(setup.indexOf(step, first)).toBeGreaterThan(first);
      // Before the call, only definitions: the first use of each step comes after it.
      const before = setup.slice(0, first);
      const uses = before.split("\n").filter((l) => l.startsWith(step.trim()) && !/^\w+\(\) \{/.test(l));
      expect(uses).toEqual([]);
    }
  });

  it("is also a script of its own, for an image being built", () => {
    const script = renderPreflight(lab);
    expect(script).toContain("\npreflight\n");
    expect(script).toContain("this runner can run the setup");
  });
});
