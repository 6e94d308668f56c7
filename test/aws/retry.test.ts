// The real module-scope clients (no mockClient here: it would replace `send` and skip the SDK's retry
// middleware). A middleware placed right after the retry middleware stands in for AWS on each attempt.

import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { EC2Client } from "@aws-sdk/client-ec2";
import { SSMClient } from "@aws-sdk/client-ssm";
import type { FinalizeHandlerArguments, FinalizeHandlerOutput, MetadataBearer } from "@smithy/types";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { apply } from "../../functions/aws/apply.ts";
import { clients, dynamodb, ec2, ssm } from "../../functions/aws/clients.ts";
import { ApplyError } from "../../functions/aws/errors.ts";
import { ownsInstance } from "../../functions/aws/owns-instance.ts";
import { MemoryStore } from "../../functions/local/memory-store.ts";
import { foo } from "./fixtures.ts";

const throttled = () =>
  Object.assign(new Error("Rate exceeded"), {
    name: "ThrottlingException",
    $fault: "client",
    $metadata: { httpStatusCode: 400 },
  });

/** Answers each attempt in turn: an Error is thrown, anything else is the command's output. */
const standIn = (
  client: { middlewareStack: (typeof clients)[number]["middlewareStack"] },
  answers: unknown[],
) => {
  const attempts: unknown[] = [];
  client.middlewareStack.addRelativeTo(
    () =>
      async (args: FinalizeHandlerArguments<object>): Promise<FinalizeHandlerOutput<MetadataBearer>> => {
        attempts.push(args.input);
        const answer = answers[attempts.length - 1];
        if (answer instanceof Error) throw answer;
        return { output: { $metadata: {}, ...(answer as object) }, response: {} };
      },
    { name: "standIn", relation: "after", toMiddleware: "retryMiddleware", override: true },
  );
  return attempts;
};

beforeAll(() => {
  // Should another test file have stubbed a client class in this worker, give `send` back to the SDK.
  mockClient(EC2Client).restore();
  mockClient(AutoScalingClient).restore();
  mockClient(SSMClient).restore();
  mockClient(CloudWatchClient).restore();
  // Resolved lazily at the first request: a region and fake credentials so that no provider chain is walked.
  vi.stubEnv("AWS_REGION", "eu-central-1");
  vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE");
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
});

beforeEach(() => {
  // The standard strategy waits a random fraction of its backoff; zero keeps the test fast.
  vi.spyOn(Math, "random").mockReturnValue(0);
});

afterEach(() => {
  // Each stack on its own: a call on the union of every client's stack is too complex for TypeScript.
  for (const stack of clients.map((c): { remove(name: string): boolean } => c.middlewareStack))
    stack.remove("standIn");
  vi.restoreAllMocks();
});

describe("the AWS clients", () => {
  it("use the standard retry mode with its 3 attempts (DynamoDB's client defaults to 4)", async () => {
    for (const client of clients) {
      await expect(client.config.retryStrategy()).resolves.toMatchObject({ mode: "standard" });
      // @aws-sdk/client-dynamodb's runtime config sets its own default of 4 attempts.
      await expect(client.config.maxAttempts()).resolves.toBe(client === dynamodb ? 4 : 3);
    }
  });

  it("retry a throttled request", async () => {
    const reservation = {
      Instances: [
        {
          InstanceId: "i-0f0000000000a0001",
          Tags: [{ Key: "aws:autoscaling:groupName", Value: "foo-runners" }],
        },
      ],
    };
    const attempts = standIn(ec2, [throttled(), { Reservations: [reservation] }]);

    await expect(ownsInstance("i-0f0000000000a0001", foo)).resolves.toBe(true);
    expect(attempts).toHaveLength(2);
  });

  it("give up after 3 throttled attempts, and the action fails with the throttling as its cause", async () => {
    const attempts = standIn(ssm, [
      throttled(),
      throttled(),
      throttled(),
      { Command: { CommandId: "never" } },
    ]);
    const store = new MemoryStore();
    await store.lease("foo", "/labgate/foo/vpn/client-3", "i-0f0000000000a0003", 0);

    const error = await apply(
      {
        id: "a-1",
        after: [],
        reason: "test",
        kind: "push-setup",
        instanceId: "i-0f0000000000a0003",
        hash: "3f2a9c1d0b7e4a56",
        credential: "/labgate/foo/vpn/client-3",
        expected: { commandId: undefined },
        script: "true",
      },
      foo,
      { store, log: { info: () => {}, warn: () => {} } },
    ).catch((e: unknown) => e);

    expect(attempts).toHaveLength(3);
    expect(error).toBeInstanceOf(ApplyError);
    expect((error as ApplyError).cause).toMatchObject({
      name: "ThrottlingException",
      $metadata: { attempts: 3 },
    });
  });
});
