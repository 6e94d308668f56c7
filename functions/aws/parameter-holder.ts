// The lease of a credential, enforced by IAM: HOLDER_TAG on the credential's SSM parameter names the runner
// instance that holds it, and the runners' policy (infra/policy.ts) lets only that instance read it. The
// reconciler sets the tag when it leases a credential and clears it when it releases one.
import {
  AddTagsToResourceCommand,
  ListTagsForResourceCommand,
  RemoveTagsFromResourceCommand,
  ResourceTypeForTagging,
} from "@aws-sdk/client-ssm";
import { HOLDER_TAG } from "../core/names.ts";
import { ssm } from "./clients.ts";

// What IAM puts in ec2:SourceInstanceARN, the value the runners' policy compares the tag with.
const INSTANCE_ARN = /^arn:aws(-[a-z]+)*:ec2:[a-z0-9-]+:[0-9]{12}:instance\/i-[0-9a-f]{8,17}$/;

const checked = (holder: string): string => {
  if (!INSTANCE_ARN.test(holder)) {
    throw new TypeError(
      `${HOLDER_TAG} must hold an instance ARN (what IAM compares it with, ec2:SourceInstanceARN), not ${JSON.stringify(holder)}; names.ts instanceArn() makes one from an id`,
    );
  }
  return holder;
};

const parameterTags = { ResourceType: ResourceTypeForTagging.PARAMETER } as const;

/** Makes `instanceArn` the only instance that may read the credential `parameter` (replacing any holder). */
export const setParameterHolder = async (parameter: string, instanceArn: string): Promise<void> => {
  const Value = checked(instanceArn);
  await ssm.send(
    new AddTagsToResourceCommand({
      ...parameterTags,
      ResourceId: parameter,
      Tags: [{ Key: HOLDER_TAG, Value }],
    }),
  );
};

/**
 * Removes `holder` from the credential `parameter`, so that no instance may read it, if it still names that
 * holder: a late release of an old lease never takes a newer holder's key away. Returns whether it removed it.
 */
export const clearParameterHolder = async (parameter: string, holder: string): Promise<boolean> => {
  checked(holder);
  const { TagList = [] } = await ssm.send(
    new ListTagsForResourceCommand({ ...parameterTags, ResourceId: parameter }),
  );
  if (TagList.find((t) => t.Key === HOLDER_TAG)?.Value !== holder) return false;
  await ssm.send(
    new RemoveTagsFromResourceCommand({ ...parameterTags, ResourceId: parameter, TagKeys: [HOLDER_TAG] }),
  );
  return true;
};
