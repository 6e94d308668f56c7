// The runner-side health reporter of one lab: a systemd timer runs a small script every 10 s that publishes
// TunnelHealthy (1 or 0) per runner, so that an alarm can fail the lab's routes over when the tunnel dies
// while the instance lives. The checks are shared with the setup, which runs them at its end.
import type { LabConfig } from "../core/config.ts";
import {
  HEALTH_DIMENSION_INSTANCE,
  HEALTH_DIMENSION_LAB,
  HEALTH_PERIOD_SECONDS,
  runnerHealthNamespace,
  runnerPaths,
  TUNNEL_HEALTH_METRIC,
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

# One of the lab's DNS servers, routed through the tunnel, answers (any DNS reply counts: dig exits 0).
lab_dns_answers() {
  local server
  for server in "\${CHECK_DNS_SERVERS[@]}"; do
    ip -4 route get "$server" 2>/dev/null | grep " dev $CHECK_TUN " >/dev/null || continue
    dig +time=2 +tries=2 "@$server" "$CHECK_PROBE_NAME" SOA >/dev/null 2>&1 && return 0
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
  if lab_dns_answers; then dns=answers value=1; fi
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
