// The lab in a box's store keeps the same contract as the DynamoDB store (test/aws/store.moto.test.ts).
import { MemoryStore } from "../../functions/local/memory-store.ts";
import { storeContract } from "../support/store-contract.ts";

storeContract("the in-memory store", async () => new MemoryStore());
storeContract("the in-memory store, saved and restored", async () =>
  MemoryStore.restore(new MemoryStore().snapshot()),
);
