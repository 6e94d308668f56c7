// The DynamoDB store against a real DynamoDB API (moto, started and stopped by this suite): conditional
// writes and transactions as DynamoDB evaluates them, strongly consistent reads, one lab's items apart.
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll } from "vitest";
import { DynamoStore } from "../../functions/aws/store.ts";
import { createStoreTable, type Moto, motoUnavailableReason, startMoto } from "../support/moto.ts";
import { storeContract } from "../support/store-contract.ts";

const skip = await motoUnavailableReason();
if (skip && process.env.CI === "true") throw new Error(`the moto suite cannot run in CI: ${skip}`);

let moto: Moto | undefined;
let client: DynamoDBClient | undefined;
let table = 0;

beforeAll(async () => {
  moto = await startMoto();
  client = new DynamoDBClient({
    endpoint: moto.endpoint,
    region: "eu-central-1",
    credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
    maxAttempts: 1,
  });
}, 60_000);

afterAll(async () => {
  client?.destroy();
  await moto?.stop();
});

if (skip) console.warn(`SKIPPED DynamoDB store suite: ${skip}`);
else
  storeContract("the DynamoDB store", async () => {
    if (!client) throw new Error("moto did not start");
    const name = `labgate-test-${++table}`;
    await createStoreTable(client, name);
    return new DynamoStore(client, name);
  });
