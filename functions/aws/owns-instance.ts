// Whether an instance named by an event is one of the lab's runners: a cheap check before a full reconcile.
import { DescribeInstancesCommand } from "@aws-sdk/client-ec2";
import type { LabConfig } from "../core/config.ts";
import { ASG_TAG } from "../core/names.ts";
import { ec2 } from "./clients.ts";
import { isAwsError } from "./errors.ts";

export const ownsInstance = async (instanceId: string, lab: LabConfig): Promise<boolean> => {
  try {
    const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    const instances = (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
    return instances.some(
      (i) =>
        i.InstanceId === instanceId &&
        (i.Tags ?? []).some((t) => t.Key === ASG_TAG && t.Value === lab.runners.autoScalingGroupName),
    );
  } catch (error) {
    // An instance EC2 does not know (gone for over an hour, or never was) is nobody's runner.
    if (isAwsError(error, "InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed")) return false;
    throw error;
  }
};
