// The NetworkManager dispatcher script of one lab (/etc/NetworkManager/dispatcher.d/90-labgate-<lab>): it keeps
// the lab's own iptables chains (gateway.ts) on the runner, closed from the Ethernet's pre-up at boot and while
// the VPN is down, open while it is up; it guards the Ethernet's activation against a VPN that cannot start.
// See nm-dispatcher(8) and functions/render/README.md.
import type { LabConfig } from "../core/config.ts";
import { iptablesChains, iptablesComment, runnerPaths, tunDevice } from "../core/names.ts";
import { type GatewayInput, renderGatewayRules } from "./gateway.ts";
import { vpnConnectionUuid } from "./keyfile.ts";
import { heredoc, shArray, shQuote, validLab } from "./shell.ts";

/** How long the pre-up guard waits for the lab's VPN to be able to start before it holds it back. */
const START_WAIT_SECONDS = 20;

/** The action the stop-vpn script calls when the lab leaves the runner (NetworkManager has no such action). */
export const REMOVE_ACTION = "labgate-remove";

export const renderDispatcher = (labConfig: LabConfig, gateway: GatewayInput): string => {
  const lab = validLab(labConfig);
  const open = renderGatewayRules(lab, gateway, "open");
  const closed = renderGatewayRules(lab, gateway, "closed");
  const paths = runnerPaths(lab.name);
  const chains = iptablesChains(lab.name);
  const jumps = [
    `filter FORWARD ${chains.forward}`,
    `filter INPUT ${chains.input}`,
    `nat POSTROUTING ${chains.nat}`,
    `mangle FORWARD ${chains.mss}`,
  ];
  return `#!/bin/bash
# labgate dispatcher for lab ${lab.name}: the lab's gateway rules on this runner, and the guard of its Ethernet.
# NetworkManager calls it as <script> <interface> <action> with CONNECTION_UUID set (nm-dispatcher(8)); the
# setup and the stop-vpn script call it too.
set -euo pipefail
# nm-dispatcher gives scripts a minimal environment.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

readonly LAB=${shQuote(lab.name)}
readonly VPN_UUID=${shQuote(vpnConnectionUuid(lab.name))}
readonly TUN=${shQuote(tunDevice(lab.name))}
readonly COMMENT=${shQuote(iptablesComment(lab.name))}
readonly WORKER_CIDRS=${shArray(gateway.workerCidrs)}
readonly LOCK=${shQuote(paths.lock)}
# The lab's chains, each as "<table> <built-in chain that jumps to it> <chain>".
readonly JUMPS=${shArray(jumps)}
readonly CHAINS=${shArray(Object.values(chains))}

readonly STATIC_KEY=${shQuote(paths.staticKey)}
# The lab's DNS service address ('' when it has none): on loopback while the lab is on this runner.
readonly SERVICE_ADDRESS=${shQuote(lab.dnsServiceAddress ?? "")}
readonly PARKED=${shQuote(paths.parked)}
readonly START_WAIT_SECONDS=${START_WAIT_SECONDS}

action=\${2:-}
log() { printf 'labgate %s dispatcher: %s\\n' "$LAB" "$*"; }
lists_vpn() {
  nmcli -g connection.secondaries connection show uuid "$1" 2>/dev/null | tr ',' '\\n' | grep -xF "$VPN_UUID" >/dev/null
}
vpn_can_start() { [[ -r $STATIC_KEY ]] && ! ip link show dev "$TUN" >/dev/null 2>&1; }
# The lab holds a credential on this runner until the stop-vpn script deletes its key.
lab_here() { [[ -e $STATIC_KEY ]]; }

# NetworkManager, the setup and the stop-vpn script may call this at the same time: one at a time. The lock
# lives in a folder only root may enter: a local user holding it would stall every call and every setup.
lock() {
  install -d -m 0700 -o root -g root "\${LOCK%/*}"
  exec 9>"$LOCK"
  flock -w 60 9 || {
    log "could not take $LOCK within 60 s" >&2
    exit 1
  }
}
unlock() { exec 9>&-; }

ipt() { iptables -w 10 "$@"; }

# The lab's DNS service address on loopback: systemd-resolved answers the lab's workers there, whichever
# runner spawned them (the worker subnets route it to the runner that carries their traffic).
ensure_service_address() {
  [[ -z $SERVICE_ADDRESS ]] || ip addr replace "$SERVICE_ADDRESS/32" dev lo
}
remove_service_address() {
  [[ -z $SERVICE_ADDRESS ]] || ip addr del "$SERVICE_ADDRESS/32" dev lo 2>/dev/null || true
}

rules_open() {
  ${heredoc("cat", open)}
}
rules_closed() {
  ${heredoc("cat", closed)}
}

# ensure_first TABLE BUILTIN CHAIN: the jump from BUILTIN to the lab's CHAIN, with only other labs' jumps
# before it. Docker puts its own jump first again whenever it starts; the next call puts this one back.
ensure_first() {
  local table=$1 builtin=$2 chain=$3 line
  while IFS= read -r line; do
    [[ $line == "-A $builtin "* ]] || continue
    [[ $line == *" -j $chain" ]] && return 0
    [[ $line == *'--comment "labgate:'* || $line == *'--comment labgate:'* ]] || break
  done < <(ipt -t "$table" -S "$builtin")
  while ipt -t "$table" -D "$builtin" -m comment --comment "$COMMENT" -j "$chain" 2>/dev/null; do :; done
  ipt -t "$table" -I "$builtin" 1 -m comment --comment "$COMMENT" -j "$chain"
}

ensure_jumps() {
  local jump table builtin chain
  for jump in "\${JUMPS[@]}"; do
    read -r table builtin chain <<<"$jump"
    ensure_first "$table" "$builtin" "$chain"
  done
}

# remove_marked [CHAIN...]: deletes the rules carrying the lab's comment from the built-in chains, and from
# DOCKER-USER where an earlier labgate put its rules, except the jumps to the CHAINs named.
remove_marked() {
  local spec table chain line i own target keep
  local -a words
  for spec in filter:FORWARD filter:INPUT filter:DOCKER-USER nat:POSTROUTING mangle:FORWARD; do
    table=\${spec%%:*}
    chain=\${spec#*:}
    ipt -t "$table" -S "$chain" >/dev/null 2>&1 || continue
    while IFS= read -r line; do
      read -ra words <<<"$line"
      [[ \${words[0]:-} == -A ]] || continue
      own=0
      target=""
      for i in "\${!words[@]}"; do
        if [[ \${words[i]} == "\\"$COMMENT\\"" || \${words[i]} == "$COMMENT" ]]; then
          [[ \${words[i - 1]:-} == --comment ]] && own=1
          words[i]=$COMMENT
        fi
        [[ \${words[i]} == -j ]] && target=\${words[i + 1]:-}
      done
      ((own)) || continue
      for keep in "$@"; do [[ $target == "$keep" ]] && continue 2; done
      words[0]=-D
      ipt -t "$table" "\${words[@]}"
    done < <(ipt -t "$table" -S "$chain")
  done
}

# apply open|closed: the lab's chains emptied and refilled at once (iptables-restore commits each table in one
# go, so no packet ever meets a half-written chain), jumped to, and an earlier labgate's rules removed.
apply() {
  "rules_$1" | iptables-restore -w 10 --noflush
  ensure_jumps
  remove_marked "\${CHAINS[@]}"
}

# The closed gateway, unless the lab's rules are there already (open or closed).
ensure_filter() {
  if ipt -t filter -S ${shQuote(chains.forward)} >/dev/null 2>&1; then ensure_jumps; else apply closed; fi
}

# No rule and no chain of the lab left.
remove_all() {
  local jump table builtin chain
  remove_marked
  for jump in "\${JUMPS[@]}"; do
    read -r table builtin chain <<<"$jump"
    if ipt -t "$table" -S "$chain" >/dev/null 2>&1; then
      ipt -t "$table" -F "$chain"
      ipt -t "$table" -X "$chain"
    fi
  done
}

case "$action" in
  pre-up)
    # NetworkManager waits for pre-up.d scripts (this one is linked there) before it starts the connection's
    # secondaries: at boot, the lab's closed filter is in place before its tunnel exists.
    base=\${CONNECTION_UUID:-}
    [[ -n $base ]] && lists_vpn "$base" || exit 0
    if lab_here; then
      lock
      ensure_filter
      ensure_service_address
      unlock
    fi
    # Guard: NetworkManager fails a connection whose secondary fails while it activates, so a VPN that cannot
    # start now (key missing, or the previous openvpn still holding its tun device) is taken off this
    # connection's secondaries, which NetworkManager reads from the profile right after pre-up.
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
  vpn-pre-up | vpn-up | vpn-down | ${REMOVE_ACTION}) ;;
  *) exit 0 ;;
esac
# Act only for this lab's connection: another lab's VPN on the same runner has its own script.
[[ \${CONNECTION_UUID:-} == "$VPN_UUID" ]] || exit 0
lock

if [[ $action == ${REMOVE_ACTION} ]] || ! lab_here; then
  # The lab leaves this runner (stop-vpn), or has left it and NetworkManager's call comes late.
  remove_all
  remove_service_address
  log "$action: the lab's rules, chains and service address removed"
elif [[ $action == vpn-pre-up ]]; then
  ensure_filter
  ensure_service_address
  log "vpn-pre-up: the gateway's filter is in place"
elif [[ $action == vpn-down ]] || ! ip link show dev "$TUN" >/dev/null 2>&1; then
  # vpn-down, or a late vpn-up for a tunnel that is already gone.
  apply closed
  log "$action: the gateway is closed"
else
  apply open
  ensure_service_address
  # Forwarding only now that the filter is in place: never at boot. Never turned off either: another lab or
  # Docker may need it, and the closed filter is what keeps this lab's traffic out.
  if [[ $(sysctl -n net.ipv4.ip_forward) != 1 ]]; then
    sysctl -qw net.ipv4.ip_forward=1
    log "IPv4 forwarding turned on"
  fi
  log "vpn-up: the gateway is open for \${WORKER_CIDRS[*]} through $TUN"
fi
`;
};
