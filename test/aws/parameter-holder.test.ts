import "aws-sdk-client-mock-vitest/extend";
import {
  AddTagsToResourceCommand,
  ListTagsForResourceCommand,
  RemoveTagsFromResourceCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { clearParameterHolder, setParameterHolder } from "../../functions/aws/parameter-holder.ts";
import { HOLDER_TAG, instanceArn } from "../../functions/core/names.ts";

const ssm = mockClient(SSMClient);
beforeEach(() => ssm.reset());

const account = { partition: "aws", region: "eu-central-1", account: "123456789012" };
const PARAMETER = "/labgate/foo/vpn/client-1";
const A1 = instanceArn(account, "i-0f0000000000a0001");
const B1 = instanceArn(account, "i-0f0000000000b0001");

/** Every command the client received, as [command name, exact input]. */
const sent = () =>
  ssm.calls().map((call) => {
    const command = call.args[0] as { constructor: { name: string }; input: unknown };
    return [command.constructor.name, command.input];
  });

describe("the holder tag of a credential parameter", () => {
  it("names the leasing instance by its ARN, the value IAM gives as ec2:SourceInstanceARN", async () => {
    ssm.on(AddTagsToResourceCommand).resolves({});

    await setParameterHolder(PARAMETER, A1);

    expect(A1).toBe("arn:aws:ec2:eu-central-1:123456789012:instance/i-0f0000000000a0001");
    expect(sent()).toEqual([
      [
        "AddTagsToResourceCommand",
        { ResourceType: "Parameter", ResourceId: PARAMETER, Tags: [{ Key: HOLDER_TAG, Value: A1 }] },
      ],
    ]);
  });

  it.each([
    ["an instance id", "i-0f0000000000a0001"],
    ["another resource's ARN", "arn:aws:ec2:eu-central-1:123456789012:volume/vol-0f0000000000a0001"],
    ["an empty value", ""],
  ])("is never written with %s, which IAM could not match", async (_what, holder) => {
    await expect(setParameterHolder(PARAMETER, holder)).rejects.toThrow(TypeError);
    expect(sent()).toEqual([]);
  });

  it("is removed when it still names the releasing holder", async () => {
    ssm.on(ListTagsForResourceCommand).resolves({ TagList: [{ Key: HOLDER_TAG, Value: A1 }] });
    ssm.on(RemoveTagsFromResourceCommand).resolves({});

    await expect(clearParameterHolder(PARAMETER, A1)).resolves.toBe(true);

    expect(sent()).toEqual([
      ["ListTagsForResourceCommand", { ResourceType: "Parameter", ResourceId: PARAMETER }],
      [
        "RemoveTagsFromResourceCommand",
        { ResourceType: "Parameter", ResourceId: PARAMETER, TagKeys: [HOLDER_TAG] },
      ],
    ]);
  });

  it("is left alone when it names another holder (a late release of an old lease)", async () => {
    ssm.on(ListTagsForResourceCommand).resolves({ TagList: [{ Key: HOLDER_TAG, Value: B1 }] });

    await expect(clearParameterHolder(PARAMETER, A1)).resolves.toBe(false);

    expect(ssm).not.toHaveReceivedCommand(RemoveTagsFromResourceCommand);
  });

  it("is left alone when there is none", async () => {
    ssm.on(ListTagsForResourceCommand).resolves({ TagList: [{ Key: "Owner", Value: "ci" }] });

    await expect(clearParameterHolder(PARAMETER, A1)).resolves.toBe(false);

    expect(ssm).not.toHaveReceivedCommand(RemoveTagsFromResourceCommand);
  });

  it("lets an AWS error through to the caller", async () => {
    const missing = Object.assign(new Error("parameter not found"), { name: "InvalidResourceId" });
    ssm.on(AddTagsToResourceCommand).rejects(missing);

    await expect(setParameterHolder(PARAMETER, A1)).rejects.toThrow("parameter not found");
  });
});
