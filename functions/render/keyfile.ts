// The lab's OpenVPN connection as a NetworkManager keyfile (nm-settings-keyfile(5)), in the canonical form
// that `nmcli --offline` prints, so that NetworkManager reads back exactly what was rendered.
import { createHash } from "node:crypto";
import type { LabConfig } from "../core/config.ts";
import { runnerPaths, tunDevice, vpnConnectionId } from "../core/names.ts";
import { RenderError, requireIpv4, validLab } from "./shell.ts";

/** The point-to-point addresses of one static-key client, read from its credential parameter. */
export interface TunnelAddresses {
  readonly local: string;
  readonly remote: string;
  /** The port of this client's server when it is not the lab's (one static-key server per client). */
  readonly port?: number;
}

/**
 * A stable UUID for the lab's VPN connection, derived from the lab's name: the Ethernet connection lists it
 * in connection.secondaries, and every setup run (and the stop-vpn script) must name the same one.
 */
export const vpnConnectionUuid = (lab: string): string => {
  const hex = createHash("sha256").update(`labgate-vpn:${lab}`).digest("hex");
  // RFC 4122 layout with version 8 (custom) and the standard variant bits.
  const variant = ((Number.parseInt(hex.slice(16, 17), 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
};

/** Static-key clients use key direction 1; the lab's server uses 0 (`--secret static.key 0`). */
export const STATIC_KEY_DIRECTION = 1;

/** The two kinds of credential parameter (README "Credential parameters"); the setup tells them apart. */
export const CREDENTIAL_KINDS = ["static-key", "tls"] as const;
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number];

/**
 * A TLS client notices a lab server that restarted (its session is gone) by the silence, and starts over:
 * a static-key tunnel has no session and needs none of this.
 */
const TLS_PING_SECONDS = 10;
const TLS_PING_RESTART_SECONDS = 60;

/** The [vpn] lines that differ between the kinds (nm-settings-keyfile(5) sorts data items by name). */
const credentialLines = (lab: LabConfig, kind: CredentialKind, local: string, remote: string) => {
  const paths = runnerPaths(lab.name);
  if (kind === "static-key") {
    return {
      head: [`cipher=${lab.vpn.cipher}`, "connection-type=static-key"],
      middle: [`local-ip=${local}`],
      tail: [
        `remote-ip=${remote}`,
        `static-key=${paths.staticKey}`,
        `static-key-direction=${STATIC_KEY_DIRECTION}`,
      ],
      afterDev: [],
    };
  }
  // NetworkManager-openvpn cannot pass --peer-fingerprint (no vpn.data key for it), so the server's own
  // self-signed certificate is the only CA: only the holder of that certificate's key passes as the server.
  // The cipher is negotiated (data-ciphers); the tunnel's addresses are the server's to push.
  return {
    head: [`ca=${paths.tlsCa}`, `cert=${paths.tlsCert}`, "connection-type=tls"],
    middle: [`ping=${TLS_PING_SECONDS}`, `ping-restart=${TLS_PING_RESTART_SECONDS}`],
    tail: [],
    afterDev: [`key=${paths.staticKey}`],
  };
};

const render = (
  lab: LabConfig,
  kind: CredentialKind,
  local: string,
  remote: string,
  port: string,
): string => {
  const routes = lab.intranetCidrs.map((cidr, i) => `route${i + 1}=${cidr}`);
  const lines = credentialLines(lab, kind, local, remote);
  return [
    "[connection]",
    `id=${vpnConnectionId(lab.name)}`,
    `uuid=${vpnConnectionUuid(lab.name)}`,
    "type=vpn",
    // Started as a secondary of the Ethernet connection, never on its own.
    "autoconnect=false",
    "",
    "[vpn]",
    ...lines.head,
    `dev=${tunDevice(lab.name)}`,
    "dev-type=tun",
    ...lines.afterDev,
    ...lines.middle,
    `port=${port}`,
    `proto-tcp=${lab.vpn.protocol === "tcp" ? "yes" : "no"}`,
    `remote=${lab.vpn.remote}`,
    ...lines.tail,
    "service-type=org.freedesktop.NetworkManager.openvpn",
    "",
    "[ipv4]",
    `dns=${lab.dnsServers.map((s) => `${s};`).join("")}`,
    // "~domain": a routing-only domain, so systemd-resolved sends only the lab's names to the lab's servers.
    `dns-search=${lab.intranetDomains.map((d) => `~${d};`).join("")}`,
    "ignore-auto-dns=true",
    "ignore-auto-routes=true",
    "method=auto",
    // Only the intranet goes through the tunnel: the runner's default route stays on its Ethernet.
    "never-default=true",
    ...routes,
    "",
    "[ipv6]",
    "addr-gen-mode=default",
    "method=disabled",
    "",
    "[proxy]",
    "",
  ].join("\n");
};

/** The keyfile for one static-key client's tunnel addresses. */
export const renderVpnKeyfile = (lab: LabConfig, tunnel: TunnelAddresses): string =>
  render(
    validLab(lab),
    "static-key",
    requireIpv4("tunnel local address", tunnel.local),
    requireIpv4("tunnel remote address", tunnel.remote),
    String(requirePort(tunnel.port ?? lab.vpn.port)),
  );

/** The keyfile for a TLS client (its certificate, key and the server's certificate are files on the runner). */
export const renderTlsKeyfile = (lab: LabConfig, port?: number): string =>
  render(validLab(lab), "tls", "", "", String(requirePort(port ?? lab.vpn.port)));

const requirePort = (port: number): number => {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RenderError(`tunnel port ${JSON.stringify(port)} must be an integer from 1 to 65535`);
  }
  return port;
};

/** Shell variables the setup fills in from the credential it fetched on the runner. */
export const KEYFILE_VARIABLES = {
  local: "TUNNEL_LOCAL",
  remote: "TUNNEL_REMOTE",
  port: "TUNNEL_PORT",
} as const;

/** The keyfile of a kind, with the tunnel's addresses and port left as ${TUNNEL_LOCAL}, ${TUNNEL_REMOTE}, ${TUNNEL_PORT}. */
export const vpnKeyfileTemplate = (lab: LabConfig, kind: CredentialKind = "static-key"): string =>
  render(
    validLab(lab),
    kind,
    `\${${KEYFILE_VARIABLES.local}}`,
    `\${${KEYFILE_VARIABLES.remote}}`,
    `\${${KEYFILE_VARIABLES.port}}`,
  );
