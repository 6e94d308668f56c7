// The labs this deployment serves: one reconciler function per entry. Each entry is validated by the same
// schema the function applies to LABGATE_CONFIG at cold start (functions/core/config.ts); every field is
// described in infra/README.md. Deploying validates this file first and stops on the first mistake.
import type { LabConfigInput } from "../functions/core/config.ts";
import { parseLabs } from "./lab-set.ts";

export const labInputs: readonly LabConfigInput[] = [
  {
    name: "foo",
    vpcId: "vpc-0f0000000000f0001",
    vpcCidr: "10.0.0.0/16",
    intranetCidrs: ["10.200.0.0/16"],
    intranetDomains: ["foo.example"],
    dnsServers: ["10.200.0.10"],
    runners: {
      autoScalingGroupName: "foo-runners",
      instanceRoleName: "foo-runner-role",
      securityGroupId: "sg-0f00000000000f001",
    },
    workerSubnets: {
      ids: ["subnet-0f0000000000a0001", "subnet-0f0000000000b0001", "subnet-0f0000000000c0001"],
    },
    vpn: {
      remote: "vpn.foo.example",
      port: 1194,
      protocol: "udp",
      cipher: "AES-256-CBC",
      credentials: ["/labgate/foo/vpn/client-1", "/labgate/foo/vpn/client-2", "/labgate/foo/vpn/client-3"],
    },
    workerUserScriptPath: "/etc/gitlab-runner/worker-user-data.sh",
    crossAzFallback: true,
    alarmEmails: ["ci-oncall@example.com"],
  },
  {
    name: "bar",
    vpcId: "vpc-0f0000000000f0001",
    vpcCidr: "10.0.0.0/16",
    intranetCidrs: ["10.210.0.0/16", "10.211.4.0/24"],
    intranetDomains: ["bar.example", "lab.bar.example"],
    dnsServers: ["10.210.0.53"],
    runners: { autoScalingGroupName: "bar-runners", instanceRoleName: "bar-runner-role" },
    workerSubnets: { tag: { key: "labgate:worker-subnet", value: "bar" } },
    vpn: {
      remote: "198.51.100.7",
      port: 1194,
      protocol: "udp",
      cipher: "AES-256-CBC",
      credentials: ["/labgate/bar/vpn/client-1", "/labgate/bar/vpn/client-2"],
    },
    crossAzFallback: false,
    dnsServiceAddress: "100.64.53.2",
  },
];

/** The labs, validated (defaults filled in): what infra deploys and each function receives. */
export const labs = parseLabs(labInputs);
