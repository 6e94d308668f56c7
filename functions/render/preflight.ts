// The preflight: the first step of the runner setup, which checks everything a runner image must have before
// the setup changes anything (no key fetched, no file written, no connection, no rule), and fails naming each
// missing piece and the package that provides it on the runner's distribution (README "Runner requirements").
import type { LabConfig } from "../core/config.ts";
import { prelude } from "./prelude.ts";
import { shQuote, validLab } from "./shell.ts";

/** Distribution families, from /etc/os-release's ID and ID_LIKE. */
export const FAMILIES = ["debian", "rhel", "amzn"] as const;
export type Family = (typeof FAMILIES)[number];

/** What provides each requirement, per family: the words after "install" in a preflight message. */
export const PACKAGES: Readonly<Record<string, Readonly<Record<Family, string>>>> = {
  nmcli: { debian: "network-manager", rhel: "NetworkManager", amzn: "NetworkManager" },
  openvpn: { debian: "openvpn", rhel: "openvpn (EPEL on CentOS Stream and RHEL)", amzn: "openvpn" },
  "openvpn-plugin": {
    debian: "network-manager-openvpn",
    rhel: "NetworkManager-openvpn (EPEL on CentOS Stream and RHEL)",
    amzn: "NetworkManager-openvpn (not in Amazon Linux 2023's repositories: see README)",
  },
  iptables: { debian: "iptables", rhel: "iptables-nft", amzn: "iptables-nft" },
  "iptables-restore": { debian: "iptables", rhel: "iptables-nft", amzn: "iptables-nft" },
  ip: { debian: "iproute2", rhel: "iproute", amzn: "iproute" },
  dig: { debian: "bind9-dnsutils", rhel: "bind-utils", amzn: "bind-utils" },
  flock: { debian: "util-linux", rhel: "util-linux", amzn: "util-linux" },
  curl: { debian: "curl", rhel: "curl", amzn: "curl" },
  aws: {
    debian: "AWS CLI v2 (awscli on Debian 12 and later, or AWS's installer)",
    rhel: "AWS CLI v2 (awscli2 on Fedora, or AWS's installer)",
    amzn: "awscli-2",
  },
  systemctl: { debian: "systemd", rhel: "systemd", amzn: "systemd" },
  sysctl: { debian: "procps", rhel: "procps-ng", amzn: "procps-ng" },
  openssl: { debian: "openssl", rhel: "openssl", amzn: "openssl" },
  awk: { debian: "gawk", rhel: "gawk", amzn: "gawk" },
  cmp: { debian: "diffutils", rhel: "diffutils", amzn: "diffutils" },
  stat: { debian: "coreutils", rhel: "coreutils", amzn: "coreutils" },
  mktemp: { debian: "coreutils", rhel: "coreutils", amzn: "coreutils" },
  install: { debian: "coreutils", rhel: "coreutils", amzn: "coreutils" },
  "systemd-resolved": { debian: "systemd-resolved", rhel: "systemd-resolved", amzn: "systemd-resolved" },
  restorecon: { debian: "policycoreutils", rhel: "policycoreutils", amzn: "policycoreutils" },
};

/** The programs the setup, the dispatcher and the health reporter run (restorecon only under SELinux). */
export const REQUIRED_COMMANDS = [
  "nmcli",
  "openvpn",
  "iptables",
  "iptables-restore",
  "ip",
  "dig",
  "flock",
  "curl",
  "aws",
  "systemctl",
  "sysctl",
  "openssl",
  "awk",
  "cmp",
  "stat",
  "mktemp",
  "install",
] as const;

/** The oldest OpenVPN the NetworkManager plugin's options work with here. */
export const OPENVPN_MINIMUM = "2.4";
/**
 * OpenVPN 2.7 refuses static-key mode unless given --allow-deprecated-insecure-static-crypto, and
 * NetworkManager-openvpn cannot pass it: its service accepts only the vpn.data keys of its valid_properties
 * table (any other key fails the activation with "property ... invalid or not supported") and builds the
 * openvpn command line from those keys alone (static-key gives only --secret FILE [DIRECTION]); see
 * nm_openvpn_start_openvpn_binary in src/nm-openvpn-service.c (GNOME/NetworkManager-openvpn, 1.8 to 1.12).
 */
export const OPENVPN_STATIC_KEY_REFUSED = "2.7";

/** Files the preflight reads: the real ones on a runner; tests point them at their own. */
export interface PreflightHost {
  readonly osRelease: string;
  readonly resolvConf: string;
  /** Folders of NetworkManager's VPN plugin descriptions (*.name). */
  readonly vpnPluginDirs: readonly string[];
  /** Lists the legacy iptables tables in use (empty when the legacy backend holds nothing). */
  readonly legacyTables: string;
  readonly dockerDaemonJson: string;
}

export const RUNNER_HOST: PreflightHost = {
  osRelease: "/etc/os-release",
  resolvConf: "/etc/resolv.conf",
  vpnPluginDirs: ["/usr/lib/NetworkManager/VPN", "/etc/NetworkManager/VPN"],
  legacyTables: "/proc/net/ip_tables_names",
  dockerDaemonJson: "/etc/docker/daemon.json",
};

const packageTable = (): string => {
  const entries = Object.entries(PACKAGES).flatMap(([what, byFamily]) =>
    FAMILIES.map((f) => `  [${shQuote(`${f}:${what}`)}]=${shQuote(byFamily[f])}`),
  );
  return `declare -A PREFLIGHT_PACKAGES=(\n${entries.join("\n")}\n)`;
};

/**
 * Bash: the preflight function. It only reads; it sets PREFLIGHT_FAMILY, OPENVPN_VERSION,
 * OPENVPN_REFUSES_STATIC_KEYS (1 from OpenVPN 2.7) and SELINUX_LABELS (1 when SELinux is enabled: the setup
 * then restores the labels of what it writes). Needs log and fail from the prelude.
 */
export const preflightFunctions = (
  host: PreflightHost = RUNNER_HOST,
): string => `readonly PREFLIGHT_OS_RELEASE=${shQuote(host.osRelease)}
readonly PREFLIGHT_RESOLV_CONF=${shQuote(host.resolvConf)}
readonly PREFLIGHT_VPN_PLUGIN_DIRS=(${host.vpnPluginDirs.map(shQuote).join(" ")})
readonly PREFLIGHT_LEGACY_TABLES=${shQuote(host.legacyTables)}
readonly PREFLIGHT_DOCKER_DAEMON_JSON=${shQuote(host.dockerDaemonJson)}
readonly PREFLIGHT_COMMANDS=(${REQUIRED_COMMANDS.join(" ")})
${packageTable()}
PREFLIGHT_FAMILY=unknown
OPENVPN_VERSION=unknown
OPENVPN_REFUSES_STATIC_KEYS=0
SELINUX_LABELS=0

# os_release_field NAME: a field of os-release(5), unquoted.
os_release_field() {
  sed -n "s/^$1=//p" "$PREFLIGHT_OS_RELEASE" 2>/dev/null | head -n 1 | tr -d "\\"'"
}

# package_for WHAT: what provides it on this runner's distribution.
package_for() {
  local key="$PREFLIGHT_FAMILY:$1"
  if [[ -n \${PREFLIGHT_PACKAGES[$key]:-} ]]; then
    printf '%s' "\${PREFLIGHT_PACKAGES[$key]}"
  else
    printf 'the package that provides %s' "$1"
  fi
}

# version_at_least VERSION MINIMUM: both MAJOR.MINOR[.PATCH].
version_at_least() {
  local -a have want
  IFS=. read -ra have <<<"$1"
  IFS=. read -ra want <<<"$2"
  ((\${have[0]:-0} > \${want[0]:-0})) && return 0
  ((\${have[0]:-0} == \${want[0]:-0} && \${have[1]:-0} >= \${want[1]:-0}))
}

preflight() {
  # (grep reads its whole input in pipelines: grep -q would stop early, and pipefail would see the writer's
  # SIGPIPE as a failure.)
  local -a problems=()
  local id like distro cmd dev state flavor other version dir file program plugin=0 mode
  need() { problems+=("$*"); }
  have() { command -v "$1" >/dev/null 2>&1; }

  [[ $(id -u) == 0 ]] || need "the setup must run as root"

  # The distribution names the packages in the messages.
  id=$(os_release_field ID)
  like=$(os_release_field ID_LIKE)
  distro=$(os_release_field PRETTY_NAME)
  case " $id $like " in
    *" amzn "*) PREFLIGHT_FAMILY=amzn ;;
    *" debian "* | *" ubuntu "*) PREFLIGHT_FAMILY=debian ;;
    *" fedora "* | *" rhel "* | *" centos "*) PREFLIGHT_FAMILY=rhel ;;
  esac
  log "preflight on \${distro:-an unknown distribution} (packages of family $PREFLIGHT_FAMILY)"

  for cmd in "\${PREFLIGHT_COMMANDS[@]}"; do
    have "$cmd" || need "$cmd is missing: install $(package_for "$cmd")"
  done

  # NetworkManager runs and manages the interface of the default route with an Ethernet connection: the
  # lab's VPN becomes that connection's secondary.
  dev=$(ip -4 route show default 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }') || true
  if ! have nmcli; then
    :
  elif [[ $(nmcli -t -f RUNNING general 2>/dev/null) != running ]]; then
    need "NetworkManager is not running: systemctl enable --now NetworkManager"
  elif [[ -z $dev ]]; then
    need "there is no IPv4 default route: NetworkManager must bring up the runner's Ethernet connection"
  else
    state=$(nmcli -g GENERAL.STATE device show "$dev" 2>/dev/null) || true
    case $state in
      100*) ;;
      *unmanaged*)
        case $PREFLIGHT_FAMILY in
          amzn) need "NetworkManager does not manage $dev (the default route's interface): systemd-networkd does on Amazon Linux 2023, which labgate does not support (README)" ;;
          debian) need "NetworkManager does not manage $dev (the default route's interface): on Ubuntu set 'renderer: NetworkManager' in netplan; on Debian remove $dev from /etc/network/interfaces" ;;
          *) need "NetworkManager does not manage $dev (the default route's interface): nmcli device set $dev managed yes" ;;
        esac
        ;;
      *) need "$dev (the default route's interface) is not connected in NetworkManager (state: \${state:-unknown})" ;;
    esac
    if [[ $state == 100* ]] && ! nmcli -g TYPE,DEVICE connection show --active 2>/dev/null | grep -xF "802-3-ethernet:$dev" >/dev/null; then
      need "$dev (the default route's interface) has no active NetworkManager Ethernet connection"
    fi
  fi

  # NetworkManager's OpenVPN plugin: its description names the service and the program that runs it.
  for dir in "\${PREFLIGHT_VPN_PLUGIN_DIRS[@]}"; do
    for file in "$dir"/*.name; do
      if [[ -f $file ]] && grep -qx 'service=org.freedesktop.NetworkManager.openvpn' "$file"; then
        program=$(sed -n 's/^program=//p' "$file" | head -n 1)
        [[ -x $program ]] && plugin=1
      fi
    done
  done
  ((plugin)) || need "NetworkManager's OpenVPN plugin is missing: install $(package_for openvpn-plugin)"

  # systemd-resolved is the system's resolver: NetworkManager gives it each lab's DNS per tunnel link, and it
  # answers the workers on the runner's private address.
  if have systemctl && ! systemctl is-active --quiet systemd-resolved 2>/dev/null; then
    need "systemd-resolved is not running: install $(package_for systemd-resolved), then systemctl enable --now systemd-resolved"
  fi
  if ! grep -qE '^nameserver 127\\.0\\.0\\.53([[:space:]]|$)' "$PREFLIGHT_RESOLV_CONF" 2>/dev/null; then
    need "$PREFLIGHT_RESOLV_CONF does not send queries to systemd-resolved (nameserver 127.0.0.53): ln -sf /run/systemd/resolve/stub-resolv.conf /etc/resolv.conf"
  fi

  # iptables: the dispatcher's rules must land in the backend Docker uses, or Docker's FORWARD policy (DROP)
  # in the other one drops the workers' traffic. Docker runs the same iptables command; what can differ is
  # an image whose Docker rules already sit in the other backend.
  if have iptables; then
    flavor=legacy
    [[ $(iptables --version 2>/dev/null) == *nf_tables* ]] && flavor=nf_tables
    if [[ $flavor == nf_tables ]]; then other=iptables-legacy-save; else other=iptables-nft-save; fi
    # The legacy backend is read only when its tables exist (reading it would load its modules).
    if have "$other" && { [[ $flavor == legacy ]] || [[ -s $PREFLIGHT_LEGACY_TABLES ]]; } &&
      "$other" -t filter 2>/dev/null | grep '^:DOCKER ' >/dev/null; then
      need "Docker's rules are in the \${other%-save} backend but iptables is $flavor: make iptables use the backend Docker uses (update-alternatives --config iptables on Debian and Ubuntu), then restart Docker"
    fi
    log "preflight: iptables backend $flavor"
  fi
  if [[ -f $PREFLIGHT_DOCKER_DAEMON_JSON ]] && grep -qE '"firewall-backend"[[:space:]]*:[[:space:]]*"nftables"' "$PREFLIGHT_DOCKER_DAEMON_JSON"; then
    need "Docker uses its nftables firewall backend ($PREFLIGHT_DOCKER_DAEMON_JSON), which has no DOCKER-USER chain: remove \\"firewall-backend\\" to use iptables"
  fi

  # OpenVPN: 2.7 refuses static keys, and NetworkManager's plugin cannot pass the option that allows them.
  if have openvpn; then
    version=$(openvpn --version 2>/dev/null | sed -n '1s/^OpenVPN \\([0-9][0-9]*\\.[0-9][0-9]*\\(\\.[0-9][0-9]*\\)\\{0,1\\}\\).*/\\1/p') || true
    if [[ -z $version ]]; then
      need "openvpn --version does not say which OpenVPN this is"
    elif ! version_at_least "$version" ${OPENVPN_MINIMUM}; then
      need "OpenVPN $version is too old: labgate needs ${OPENVPN_MINIMUM} or later"
    else
      OPENVPN_VERSION=$version
      if version_at_least "$version" ${OPENVPN_STATIC_KEY_REFUSED}; then
        OPENVPN_REFUSES_STATIC_KEYS=1
        log "preflight: OpenVPN $version refuses static keys: this runner takes TLS credentials only"
      else
        log "preflight: OpenVPN $version (static-key and TLS credentials)"
      fi
    fi
  fi

  # SELinux: what the setup writes gets its policy's labels back (restorecon).
  if have getenforce; then
    mode=$(getenforce 2>/dev/null) || true
    if [[ $mode == Enforcing || $mode == Permissive ]]; then
      if have restorecon; then SELINUX_LABELS=1; else need "SELinux is $mode but restorecon is missing: install $(package_for restorecon)"; fi
      log "preflight: SELinux $mode: the labels of what the setup writes are restored"
    fi
  fi

  # firewalld: its own forward filtering would drop the workers' traffic whatever labgate's rules say, and its
  # iptables backend deletes every rule on reload. Refused rather than half-supported.
  if have systemctl && systemctl is-active --quiet firewalld 2>/dev/null; then
    need "firewalld is running: labgate's forwarding and NAT rules do not survive it (README); systemctl disable --now firewalld"
  fi

  if ((\${#problems[@]} > 0)); then
    local p
    for p in "\${problems[@]}"; do printf 'labgate %s: preflight: %s\\n' "$LAB" "$p" >&2; done
    fail "preflight: this runner lacks \${#problems[@]} requirement(s) (README \\"Runner requirements\\"); nothing was changed"
  fi
  log "preflight: every requirement is met"
}`;

/** A script that runs the preflight alone, e.g. on an image being built: exits 0 when a setup can run. */
export const renderPreflight = (labConfig: LabConfig, host: PreflightHost = RUNNER_HOST): string => {
  const lab = validLab(labConfig);
  return `${prelude(`labgate preflight for lab ${lab.name}: can this runner image run the setup?`, lab.name)}

${preflightFunctions(host)}

preflight
if ((OPENVPN_REFUSES_STATIC_KEYS)); then credentials=TLS; else credentials="static-key and TLS"; fi
log "this runner can run the setup: OpenVPN $OPENVPN_VERSION takes $credentials credentials; SELinux labels restored: $SELINUX_LABELS"
`;
};
