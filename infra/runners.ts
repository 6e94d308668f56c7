// What labgate adds to each lab's existing runners: the lifecycle hooks on their group, the security-group
// rule that lets the worker subnets reach them, and the policy their instance role needs (emitted, for the
// operator to attach: the role belongs to the runner group, not to labgate).
import { dnsServiceVpcOverlaps, intranetVpcOverlaps, type LabConfig } from "../functions/core/config.ts";
import { accountContext, componentName } from "./account.ts";
import { credentialKeys } from "./credential-keys.ts";
import { LIFECYCLE_HOOKS } from "./hooks.ts";
import { labs } from "./labs.ts";
import { runnerPolicyName } from "./naming.ts";
import { reconcilers } from "./reconciler.ts";
import { MANAGED_POLICY_MAX_CHARS, policySize, runnerPolicy } from "./runner-policy.ts";

/**
 * The lab's VPC, checked at deploy time: its real CIDR blocks (every association, not only the optional
 * vpcCidr) must not overlap the intranet nor hold the DNS service address, and the runners' security group
 * must be in it.
 */
const checkedVpc = (lab: LabConfig) =>
  aws.ec2.getVpcOutput({ id: lab.vpcId }).apply((vpc) => {
    const blocks = vpc.cidrBlockAssociations.map((a) => a.cidrBlock);
    const all = blocks.length > 0 ? blocks : [vpc.cidrBlock];
    const problems = [...intranetVpcOverlaps(lab, all), ...dnsServiceVpcOverlaps(lab, all)];
    if (problems.length > 0) throw new Error(`labgate ${lab.name}: ${problems.join("; ")}`);
    return vpc.id;
  });

/** The lab's VPC, once the runners' security group is known to be in it. */
const groupInVpc = (lab: LabConfig, securityGroupId: string, vpc: $util.Output<string>) =>
  $resolve([vpc, aws.ec2.getSecurityGroupOutput({ id: securityGroupId }).vpcId]).apply(([mine, its]) => {
    if (its !== mine)
      throw new Error(`labgate ${lab.name}: security group ${securityGroupId} is in ${its}, not ${mine}`);
    return mine;
  });

/** The worker subnets' CIDRs, in the lab's VPC only: by id, or by the tag the configuration names. */
const workerCidrs = (lab: LabConfig, vpcId: $util.Input<string>) =>
  $resolve([vpcId]).apply(async ([vpc]) => {
    const selector =
      "ids" in lab.workerSubnets
        ? { name: "subnet-id", values: [...lab.workerSubnets.ids] }
        : { name: `tag:${lab.workerSubnets.tag.key}`, values: [lab.workerSubnets.tag.value] };
    const { ids } = await aws.ec2.getSubnets({ filters: [selector, { name: "vpc-id", values: [vpc] }] });
    if (ids.length === 0) throw new Error(`labgate ${lab.name}: no worker subnet found in ${vpc}`);
    const missing = "ids" in lab.workerSubnets ? lab.workerSubnets.ids.filter((id) => !ids.includes(id)) : [];
    if (missing.length > 0) {
      throw new Error(
        `labgate ${lab.name}: worker subnets ${missing.join(", ")} are not in the lab's VPC ${vpc}`,
      );
    }
    const subnets = await Promise.all(ids.map((id) => aws.ec2.getSubnet({ id })));
    return subnets.map((s) => s.cidrBlock).sort();
  });

const createRunnerSide = (lab: LabConfig) => {
  const name = (what: string) => componentName(lab.name, what);
  const reconciler = reconcilers[lab.name];
  if (!reconciler) throw new Error(`labgate ${lab.name}: no reconciler`);
  // A hook before its rules would hold launches until they time out and are abandoned.
  const wired = reconciler.rules.flatMap((r) => [r.target, r.permission]);

  const hooks = LIFECYCLE_HOOKS.map(
    (hook) =>
      new aws.autoscaling.LifecycleHook(
        name(hook.transition.endsWith("LAUNCHING") ? "LaunchHook" : "TerminateHook"),
        {
          name: hook.name,
          autoscalingGroupName: lab.runners.autoScalingGroupName,
          lifecycleTransition: hook.transition,
          heartbeatTimeout: hook.heartbeatTimeout,
          defaultResult: hook.defaultResult,
        },
        { dependsOn: wired },
      ),
  );

  const vpc = checkedVpc(lab);
  const securityGroupId = lab.runners.securityGroupId;
  const workerIngress = securityGroupId
    ? new aws.ec2.SecurityGroupRule(name("WorkerIngress"), {
        type: "ingress",
        securityGroupId,
        protocol: "-1",
        fromPort: 0,
        toPort: 0,
        cidrBlocks: workerCidrs(lab, groupInVpc(lab, securityGroupId, vpc)),
        description: `labgate ${lab.name}: worker subnets reach their runners (routing, NAT, DNS)`,
      })
    : undefined;

  const credentialKeyArn = credentialKeys[lab.name]?.key.arn;
  if (!credentialKeyArn) throw new Error(`labgate ${lab.name}: no credential key`);
  const policy = new aws.iam.Policy(name("RunnerPolicy"), {
    name: runnerPolicyName($app.stage, lab.name),
    description: `labgate ${lab.name}: attach to ${lab.runners.instanceRoleName}, with AmazonSSMManagedInstanceCore`,
    // Resolved with the checked VPC, so that an intranet overlapping it stops the deployment here.
    policy: $resolve({ ctx: accountContext, keyArn: credentialKeyArn, vpc }).apply(({ ctx, keyArn }) => {
      const document = runnerPolicy(lab, { ...ctx, labs, credentialKeyArn: keyArn });
      if (policySize(document) > MANAGED_POLICY_MAX_CHARS) {
        throw new Error(
          `labgate ${lab.name}: the runners' policy is ${policySize(document)} characters, over IAM's ${MANAGED_POLICY_MAX_CHARS}: fewer or shorter credential parameter names across the labs file`,
        );
      }
      return JSON.stringify(document);
    }),
  });

  return { hooks, workerIngress, policy, vpc };
};

export const runnerSides = Object.fromEntries(labs.map((lab) => [lab.name, createRunnerSide(lab)]));
