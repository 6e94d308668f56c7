// Building blocks of hosts that run the real programs in network namespaces: a private system bus,
// systemd-resolved, a runner with NetworkManager as after a reboot (no Docker, FORWARD policy ACCEPT), and the
// two seams that stand in for what a namespace does not have (the AWS CLI and systemd). Shared by the
// end-to-end test and the lab.
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { tlsCredentialText } from "../render/credential.ts";
import { type Host, type NetnsWorld, run, waitFor } from "./netns.ts";

export const RESOLVED = "/opt/resolved/lib/systemd/systemd-resolved";
const RESOLVED_POLICY = "/opt/resolved/usr/share/dbus-1/system.d/org.freedesktop.resolve1.conf";
const PROGRAMS = [
  "NetworkManager",
  "nmcli",
  "openvpn",
  "dnsmasq",
  "iptables",
  "iptables-restore",
  "dbus-daemon",
  "dig",
  "curl",
  "nsenter",
  "ping",
  "openssl",
  "setpriv",
];

/** Programs and files missing on this machine for hosts on the real programs (see .ci/apt-packages.txt). */
export const missingPrograms = async (): Promise<string[]> => {
  const missing: string[] = [];
  for (const p of PROGRAMS) {
    const r = await run(["sh", "-c", `command -v ${p}`], { check: false });
    if (r.code !== 0) missing.push(p);
  }
  for (const f of [RESOLVED, RESOLVED_POLICY, "/usr/lib/NetworkManager/nm-openvpn-service"]) {
    try {
      statSync(f);
    } catch {
      missing.push(f);
    }
  }
  return missing;
};

/** Where the seams read and write; passed to every command run on a host. */
export interface SeamPaths {
  /** Folder of the shims (`aws`, `systemctl`), first in PATH. */
  readonly shims: string;
  /** Folder of credential parameters: parameter /a/b/c is the file _a_b_c. */
  readonly credentials: string;
  /** Every call of the fake `aws`, one per line. */
  readonly awsLog: string;
  /** Tags the fake `aws` wrote on instances: one file per instance and key (tagFile), holding the value. */
  readonly tags: string;
}

/** The environment of a command run on a host whose own files live in hostDir. */
export const hostEnv = (seams: SeamPaths, hostDir: string): NodeJS.ProcessEnv => ({
  PATH: `${seams.shims}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
  LABGATE_LOCAL_HOST_DIR: hostDir,
  LABGATE_LOCAL_CREDENTIALS: seams.credentials,
  LABGATE_LOCAL_AWS_LOG: seams.awsLog,
  LABGATE_LOCAL_TAGS: seams.tags,
  AWS_DEFAULT_REGION: "eu-local-1",
});

/** The file where the fake `aws` keeps the value of an instance's tag. */
export const tagFile = (seams: SeamPaths, instanceId: string, key: string): string =>
  join(seams.tags, `${instanceId}.${key.replaceAll(":", "_")}`);

/** The file a credential parameter is served from. */
export const credentialFile = (seams: SeamPaths, parameter: string): string =>
  join(seams.credentials, parameter.replaceAll("/", "_"));

/**
 * Writes the fake `aws` (serves SSM parameters from files, keeps the instance tags a runner writes in files,
 * records every call) and the `systemctl` shim.
 */
export const writeShims = (seams: SeamPaths): void => {
  mkdirSync(seams.shims, { recursive: true });
  mkdirSync(seams.credentials, { recursive: true });
  mkdirSync(seams.tags, { recursive: true });
  writeFileSync(
    join(seams.shims, "aws"),
    `#!/bin/bash
# Stand-in for the AWS CLI: serves SSM parameters from files, records every call.
printf '%s\\n' "$*" >>"$LABGATE_LOCAL_AWS_LOG"
case "$1 $2" in
  "ssm get-parameter")
    name=""
    args=("$@")
    for i in "\${!args[@]}"; do [[ \${args[i]} == --name ]] && name=\${args[i+1]}; done
    [[ " $* " == *" --with-decryption "* && -n $name ]] || { echo "fake aws: unexpected $*" >&2; exit 2; }
    file=$LABGATE_LOCAL_CREDENTIALS/\${name//\\//_}
    [[ -f $file ]] || { echo "An error occurred (ParameterNotFound) when calling the GetParameter operation: $name" >&2; exit 254; }
    cat "$file" ;;
  "cloudwatch put-metric-data") ;;
  "ec2 create-tags")
    # ec2 create-tags --resources <instance> --tags Key=<key>,Value=<value> [--cli-* options]
    [[ $3 == --resources && $5 == --tags && $6 =~ ^Key=([^,]+),Value=(.*)$ ]] || { echo "fake aws: unexpected $*" >&2; exit 2; }
    file=$LABGATE_LOCAL_TAGS/$4.\${BASH_REMATCH[1]//:/_}
    printf '%s' "\${BASH_REMATCH[2]}" >"$file.tmp" && mv -f "$file.tmp" "$file" ;;
  *) echo "fake aws: unsupported $*" >&2; exit 2 ;;
esac
`,
    { mode: 0o755 },
  );
  writeFileSync(
    join(seams.shims, "systemctl"),
    `#!/bin/bash
# Stand-in for systemd, which does not run in a namespace: restarts this host's own systemd-resolved by pid;
# starts and stops a service by running its unit's ExecStart (its pid in <unit>.pid, its output in <unit>.log;
# no restart when it exits); firewalld is not running; records the rest.
set -euo pipefail
dir=$LABGATE_LOCAL_HOST_DIR
echo "systemctl $*" >>"$dir/systemctl.log"
pidfile=$dir/resolved.pid
running() { [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
service_running() { [[ -f $dir/$1.pid ]] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }
service_stop() {
  local pid
  service_running "$1" || return 0
  pid=$(cat "$dir/$1.pid"); kill "$pid"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$dir/$1.pid"
}
# As systemd does, a service inherits none of the caller's file descriptors (a lock it holds, a pipe).
detached() {
  for fd in /proc/$BASHPID/fd/*; do
    fd=\${fd##*/}
    if ((fd > 2)); then eval "exec $fd>&-"; fi
  done
  exec setsid "$@" </dev/null
}
service_start() {
  local command
  service_running "$1" && return 0
  command=$(sed -n 's/^ExecStart=//p' "/etc/systemd/system/$1")
  [[ -n $command ]] || { echo "systemctl shim: no ExecStart in /etc/systemd/system/$1" >&2; exit 1; }
  # shellcheck disable=SC2086 # ExecStart is a command line: split as systemd does (no quoting in labgate's)
  (detached $command) >>"$dir/$1.log" 2>&1 &
  echo $! >"$dir/$1.pid"
}
case "$*" in
  "is-active --quiet systemd-resolved") running ;;
  "restart systemd-resolved")
    if running; then
      pid=$(cat "$pidfile"); kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    (detached ${RESOLVED}) >>"$dir/resolved.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 100); do
      dig +time=1 +tries=1 @127.0.0.53 localhost >/dev/null 2>&1 && exit 0
      sleep 0.1
    done
    echo "systemctl shim: systemd-resolved did not answer on 127.0.0.53" >&2; exit 1 ;;
  "is-active --quiet firewalld") exit 3 ;;
  "start "*.service) service_start "$2" ;;
  "restart "*.service) service_stop "$2"; service_start "$2" ;;
  "stop "*.service) service_stop "$2" ;;
  "disable --now "*.service) service_stop "$3" ;;
  daemon-reload | "enable --now "*.timer | "disable --now "*.timer | "enable "*.service) ;;
  *) echo "systemctl shim: unsupported $*" >&2; exit 1 ;;
esac
`,
    { mode: 0o755 },
  );
};

/** A private system bus with the host's D-Bus policies plus systemd-resolved's. */
export const startBus = async (host: Host, hostDir: string): Promise<void> => {
  const policies = join(hostDir, "dbus-policies");
  mkdirSync(policies, { recursive: true });
  for (const f of readdirSync("/etc/dbus-1/system.d"))
    copyFileSync(join("/etc/dbus-1/system.d", f), join(policies, f));
  copyFileSync(RESOLVED_POLICY, join(policies, "org.freedesktop.resolve1.conf"));
  await host.bind(policies, "/etc/dbus-1/system.d");
  mkdirSync(join(hostDir, "dbus"), { recursive: true });
  await host.bind(join(hostDir, "dbus"), "/run/dbus");
  host.start(["dbus-daemon", "--system", "--nofork", "--nopidfile"], join(hostDir, "dbus.log"));
  await waitFor("the private system bus", () => {
    try {
      return statSync(join(hostDir, "dbus", "system_bus_socket")).isSocket();
    } catch {
      return false;
    }
  });
};

/** systemd-resolved of a host, with private /etc/systemd and /run/systemd; restartable by the shim. */
export const startResolved = async (
  world: NetnsWorld,
  host: Host,
  hostDir: string,
  seams: SeamPaths,
): Promise<void> => {
  const etc = join(hostDir, "systemd-etc");
  const runDir = join(hostDir, "systemd-run");
  mkdirSync(join(etc, "resolved.conf.d"), { recursive: true });
  mkdirSync(join(etc, "system"), { recursive: true });
  mkdirSync(runDir, { recursive: true });
  await run(["chown", "systemd-resolve:", runDir]);
  await host.bind(etc, "/etc/systemd");
  await host.bind(runDir, "/run/systemd");
  writeFileSync(join(hostDir, "resolv.conf"), "nameserver 127.0.0.53\n");
  await host.bind(join(hostDir, "resolv.conf"), "/etc/resolv.conf");
  world.trackPidFile(join(hostDir, "resolved.pid"));
  await host.exec(["systemctl", "restart", "systemd-resolved"], { env: hostEnv(seams, hostDir) });
};

/** The system paths of a runner that the setup writes: each a private folder of the host. */
const RUNNER_PATHS = [
  "/etc/NetworkManager",
  "/var/lib/NetworkManager",
  "/run/NetworkManager",
  "/etc/sysctl.d",
  "/etc/labgate",
  "/var/lib/labgate",
  "/usr/local/sbin",
  "/etc/gitlab-runner",
  "/run/lock",
  "/run/labgate",
];

/** Where a runner's system path really lives on this machine. */
export const onRunner = (hostDir: string, path: string): string =>
  join(hostDir, "binds", path.replaceAll("/", "_"));

export interface EthernetConnection {
  readonly ifname: string;
  readonly name: string;
  readonly cidr: string;
  /** The gateway makes it the connection of the default route (the runner's own Ethernet). */
  readonly gateway?: string;
}

/**
 * A runner as an EC2 instance is after a reboot, before labgate's setup: forwarding off, the kernel's empty
 * firewall (FORWARD policy ACCEPT, no Docker: whatever must filter is labgate's to set up), a private bus,
 * systemd-resolved, and NetworkManager managing its Ethernet connections. Returns the UUID of the connection
 * that has the gateway.
 */
export const prepareRunner = async (
  world: NetnsWorld,
  host: Host,
  hostDir: string,
  seams: SeamPaths,
  connections: readonly EthernetConnection[],
): Promise<string> => {
  mkdirSync(join(hostDir, "binds"), { recursive: true });
  await host.exec(["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
  await startBus(host, hostDir);
  for (const p of RUNNER_PATHS) {
    mkdirSync(onRunner(hostDir, p), { recursive: true });
    await host.bind(onRunner(hostDir, p), p);
  }
  // As on Debian and Ubuntu: any local user may create lock files there.
  chmodSync(onRunner(hostDir, "/run/lock"), 0o1777);
  for (const d of ["system-connections", "dispatcher.d", "conf.d"]) {
    mkdirSync(join(onRunner(hostDir, "/etc/NetworkManager"), d), { recursive: true });
  }
  writeFileSync(
    join(onRunner(hostDir, "/etc/NetworkManager"), "NetworkManager.conf"),
    // rc-manager=unmanaged: /etc/resolv.conf is the host's own (bind-mounted) file; NetworkManager must
    // never write one, least of all the machine's if a mount were missing.
    "[main]\nplugins=keyfile\ndhcp=internal\nrc-manager=unmanaged\n[keyfile]\nunmanaged-devices=none\n",
  );
  await startResolved(world, host, hostDir, seams);
  // NetworkManager does not wait for udev (which does not run here) when /sys is read-only.
  await host.exec(["mount", "-o", "remount,ro", "/sys"]);
  host.start(
    ["NetworkManager", "--debug", "--log-level=INFO", "--log-domains=ALL,VPN_PLUGIN:TRACE"],
    join(hostDir, "nm.log"),
  );
  await waitFor(
    "NetworkManager to answer",
    async () => (await host.exec(["nmcli", "general", "status"], { check: false })).code === 0,
  );
  let primary = "";
  for (const c of connections) {
    await host.exec([
      "nmcli",
      "connection",
      "add",
      "type",
      "ethernet",
      "ifname",
      c.ifname,
      "con-name",
      c.name,
      "ipv4.method",
      "manual",
      "ipv4.addresses",
      c.cidr,
      ...(c.gateway ? ["ipv4.gateway", c.gateway] : ["ipv4.never-default", "yes"]),
      "ipv6.method",
      "disabled",
    ]);
    await host.exec(["nmcli", "connection", "up", c.name]);
    if (c.gateway)
      primary = (
        await host.exec(["nmcli", "-g", "connection.uuid", "connection", "show", c.name])
      ).stdout.trim();
  }
  return primary;
};

/** Runs a rendered command script the way SSM does: the marker line, then the script, run by /bin/sh. */
export const runCommandScript = async (
  host: Host,
  hostDir: string,
  seams: SeamPaths,
  name: string,
  marker: string,
  script: string,
) => {
  const file = join(hostDir, `${name}.sh`);
  writeFileSync(file, `${marker}\n${script}`, { mode: 0o700 });
  return host.exec(["sh", "-c", file], { env: hostEnv(seams, hostDir), check: false, timeoutMs: 120_000 });
};

/** One client's static-key OpenVPN server on the lab's side (static keys serve one client at a time). */
export interface StaticKeyServer {
  readonly tun: string;
  readonly serverIp: string;
  readonly clientIp: string;
  readonly keyFile: string;
  readonly cipher: string;
  readonly listen: string;
  readonly port: number;
}

/** Starts the server; returns its pid. */
export const startStaticKeyServer = (host: Host, server: StaticKeyServer, logFile: string): number =>
  host.start(
    [
      "openvpn",
      "--dev",
      server.tun,
      "--ifconfig",
      server.serverIp,
      server.clientIp,
      "--secret",
      server.keyFile,
      "0",
    ].concat([
      "--cipher",
      server.cipher,
      "--local",
      server.listen,
      "--port",
      String(server.port),
      "--proto",
      "udp",
      "--verb",
      "3",
    ]),
    logFile,
  );

/**
 * A new static key, and the credential parameter that hands it to a client: the key file with the client's
 * addresses (and its server's port, when it has its own) on a comment line. Returns the key's first line
 * of key material, so that a test can check it is never printed.
 */
export const makeCredential = async (
  keyFile: string,
  parameterFile: string,
  client: { readonly local: string; readonly remote: string; readonly port?: number },
): Promise<string> => {
  await run(["openvpn", "--genkey", "secret", keyFile]);
  const lines = readFileSync(keyFile, "utf8").split("\n");
  const port = client.port === undefined ? "" : ` port=${client.port}`;
  lines.splice(1, 0, `# labgate local=${client.local} remote=${client.remote}${port}`);
  writeFileSync(parameterFile, lines.join("\n"), { mode: 0o600 });
  return lines.find((l) => /^[0-9a-f]{32}$/.test(l)) ?? "";
};

/** A TLS server's or client's certificate: self-signed, as a lab without a PKI makes them. */
export interface Certificate {
  readonly certificate: string;
  readonly key: string;
  /** SHA-256 fingerprint, AA:BB:... as openssl prints it (and --peer-fingerprint takes it). */
  readonly fingerprint: string;
}

/** A new self-signed EC certificate for `name`, its files beside each other in `dir`. */
export const makeCertificate = async (dir: string, name: string): Promise<Certificate> => {
  const certificate = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await run(
    ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"].concat([
      "-nodes",
      "-keyout",
      key,
      "-out",
      certificate,
      "-days",
      "3650",
      "-subj",
      `/CN=${name}`,
    ]),
  );
  const printed = await run(["openssl", "x509", "-in", certificate, "-noout", "-fingerprint", "-sha256"]);
  return { certificate, key, fingerprint: printed.stdout.trim().replace(/^[^=]*=/, "") };
};

/**
 * A TLS client of the lab: its own certificate, and the credential parameter that hands it to a runner with
 * the server's certificate. Returns the client's certificate and a line of its private key (never printed).
 */
export const makeTlsCredential = async (
  dir: string,
  name: string,
  parameterFile: string,
  server: Certificate,
  port?: number,
): Promise<{ readonly client: Certificate; readonly keyLine: string }> => {
  const client = await makeCertificate(dir, name);
  const key = readFileSync(client.key, "utf8");
  const text = tlsCredentialText({
    serverCertificate: readFileSync(server.certificate, "utf8"),
    clientCertificate: readFileSync(client.certificate, "utf8"),
    clientKey: key,
    ...(port === undefined ? {} : { port }),
  });
  writeFileSync(parameterFile, text, { mode: 0o600 });
  return { client, keyLine: key.split("\n").find((l) => l.length > 20 && !l.startsWith("-----")) ?? "" };
};

/**
 * The lab's TLS OpenVPN server, as a lab runs one for all its clients: server mode (it gives each client its
 * tunnel address), its own self-signed certificate, and the fingerprints of the client certificates it
 * accepts. A second connection with a client's certificate drops the first: one client at a time.
 */
export interface TlsServer {
  readonly tun: string;
  /** The tunnel network, a /24: the server takes .1, clients get addresses from the rest. */
  readonly network: string;
  readonly server: Certificate;
  readonly clientFingerprints: readonly string[];
  readonly listen: string;
  readonly port: number;
}

/** Starts the server (its configuration file is written beside its log); returns its pid. */
export const startTlsServer = (host: Host, server: TlsServer, logFile: string): number => {
  const config = `${logFile}.conf`;
  writeFileSync(
    config,
    [
      // server: mode server, tls-server, the server's tunnel address and its pool of client addresses.
      `server ${server.network} 255.255.255.0`,
      "topology subnet",
      `dev ${server.tun}`,
      "dev-type tun",
      `cert ${server.server.certificate}`,
      `key ${server.server.key}`,
      "dh none",
      `local ${server.listen}`,
      `port ${server.port}`,
      "proto udp",
      "keepalive 10 60",
      "verb 3",
      "<peer-fingerprint>",
      ...server.clientFingerprints,
      "</peer-fingerprint>",
      "",
    ].join("\n"),
  );
  return host.start(["openvpn", "--config", config], logFile);
};

/** The lab's intranet services on `address` (on the lab host's lo): DNS for beaker.<domain>, and "Beaker". */
export const startIntranet = async (
  host: Host,
  dir: string,
  address: string,
  domain: string,
): Promise<void> => {
  // Authoritative for its domain, as a lab's DNS is: a name it has no address of that type for (Beaker's AAAA)
  // gets an answer, not REFUSED (dnsmasq without upstream servers refuses what it cannot answer, and resolvers
  // take REFUSED as a broken server and move to the next).
  writeFileSync(join(dir, "dnsmasq.conf"), `local=/${domain}/\naddress=/beaker.${domain}/${address}\n`);
  host.start(
    [
      "dnsmasq",
      "--keep-in-foreground",
      `--conf-file=${join(dir, "dnsmasq.conf")}`,
      `--listen-address=${address}`,
    ].concat(["--bind-interfaces", "--no-resolv", "--no-hosts"]),
    join(dir, "dnsmasq.log"),
  );
  host.start(
    [
      process.execPath,
      "-e",
      `require("node:http").createServer((q, s) => s.end("beaker stand-in; client=" + q.socket.remoteAddress + "\\n")).listen(80, "${address}")`,
    ],
    join(dir, "web.log"),
  );
  await waitFor("the lab's DNS and web server", async () => {
    const dns = await host.exec(["dig", "+short", "+time=1", "+tries=1", `@${address}`, `beaker.${domain}`], {
      check: false,
    });
    const web = await host.exec(["curl", "-s", "--max-time", "1", `http://${address}/`], { check: false });
    return dns.stdout.trim() === address && web.code === 0;
  });
};
