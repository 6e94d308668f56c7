// What labgate adds to each lab's existing runners: the lifecycle hooks on their group, the security-group
// rule that lets the worker subnets reach them, and the policy their instance role needs (emitted, for the
// operator to attach: the role belongs to the runner group, not to labgate).
import type { LabConfig } from "../functions/core/config.ts";
import { accountContext, componentName } from "./account.ts";
import { LIFECYCLE_HOOKS } from "./hooks.ts";
import { labs } from "./labs.ts";
import { runnerPolicyName } from "./naming.ts";
import { runnerPolicy } from "./policy.ts";
import { reconcilers } from "./reconciler.ts";

/** The worker subnets' CIDRs, in the runners' VPC: by id, or by the tag the configuration names. */
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
        `labgate ${lab.name}: worker subnets ${missing.join(", ")} are not in the runners' VPC ${vpc}`,
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

  const securityGroupId = lab.runners.securityGroupId;
  const workerIngress = securityGroupId
    ? new aws.ec2.SecurityGroupRule(name("WorkerIngress"), {
        type: "ingress",
        securityGroupId,
        protocol: "-1",
        fromPort: 0,
        toPort: 0,
        cidrBlocks: workerCidrs(lab, aws.ec2.getSecurityGroupOutput({ id: securityGroupId }).vpcId),
        description: `labgate ${lab.name}: worker subnets reach their runners (routing, NAT, DNS)`,
      })
    : undefined;

  const policy = new aws.iam.Policy(name("RunnerPolicy"), {
    name: runnerPolicyName($app.stage, lab.name),
    description: `labgate ${lab.name}: attach to the runners' instance role, with AmazonSSMManagedInstanceCore`,
    policy: accountContext.apply((ctx) => JSON.stringify(runnerPolicy(lab, ctx))),
  });

  return { hooks, workerIngress, policy };
};

export const runnerSides = Object.fromEntries(labs.map((lab) => [lab.name, createRunnerSide(lab)]));
