// The runner side of a lab's tunnel health, two independent paths. The tunnel watch (a systemd service) probes
// every second and decides with hysteresis; when its verdict changes it reports it as a tag on its own instance,
// which labgate hears of at once (an EventBridge Tag Change event) and reads back when it observes. The health
// reporter (a systemd timer, every 10 s) publishes TunnelHealthy (1 or 0), watched by an alarm: the backstop
// for a runner that died or whose watch cannot report. The checks are shared with the setup, which runs them
// at its end.
import type { LabConfig } from "../core/config.ts";
import {
  HEALTH_DIMENSION_INSTANCE,
  HEALTH_DIMENSION_LAB,
  HEALTH_PERIOD_SECONDS,
  runnerHealthNamespace,
  runnerPaths,
  TUNNEL_HEALTH_METRIC,
  TUNNEL_TAG,
  TUNNEL_WATCH,
  tunDevice,
} from "../core/names.ts";
import { vpnConnectionUuid } from "./keyfile.ts";
import { INSTANCE_ID, requireMatch, shArray, shQuote, validLab } from "./shell.ts";

/** Bash definitions of the lab's checks: tunnel_up and lab_dns_answers (quiet; 0 when true). */
export const checkFunctions = (labConfig: LabConfig): string => {
  const lab = validLab(labConfig);
  const probe = lab.intranetDomains[0] ?? "";
  return `readonly CHECK_VPN_UUID=${shQuote(vpnConnectionUuid(lab.name))}
readonly CHECK_TUN=${shQuote(tunDevice(lab.name))}
readonly CHECK_DNS_SERVERS=${shArray(lab.dnsServers)}
readonly CHECK_PROBE_NAME=${shQuote(probe)}

# The lab's VPN connection is activated in NetworkManager and its tun device is up.
tunnel_up() {
  [[ $(nmcli -g GENERAL.STATE connection show uuid "$CHECK_VPN_UUID" 2>/dev/null) == activated ]] &&
    ip link show dev "$CHECK_TUN" up 2>/dev/null | grep . >/dev/null
}

# lab_dns_answers SECONDS TRIES: one of the lab's DNS servers, routed through the tunnel, answers within
# SECONDS in one of TRIES tries (any DNS reply counts: dig exits 0).
lab_dns_answers() {
  local server time=$1 tries=$2
  for server in "\${CHECK_DNS_SERVERS[@]}"; do
    ip -4 route get "$server" 2>/dev/null | grep " dev $CHECK_TUN " >/dev/null || continue
    dig +time="$time" +tries="$tries" "@$server" "$CHECK_PROBE_NAME" SOA >/dev/null 2>&1 && return 0
  done
  return 1
}`;
};

/**
 * Bash: sets AWS_DEFAULT_REGION from the instance metadata (IMDSv2) when no region is configured, since the
 * AWS CLI does not always look there itself.
 */
export const AWS_REGION_FUNCTION = `use_instance_region() {
  [[ -n \${AWS_REGION:-}\${AWS_DEFAULT_REGION:-} ]] && return 0
  local token region
  token=$(curl -sf --max-time 2 -X PUT http://169.254.169.254/latest/api/token \\
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 60') || return 0
  region=$(curl -sf --max-time 2 -H "X-aws-ec2-metadata-token: $token" \\
    http://169.254.169.254/latest/meta-data/placement/region) || return 0
  [[ $region =~ ^[a-z0-9-]+$ ]] && export AWS_DEFAULT_REGION=$region
  return 0
}`;

/** The reporter's DNS probe, and the setup's check: 2 tries of 2 s (the watch is quicker, and repeats). */
export const REPORT_DNS = { seconds: 2, tries: 2 } as const;

export const renderHealthScript = (labConfig: LabConfig, instanceId: string): string => {
  const lab = validLab(labConfig);
  requireMatch("instanceId", instanceId, INSTANCE_ID, "an EC2 instance id such as i-0123456789abcdef0");
  // The lab's own namespace: the runners' role may publish there only (infra/policy.ts).
  const namespace = runnerHealthNamespace(lab.name);
  return `#!/bin/bash
# labgate health reporter for lab ${lab.name}: publishes ${namespace} ${TUNNEL_HEALTH_METRIC} = 1 when the
# tunnel is up and the lab's DNS answers through it, else 0. Run by ${runnerPaths(lab.name).healthTimer.split("/").pop()}.
set -uo pipefail
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

readonly LAB=${shQuote(lab.name)}
readonly INSTANCE_ID=${shQuote(instanceId)}

${checkFunctions(lab)}

${AWS_REGION_FUNCTION}

tunnel=down dns=silent value=0
if tunnel_up; then
  tunnel=up
  if lab_dns_answers ${REPORT_DNS.seconds} ${REPORT_DNS.tries}; then dns=answers value=1; fi
fi

use_instance_region
if ! aws cloudwatch put-metric-data --namespace ${shQuote(namespace)} \\
  --metric-name ${shQuote(TUNNEL_HEALTH_METRIC)} --unit Count --value "$value" --storage-resolution 1 \\
  --dimensions "${HEALTH_DIMENSION_LAB}=$LAB,${HEALTH_DIMENSION_INSTANCE}=$INSTANCE_ID"; then
  echo "labgate $LAB health: tunnel=$tunnel dns=$dns, but publishing ${TUNNEL_HEALTH_METRIC}=$value failed" >&2
  exit 1
fi
echo "labgate $LAB health: tunnel=$tunnel dns=$dns ${TUNNEL_HEALTH_METRIC}=$value"
`;
};

export const renderHealthService = (labConfig: LabConfig): string => {
  const lab = validLab(labConfig);
  return `# labgate: publish lab ${lab.name}'s tunnel health once (started by its timer).
[Unit]
Description=labgate tunnel health of lab ${lab.name}
After=network-online.target NetworkManager.service

[Service]
Type=oneshot
ExecStart=${runnerPaths(lab.name).healthScript}
`;
};

export const renderHealthTimer = (labConfig: LabConfig): string => {
  const lab = validLab(labConfig);
  return `# labgate: publish lab ${lab.name}'s tunnel health every ${HEALTH_PERIOD_SECONDS} s (a high-resolution metric).
[Unit]
Description=labgate tunnel health of lab ${lab.name}, every ${HEALTH_PERIOD_SECONDS} s

[Timer]
OnBootSec=30s
OnUnitActiveSec=${HEALTH_PERIOD_SECONDS}s
AccuracySec=1s

[Install]
WantedBy=timers.target
`;
};

/**
 * The tunnel watch: a probe every TUNNEL_WATCH.periodSeconds (the VPN up, and the lab's DNS answering through
 * it within probeTimeoutSeconds, one try); downAfter failed probes in a row make its verdict down, upAfter good
 * ones up. Each change of verdict is reported as TUNNEL_TAG on this instance (IAM allows that tag on the
 * instance's own ARN only); a report that could not be written is tried again at the next probe. It logs
 * failed probes and reports only: a healthy runner's journal stays quiet.
 */
export const renderWatchScript = (labConfig: LabConfig, instanceId: string): string => {
  const lab = validLab(labConfig);
  requireMatch("instanceId", instanceId, INSTANCE_ID, "an EC2 instance id such as i-0123456789abcdef0");
  const { periodSeconds, probeTimeoutSeconds, downAfter, upAfter } = TUNNEL_WATCH;
  return `#!/bin/bash
# labgate tunnel watch for lab ${lab.name}: probes the tunnel every ${periodSeconds} s; ${downAfter} failed probes in a row
# report it down, ${upAfter} good ones up, as the tag ${TUNNEL_TAG}="<up|down> <UTC time>" on this instance.
# Run by ${runnerPaths(lab.name).watchService.split("/").pop()}.
set -uo pipefail
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

readonly LAB=${shQuote(lab.name)}
readonly INSTANCE_ID=${shQuote(instanceId)}
readonly TAG=${shQuote(TUNNEL_TAG)}
readonly PERIOD_MS=${periodSeconds * 1000}
readonly PROBE_TIMEOUT=${probeTimeoutSeconds}
readonly DOWN_AFTER=${downAfter}
readonly UP_AFTER=${upAfter}

${checkFunctions(lab)}

${AWS_REGION_FUNCTION}

log() { printf 'labgate %s watch: %s\\n' "$LAB" "$*"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# report STATE: the verdict as this instance's tag, with the time it was reached.
report() {
  aws ec2 create-tags --resources "$INSTANCE_ID" --tags "Key=$TAG,Value=$1 $(date -u +%Y-%m-%dT%H:%M:%SZ)" \\
    --cli-connect-timeout 2 --cli-read-timeout 3 >/dev/null
}

use_instance_region
log "watching $CHECK_TUN: a probe every $((PERIOD_MS / 1000)) s, down after $DOWN_AFTER failed, up after $UP_AFTER good"
# What this instance's tag says as far as this watch knows: nothing yet, so its first verdict is reported.
reported="" good=0 bad=0
while :; do
  next=$(($(now_ms) + PERIOD_MS))
  if tunnel_up && lab_dns_answers "$PROBE_TIMEOUT" 1; then
    ((bad == 0)) || log "the probe succeeds again after $bad failed"
    good=$((good + 1)) bad=0
  else
    good=0 bad=$((bad + 1))
    # Each failure up to the verdict; then quiet while the tunnel stays down.
    ((bad > DOWN_AFTER)) || log "probe failed ($bad in a row; down after $DOWN_AFTER)"
  fi
  verdict=$reported
  ((bad < DOWN_AFTER)) || verdict=down
  ((good < UP_AFTER)) || verdict=up
  if [[ $verdict != "$reported" ]]; then
    if report "$verdict"; then
      reported=$verdict
      log "reported the tunnel $verdict"
    else
      log "could not report the tunnel $verdict; trying again after the next probe" >&2
    fi
  fi
  wait_ms=$((next - $(now_ms)))
  if ((wait_ms > 0)); then sleep "$((wait_ms / 1000)).$(printf '%03d' $((wait_ms % 1000)))"; fi
done
`;
};

export const renderWatchService = (labConfig: LabConfig): string => {
  const lab = validLab(labConfig);
  return `# labgate: watch lab ${lab.name}'s tunnel every ${TUNNEL_WATCH.periodSeconds} s and report its verdict at once.
[Unit]
Description=labgate tunnel watch of lab ${lab.name}
After=network-online.target NetworkManager.service

[Service]
Type=simple
ExecStart=${runnerPaths(lab.name).watchScript}
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
`;
};
