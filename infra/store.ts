// labgate's store: one DynamoDB table for the deployment, holding each lab's leases and labgate's records of
// its runners (functions/aws/store.ts), keyed by lab first so that IAM confines each lab's function to its
// own items (dynamodb:LeadingKeys, infra/policy.ts). On demand, with point-in-time recovery; production
// stages also protect it from deletion, since it alone knows which runner holds which key.
import { STORE_TABLE_KEYS } from "../functions/aws/store.ts";
import { storeTableName } from "./naming.ts";

const [hash, range] = STORE_TABLE_KEYS;

export const store = new sst.aws.Dynamo("Store", {
  fields: Object.fromEntries(STORE_TABLE_KEYS.map((k) => [k.name, "string" as const])),
  primaryIndex: { hashKey: hash.name, rangeKey: range.name },
  transform: {
    table: (args) => {
      args.name = storeTableName($app.stage);
      args.billingMode = "PAY_PER_REQUEST";
      args.pointInTimeRecovery = { enabled: true };
      args.deletionProtectionEnabled = $app.stage === "production";
    },
  },
});
