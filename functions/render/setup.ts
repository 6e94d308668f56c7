// The runner setup script that SSM Run Command executes for one lab: idempotent (a second run changes nothing
// and exits 0), it fetches the runner's leased credential itself and leaves the runner ready to carry the lab's
// worker traffic. Every file it writes is rendered by the functions beside this one.
import { createHash } from "node:crypto";
import type { LabConfig } from "../core/config.ts";
import { RUNNER_SHARED_PATHS, runnerPaths, tunDevice, vpnConnectionId } from "../core/names.ts";
import { CREDENTIAL_FUNCTIONS } from "./credential.ts";
import { renderDispatcher } from "./dispatcher.ts";
import {
  AWS_REGION_FUNCTION,
  checkFunctions,
  REPORT_DNS,
  renderHealthScript,
  renderHealthService,
  renderHealthTimer,
  renderWatchScript,
  renderWatchService,
} from "./health.ts";
import { KEYFILE_VARIABLES, vpnConnectionUuid, vpnKeyfileTemplate } from "./keyfile.ts";
import { preflightFunctions } from "./preflight.ts";
import { commandLock, PUT_FILE_FUNCTION, prelude } from "./prelude.ts";
import {
  NETWORK_MANAGER_DNS_CONF,
  renderRunnerResolvedDropIn,
  renderServiceResolvedDropIn,
} from "./resolved.ts";
import {
  expandingHeredoc,
  heredoc,
  INSTANCE_ID,
  RenderError,
  requireCidr,
  requireIpv4,
  requireMatch,
  shQuote,
  validLab,
} from "./shell.ts";
import { renderWorkerScript } from "./worker.ts";

export interface RunnerSetupInput {
  readonly lab: LabConfig;
  readonly instanceId: string;
  readonly privateIp: string;
  readonly credentialParameter: string;
  /** CIDRs of all the lab's worker subnets (any of them may be routed through this runner). */
  readonly workerCidrs: readonly string[];
}

export interface Rendered {
  readonly script: string;
  /** Short content hash of the script: it tells the core whether what is on a runner is current. */
  readonly hash: string;
}

export const contentHash = (text: string): string =>
  createHash("sha256").update(text).digest("hex").slice(0, 16);

/**
 * A setup's hash is two halves: the first names what the tunnel is made of (the connection's keyfile for
 * either kind of credential, its default port, and which credential), the second the whole script. The setup restarts the VPN
 * only when the first changes (it compares the files it writes), so the core can tell from two hashes alone
 * whether a push will cut the tunnel: only such a push drains the runner's routes first.
 */
export const tunnelOf = (setupHash: string): string => setupHash.slice(0, 8);

/** How long the setup waits for the lab's DNS to answer through a tunnel it just brought up. */
const DNS_WAIT_SECONDS = 30;

/**
 * Bash: the lab's DNS service address on loopback (before systemd-resolved restarts, so that its listener
 * finds it) and resolved's listener there; or, for a lab without one, no listener file. Sets listener_changed.
 */
const serviceListenerStep = (lab: LabConfig): string => {
  const dropIn = renderServiceResolvedDropIn(lab);
  if (dropIn === undefined) {
    return `if [[ -f $SERVICE_LISTENER ]]; then
  rm -f "$SERVICE_LISTENER"
  listener_changed=1
  log "removed $SERVICE_LISTENER (the lab has no DNS service address any more)"
fi`;
  }
  return `ip addr replace "$SERVICE_ADDRESS/32" dev lo
${heredoc('put_file 0644 "$SERVICE_LISTENER"', dropIn)}
listener_changed=$((listener_changed | PUT_CHANGED))`;
};

/** The script body, every step but the last one (which records the body's hash). */
const setupBody = (input: RunnerSetupInput): string => {
  const lab = validLab(input.lab);
  requireMatch("instanceId", input.instanceId, INSTANCE_ID, "an EC2 instance id such as i-0123456789abcdef0");
  requireIpv4("privateIp", input.privateIp);
  if (!lab.vpn.credentials.includes(input.credentialParameter)) {
    throw new RenderError(
      `credentialParameter ${JSON.stringify(input.credentialParameter)} is not one of lab ${lab.name}'s vpn.credentials`,
    );
  }
  for (const [i, cidr] of input.workerCidrs.entries()) requireCidr(`workerCidrs[${i}]`, cidr);

  const paths = runnerPaths(lab.name);
  const keyfileVariables = [KEYFILE_VARIABLES.local, KEYFILE_VARIABLES.remote, KEYFILE_VARIABLES.port];
  return `${prelude(`labgate runner setup of lab ${lab.name} on ${input.instanceId}`, lab.name)}

readonly INSTANCE_ID=${shQuote(input.instanceId)}
readonly PRIVATE_IP=${shQuote(input.privateIp)}
readonly CREDENTIAL_PARAMETER=${shQuote(input.credentialParameter)}
readonly CONN=${shQuote(vpnConnectionId(lab.name))}
readonly VPN_UUID=${shQuote(vpnConnectionUuid(lab.name))}
readonly TUN=${shQuote(tunDevice(lab.name))}
readonly STATIC_KEY=${shQuote(paths.staticKey)}
readonly TLS_CA=${shQuote(paths.tlsCa)}
readonly TLS_CERT=${shQuote(paths.tlsCert)}
readonly KEYFILE=${shQuote(paths.keyfile)}
readonly DISPATCHER=${shQuote(paths.dispatcher)}
readonly DISPATCHER_PRE_UP=${shQuote(paths.dispatcherPreUp)}
readonly WORKER_SCRIPT=${shQuote(lab.workerUserScriptPath)}
readonly HEALTH_TIMER=${shQuote(paths.healthTimer.split("/").pop() ?? "")}
readonly WATCH_SERVICE=${shQuote(paths.watchService.split("/").pop() ?? "")}
readonly SERVICE_LISTENER=${shQuote(paths.serviceListener)}
readonly SERVICE_ADDRESS=${shQuote(lab.dnsServiceAddress ?? "")}
readonly LEGACY_SYSCTL=${shQuote(RUNNER_SHARED_PATHS.legacySysctl)}

${PUT_FILE_FUNCTION}

${AWS_REGION_FUNCTION}

${checkFunctions(lab)}

${preflightFunctions()}

${CREDENTIAL_FUNCTIONS}

# 0. The preflight: everything this setup needs is there, or it fails naming what is missing, before it fetches
#    the key or writes anything.
preflight
log "setting up $INSTANCE_ID (private address $PRIVATE_IP) with credential $CREDENTIAL_PARAMETER"

${commandLock(paths.commandLock)}

# 1. The leased credential: fetched here so that the key never travels in the command. Never printed.
CREDENTIAL_DIR=$(mktemp -d)
trap 'rm -rf "$CREDENTIAL_DIR"' EXIT
CREDENTIAL=$CREDENTIAL_DIR/parameter
use_instance_region
if ! aws ssm get-parameter --name "$CREDENTIAL_PARAMETER" --with-decryption --query Parameter.Value \\
  --output text >"$CREDENTIAL" 2>"$CREDENTIAL_DIR/error"; then
  fail "could not read the credential parameter $CREDENTIAL_PARAMETER from SSM Parameter Store: $(head -c 600 "$CREDENTIAL_DIR/error")"
fi
parse_credential "$CREDENTIAL" "$CREDENTIAL_DIR" ${lab.vpn.port} "$CREDENTIAL_PARAMETER"
install -d -m 0700 "$(dirname "$STATIC_KEY")"
restore_labels "$(dirname "$STATIC_KEY")"
if [[ $CREDENTIAL_KIND == static-key ]]; then
  put_file 0600 "$STATIC_KEY" <"$CREDENTIAL"
  vpn_changed=$PUT_CHANGED
  rm -f "$TLS_CA" "$TLS_CERT"
else
  put_file 0600 "$STATIC_KEY" <"$CREDENTIAL_DIR/key.pem"
  vpn_changed=$PUT_CHANGED
  put_file 0644 "$TLS_CERT" <"$CREDENTIAL_DIR/cert.pem"
  vpn_changed=$((vpn_changed | PUT_CHANGED))
  put_file 0644 "$TLS_CA" <"$CREDENTIAL_DIR/ca.pem"
  vpn_changed=$((vpn_changed | PUT_CHANGED))
fi
log "tunnel from $CREDENTIAL_PARAMETER: $CREDENTIAL_SUMMARY, server port $${KEYFILE_VARIABLES.port}"

# 2. IPv4 forwarding is never on at boot: the dispatcher turns it on at vpn-up, once the lab's filter is in
#    place. An earlier labgate turned it on at every boot, before any filter: that file goes.
if [[ -e $LEGACY_SYSCTL ]]; then
  rm -f "$LEGACY_SYSCTL"
  log "removed $LEGACY_SYSCTL (forwarding at boot, before any filter)"
fi

# 3. The workers' DNS: systemd-resolved also listens on the private address and on the lab's DNS service
#    address (on loopback: the worker subnets route it to whichever runner carries them); NetworkManager gives
#    it the lab's servers and ~domains per tunnel link. Restarted before the VPN comes up, so nothing is lost.
${heredoc(`put_file 0644 ${shQuote(RUNNER_SHARED_PATHS.resolvedListener)}`, renderRunnerResolvedDropIn(input.privateIp))}
listener_changed=$PUT_CHANGED
former_service=""
if [[ -f $SERVICE_LISTENER ]]; then former_service=$(sed -n 's/^DNSStubListenerExtra=//p' "$SERVICE_LISTENER"); fi
if [[ -n $former_service && $former_service != "$SERVICE_ADDRESS" ]]; then
  ip addr del "$former_service/32" dev lo 2>/dev/null || true
  log "removed the lab's former DNS service address $former_service"
fi
${serviceListenerStep(lab)}
if ((listener_changed)) || ! systemctl is-active --quiet systemd-resolved; then
  systemctl restart systemd-resolved || fail "systemd-resolved did not restart (see journalctl -u systemd-resolved)"
  log "systemd-resolved restarted"
fi
${heredoc(`put_file 0644 ${shQuote(RUNNER_SHARED_PATHS.networkManagerDns)}`, NETWORK_MANAGER_DNS_CONF)}
if ((PUT_CHANGED)); then
  nmcli general reload conf || fail "NetworkManager did not reload its configuration"
fi

# 4. The dispatcher, before the VPN comes up so that NetworkManager calls it on vpn-up.
${heredoc('put_file 0755 "$DISPATCHER"', renderDispatcher(lab, { workerCidrs: input.workerCidrs, privateIp: input.privateIp }))}
install -d -m 0755 "$(dirname "$DISPATCHER_PRE_UP")"
if [[ $(readlink "$DISPATCHER_PRE_UP" || true) != "$DISPATCHER" ]]; then
  ln -sfn "$DISPATCHER" "$DISPATCHER_PRE_UP"
  restore_labels "$DISPATCHER_PRE_UP"
  log "linked $DISPATCHER_PRE_UP (the guard of the Ethernet connection's activation)"
fi

# 5. The lab's OpenVPN connection, for the kind of credential it holds.
if [[ $CREDENTIAL_KIND == static-key ]]; then
${expandingHeredoc('  put_file 0600 "$KEYFILE"', vpnKeyfileTemplate(lab, "static-key"), keyfileVariables)}
else
${expandingHeredoc('  put_file 0600 "$KEYFILE"', vpnKeyfileTemplate(lab, "tls"), keyfileVariables)}
fi
if ((PUT_CHANGED)); then
  vpn_changed=1
  nmcli connection load "$KEYFILE" || fail "NetworkManager rejected $KEYFILE"
fi

vpn_active() { [[ $(nmcli -g GENERAL.STATE connection show uuid "$VPN_UUID" 2>/dev/null) == activated ]]; }

# The runner's own Ethernet connection: the one that holds the default route.
default_dev=$(ip -4 route show default | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
[[ -n $default_dev ]] || fail "no IPv4 default route: cannot tell which connection is the runner's Ethernet"
ETH_UUID=$(nmcli -g UUID,TYPE,DEVICE connection show --active |
  awk -F: -v dev="$default_dev" '$2 == "802-3-ethernet" && $3 == dev { print $1; exit }')
[[ -n $ETH_UUID ]] || fail "$default_dev (default route) has no active NetworkManager Ethernet connection"

is_secondary() { nmcli -g connection.secondaries connection show uuid "$ETH_UUID" | tr ',' '\\n' | grep -xF "$VPN_UUID" >/dev/null; }

# NetworkManager fails a connection whose secondary fails while it activates: the runner would lose its own
# network (and SSM with it) at every boot. So the VPN becomes a secondary only once it has just come up on
# its own with these very settings, and stops being one when it cannot.
if ((vpn_changed)) && vpn_active; then
  log "the VPN's settings changed: restarting $CONN"
  # Its watch would report this planned restart (of a drained runner) as a dead tunnel: it starts over once
  # the tunnel is back (step 7).
  systemctl stop "$WATCH_SERVICE" >/dev/null 2>&1 || true
  nmcli connection down uuid "$VPN_UUID" >/dev/null
fi
# openvpn may still be leaving (explicit-exit-notify) and holding the tun device a new one needs.
deadline=$((SECONDS + 30))
while ! vpn_active && ip link show dev "$TUN" >/dev/null 2>&1; do
  ((SECONDS < deadline)) || fail "$TUN still exists 30 s after $CONN went down"
  sleep 1
done
if ! vpn_active; then
  log "bringing $CONN up"
  # The lab's closed filter before its tunnel exists (NetworkManager's own vpn-pre-up comes once it does).
  CONNECTION_UUID=$VPN_UUID "$DISPATCHER" "$TUN" vpn-pre-up
  if ! output=$(nmcli --wait 60 connection up uuid "$VPN_UUID" 2>&1); then
    if is_secondary; then nmcli connection modify uuid "$ETH_UUID" -connection.secondaries "$VPN_UUID"; fi
    fail "NetworkManager could not bring $CONN up, so it is not a secondary of the Ethernet connection (it would take the runner's network down at boot): $output"
  fi
fi
if is_secondary; then
  log "$CONN is already a secondary of the Ethernet connection $ETH_UUID"
else
  nmcli connection modify uuid "$ETH_UUID" +connection.secondaries "$VPN_UUID"
  log "$CONN added as a secondary of the Ethernet connection $ETH_UUID (starts at boot)"
fi

# The gateway open for the current worker subnets, even if NetworkManager's own call is late: the dispatcher
# is serialised and replaces the lab's chains at once, so changed worker subnets take effect here.
CONNECTION_UUID=$VPN_UUID "$DISPATCHER" "$TUN" vpn-up

# 6. The worker user script.
${heredoc('put_file 0644 "$WORKER_SCRIPT"', renderWorkerScript(lab, input.privateIp))}

# 7. The tunnel's health: the watch (a probe every second, its verdict reported at once as this instance's tag)
#    and the reporter (TunnelHealthy every 10 s, the alarm's backstop).
${heredoc(`put_file 0755 ${shQuote(paths.healthScript)}`, renderHealthScript(lab, input.instanceId))}
health_changed=$PUT_CHANGED
${heredoc(`put_file 0644 ${shQuote(paths.healthService)}`, renderHealthService(lab))}
health_changed=$((health_changed | PUT_CHANGED))
${heredoc(`put_file 0644 ${shQuote(paths.healthTimer)}`, renderHealthTimer(lab))}
health_changed=$((health_changed | PUT_CHANGED))
${heredoc(`put_file 0755 ${shQuote(paths.watchScript)}`, renderWatchScript(lab, input.instanceId))}
watch_changed=$PUT_CHANGED
${heredoc(`put_file 0644 ${shQuote(paths.watchService)}`, renderWatchService(lab))}
watch_changed=$((watch_changed | PUT_CHANGED))
if ((health_changed | watch_changed)); then systemctl daemon-reload; fi
systemctl enable --now "$HEALTH_TIMER" 2>&1 | sed "s/^/labgate $LAB: systemctl: /"
systemctl enable "$WATCH_SERVICE" 2>&1 | sed "s/^/labgate $LAB: systemctl: /"
# A watch whose script changed starts over with it; a running one is left alone (one stopped for the VPN's
# restart starts again).
if ((watch_changed)); then systemctl restart "$WATCH_SERVICE"; else systemctl start "$WATCH_SERVICE"; fi

# 8. The checks: the tunnel is up and the lab's DNS answers through it.
if tunnel_up; then tunnel=up; else tunnel=down; fi
dns=silent
if [[ $tunnel == up ]]; then
  deadline=$((SECONDS + ${DNS_WAIT_SECONDS}))
  while :; do
    if lab_dns_answers ${REPORT_DNS.seconds} ${REPORT_DNS.tries}; then
      dns=answers
      break
    fi
    ((SECONDS < deadline)) || break
    sleep 2
  done
fi
log "check: tunnel $TUN $tunnel"
log "check: lab DNS through the tunnel $dns"
[[ $tunnel == up && $dns == answers ]] || fail "the tunnel is $tunnel and the lab's DNS is $dns: setup not applied"
`;
};

/** The setup script: its body, then the step that records the body's hash on the runner. */
export const renderRunnerSetup = (input: RunnerSetupInput): Rendered => {
  const body = setupBody(input);
  const lab = validLab(input.lab);
  const tunnel = contentHash(
    JSON.stringify([
      vpnKeyfileTemplate(lab, "static-key"),
      vpnKeyfileTemplate(lab, "tls"),
      input.credentialParameter,
      // The server port the keyfile gets when the credential names none.
      lab.vpn.port,
    ]),
  );
  const hash = `${tunnelOf(tunnel)}${contentHash(body).slice(0, 8)}`;
  const hashFile = runnerPaths(input.lab.name).setupHash;
  const record = `
# 9. What was applied, for operators: the hash the control plane knows this setup by.
${heredoc(`put_file 0644 ${shQuote(hashFile)}`, hash)}
echo "labgate: applied setup ${hash}"
`;
  return { script: `${body}${record}`, hash };
};
