// The NetworkManager dispatcher script of one lab (/etc/NetworkManager/dispatcher.d/90-labgate-<lab>): on the
// lab's vpn-up it lets the worker subnets out through the tunnel (masquerade, Docker's DOCKER-USER, MSS
// clamp); on vpn-down it removes exactly the rules that carry the lab's comment. See nm-dispatcher(8).
import type { LabConfig } from "../core/config.ts";
import { iptablesComment, runnerPaths, tunDevice } from "../core/names.ts";
import { vpnConnectionUuid } from "./keyfile.ts";
import { requireCidr, shArray, shQuote, validLab } from "./shell.ts";

/** How long the pre-up guard waits for the lab's VPN to be able to start before it holds it back. */
const START_WAIT_SECONDS = 20;

export const renderDispatcher = (labConfig: LabConfig, workerCidrs: readonly string[]): string => {
  const lab = validLab(labConfig);
  // No worker subnet yet (a tag selector that selects none): the VPN comes up, no worker is let through.
  for (const [i, cidr] of workerCidrs.entries()) requireCidr(`workerCidrs[${i}]`, cidr);
  const paths = runnerPaths(lab.name);
  return `#!/bin/bash
# labgate dispatcher for lab ${lab.name}: NAT and firewall rules for the lab's workers while its VPN is up.
# NetworkManager calls it as <script> <interface> <action> with CONNECTION_UUID set (nm-dispatcher(8)).
set -euo pipefail
# nm-dispatcher gives scripts a minimal environment.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

readonly LAB=${shQuote(lab.name)}
readonly VPN_UUID=${shQuote(vpnConnectionUuid(lab.name))}
readonly TUN=${shQuote(tunDevice(lab.name))}
readonly COMMENT=${shQuote(iptablesComment(lab.name))}
readonly WORKER_CIDRS=${shArray(workerCidrs)}
readonly LOCK=${shQuote(paths.lock)}

readonly STATIC_KEY=${shQuote(paths.staticKey)}
readonly PARKED=${shQuote(paths.parked)}
readonly START_WAIT_SECONDS=${START_WAIT_SECONDS}

action=\${2:-}
log() { printf 'labgate %s dispatcher: %s\\n' "$LAB" "$*"; }
lists_vpn() {
  nmcli -g connection.secondaries connection show uuid "$1" 2>/dev/null | tr ',' '\\n' | grep -qxF "$VPN_UUID"
}
vpn_can_start() { [[ -r $STATIC_KEY ]] && ! ip link show dev "$TUN" >/dev/null 2>&1; }

case "$action" in
  pre-up)
    # Guard (this script is also linked into pre-up.d, which NetworkManager waits for before it starts the
    # secondaries): NetworkManager fails a connection whose secondary fails while it activates, so a VPN
    # that cannot start now (key missing, or the previous openvpn still holding its tun device) is taken off
    # this connection's secondaries, which NetworkManager reads from the profile right after pre-up.
    base=\${CONNECTION_UUID:-}
    [[ -n $base ]] && lists_vpn "$base" || exit 0
    deadline=$((SECONDS + START_WAIT_SECONDS))
    until vpn_can_start; do
      if ((SECONDS >= deadline)); then
        nmcli connection modify uuid "$base" -connection.secondaries "$VPN_UUID"
        printf '%s\\n' "$base" >"$PARKED"
        log "pre-up of $base: the VPN cannot start (key or $TUN busy): not a secondary this time"
        exit 0
      fi
      sleep 1
    done
    ((SECONDS == 0)) || log "pre-up of $base: waited \${SECONDS} s for the VPN to be able to start"
    exit 0
    ;;
  up)
    # The connection is up without the VPN the guard took off: start it now (its failure can no longer take
    # the connection down) and make it a secondary again for the next boot.
    [[ -f $PARKED && $(<"$PARKED") == "\${CONNECTION_UUID:-}" ]] || exit 0
    rm -f "$PARKED"
    nmcli connection modify uuid "$CONNECTION_UUID" +connection.secondaries "$VPN_UUID"
    log "$CONNECTION_UUID is up: starting the VPN the guard held back"
    nmcli connection up uuid "$VPN_UUID" >/dev/null 2>&1 </dev/null &
    exit 0
    ;;
  vpn-up | vpn-down) ;;
  *) exit 0 ;;
esac
# Act only for this lab's connection: another lab's VPN on the same runner has its own script.
[[ \${CONNECTION_UUID:-} == "$VPN_UUID" ]] || exit 0

# NetworkManager and the setup may call this at the same time: one at a time.
exec 9>"$LOCK"
flock -w 60 9 || { log "could not take $LOCK within 60 s" >&2; exit 1; }

ipt() { iptables -w 10 "$@"; }

# ensure_rule TABLE -A|-I CHAIN RULE...: adds the rule unless an identical one is there.
ensure_rule() {
  local table=$1 op=$2
  shift 2
  ipt -t "$table" -C "$@" 2>/dev/null || ipt -t "$table" "$op" "$@"
}

# The rules carrying this lab's comment, as iptables -S prints them ("-A CHAIN ... --comment \\"labgate:x\\" ...").
remove_own_rules() {
  local spec table chain line i own
  local -a words
  for spec in nat:POSTROUTING filter:DOCKER-USER mangle:FORWARD; do
    table=\${spec%%:*}
    chain=\${spec#*:}
    ipt -t "$table" -S "$chain" >/dev/null 2>&1 || continue
    while IFS= read -r line; do
      read -ra words <<<"$line"
      [[ \${words[0]:-} == -A ]] || continue
      own=0
      for i in "\${!words[@]}"; do
        if [[ \${words[i]} == "\\"$COMMENT\\"" || \${words[i]} == "$COMMENT" ]]; then
          [[ \${words[i - 1]:-} == --comment ]] && own=1
          words[i]=$COMMENT
        fi
      done
      ((own)) || continue
      words[0]=-D
      ipt -t "$table" "\${words[@]}"
    done < <(ipt -t "$table" -S "$chain")
  done
}

add_rules() {
  local cidr
  # Docker creates DOCKER-USER and jumps to it first from FORWARD; do the same if Docker has not started yet.
  ipt -t filter -S DOCKER-USER >/dev/null 2>&1 || ipt -t filter -N DOCKER-USER
  ipt -t filter -C FORWARD -j DOCKER-USER 2>/dev/null || ipt -t filter -I FORWARD 1 -j DOCKER-USER
  for cidr in "\${WORKER_CIDRS[@]}"; do
    ensure_rule nat -A POSTROUTING -s "$cidr" -o "$TUN" -m comment --comment "$COMMENT" -j MASQUERADE
    ensure_rule filter -I DOCKER-USER -s "$cidr" -o "$TUN" -m comment --comment "$COMMENT" -j ACCEPT
    ensure_rule filter -I DOCKER-USER -d "$cidr" -i "$TUN" -m conntrack --ctstate RELATED,ESTABLISHED \\
      -m comment --comment "$COMMENT" -j ACCEPT
  done
  # The tunnel's MTU is below the VPC's (9001): clamp the MSS of connections opened through it.
  ensure_rule mangle -A FORWARD -o "$TUN" -p tcp --tcp-flags SYN,RST SYN -m comment --comment "$COMMENT" \\
    -j TCPMSS --clamp-mss-to-pmtu
}

if [[ $action == vpn-up ]]; then
  # A late vpn-up for a tunnel that is already gone must not leave rules behind.
  if ! ip link show dev "$TUN" >/dev/null 2>&1; then
    log "vpn-up but $TUN does not exist: removing rules instead"
    remove_own_rules
    exit 0
  fi
  add_rules
  log "vpn-up: rules for \${WORKER_CIDRS[*]} through $TUN in place"
else
  remove_own_rules
  log "vpn-down: rules removed"
fi
`;
};
