// A reconcile that could not do something yet (a launching runner whose SSM agent has not registered) asks
// for another one soon: a delayed message on the lab's requeue queue invokes the function again. Neither a
// fixed sleep in the function nor a wait for the next scheduled reconcile.
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { sqs } from "./clients.ts";

/** Long enough for an SSM agent to come up, short next to the launch hook's timeout. */
export const REQUEUE_DELAY_SECONDS = 30;

export const requeue = async (queueUrl: string, reason: string): Promise<void> => {
  await sqs.send(
    new SendMessageCommand({
      QueueUrl: queueUrl,
      DelaySeconds: REQUEUE_DELAY_SECONDS,
      MessageBody: JSON.stringify({ reason }),
    }),
  );
};
