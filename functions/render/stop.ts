// The script the control plane sends before a runner terminates (or gives its credential back): the lab's
// VPN goes down and cannot come back on this runner, so that its static key can serve another runner.
import type { LabConfig } from "../core/config.ts";
import { runnerPaths, tunDevice, vpnConnectionId } from "../core/names.ts";
import { REMOVE_ACTION } from "./dispatcher.ts";
import { vpnConnectionUuid } from "./keyfile.ts";
import { commandLock, prelude } from "./prelude.ts";
import { contentHash, type Rendered } from "./setup.ts";
import { shQuote, validLab } from "./shell.ts";

export const renderStopVpn = (labConfig: LabConfig): Rendered => {
  const lab = validLab(labConfig);
  const paths = runnerPaths(lab.name);
  const script = `${prelude(`labgate stop-vpn of lab ${lab.name}`, lab.name)}

readonly CONN=${shQuote(vpnConnectionId(lab.name))}
readonly VPN_UUID=${shQuote(vpnConnectionUuid(lab.name))}
readonly TUN=${shQuote(tunDevice(lab.name))}
readonly STATIC_KEY=${shQuote(paths.staticKey)}
readonly KEYFILE=${shQuote(paths.keyfile)}
readonly DISPATCHER=${shQuote(paths.dispatcher)}
readonly HEALTH_TIMER=${shQuote(paths.healthTimer.split("/").pop() ?? "")}
readonly WATCH_SERVICE=${shQuote(paths.watchService.split("/").pop() ?? "")}
readonly SETUP_HASH=${shQuote(paths.setupHash)}

require_commands nmcli iptables systemctl flock

${commandLock(paths.commandLock)}

# 1. No connection starts it any more: off every connection's secondaries, first.
while IFS=: read -r uuid; do
  [[ -n $uuid ]] || continue
  if nmcli -g connection.secondaries connection show uuid "$uuid" 2>/dev/null | tr ',' '\\n' | grep -xF "$VPN_UUID" >/dev/null; then
    nmcli connection modify uuid "$uuid" -connection.secondaries "$VPN_UUID"
    log "$CONN is no longer a secondary of $uuid"
  fi
done < <(nmcli -g UUID connection show)

# 2. Down, and its profile and key gone: nothing can bring it back with this credential.
if [[ $(nmcli -g GENERAL.STATE connection show uuid "$VPN_UUID" 2>/dev/null) == activated ]]; then
  nmcli connection down uuid "$VPN_UUID" >/dev/null
  log "$CONN brought down"
else
  log "$CONN was not up"
fi
if nmcli -g connection.uuid connection show uuid "$VPN_UUID" >/dev/null 2>&1; then
  nmcli connection delete uuid "$VPN_UUID" >/dev/null
  log "$CONN deleted"
fi
rm -f "$KEYFILE" "$STATIC_KEY" "$SETUP_HASH" ${shQuote(paths.parked)}

# 3. Its rules, chains and DNS service address: the lab leaves this runner (a late vpn-down from
#    NetworkManager finds the key gone and removes them too). systemd-resolved is not restarted for its
#    listener there: other labs' workers use it, and a listener on an address gone answers nobody.
if [[ -x $DISPATCHER ]]; then CONNECTION_UUID=$VPN_UUID "$DISPATCHER" "$TUN" ${REMOVE_ACTION}; fi
rm -f ${shQuote(paths.serviceListener)}

# 4. No more health reports or tunnel reports from a runner that no longer carries the lab.
systemctl disable --now "$HEALTH_TIMER" >/dev/null 2>&1 || true
systemctl disable --now "$WATCH_SERVICE" >/dev/null 2>&1 || true
log "stopped: the credential is free for another runner"
`;
  return { script, hash: contentHash(script) };
};
