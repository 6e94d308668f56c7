// The lab's store in DynamoDB: one table per deployment (infra/store.ts), items keyed by lab (partition key,
// the only key each lab's function may touch: IAM dynamodb:LeadingKeys) and by `runner#<instance>`,
// `lease#<parameter>` or `requeue` (the lab's requeue episode, functions/core/retry.ts). Reads are strongly consistent; every write that matters is conditional, so that two
// reconciles working from different views can never give one key to two runners.
// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html
import { type DynamoDBClient, TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  PutCommand,
  paginateQuery,
  TransactWriteCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import type { RequeueEpisode } from "../core/retry.ts";
import type { AlarmState, CommandRecord } from "../core/world.ts";
import {
  type LabStore,
  type Lease,
  StoreConflict,
  type StoredLab,
  type StoredRunner,
} from "../reconcile/store.ts";
import { isAwsError } from "./errors.ts";

/** The table's keys (infra/store.ts creates it with them): the lab, then the item within the lab. */
export const STORE_TABLE_KEYS = [
  { name: "pk", type: "HASH" },
  { name: "sk", type: "RANGE" },
] as const;

const RUNNER = "runner#";
const LEASE = "lease#";
/** The lab's one requeue episode: a lab-level item in the lab's own partition. */
const REQUEUE = "requeue";
const runnerKey = (lab: string, instanceId: string) => ({ pk: lab, sk: `${RUNNER}${instanceId}` });
const leaseKey = (lab: string, parameter: string) => ({ pk: lab, sk: `${LEASE}${parameter}` });

/**
 * Every attribute name goes through a placeholder (#name): several plain words are DynamoDB reserved words,
 * and a placeholder the expression does not use is an error, so each call names exactly what it uses.
 */
const names = (...attributes: string[]): Record<string, string> =>
  Object.fromEntries(attributes.map((a) => [`#${a}`, a]));

/** A conditional write (or a transaction with one) that failed its condition is a StoreConflict. */
const conditional = async <T>(what: string, write: () => Promise<T>): Promise<T> => {
  try {
    return await write();
  } catch (error) {
    if (
      error instanceof TransactionCanceledException ||
      isAwsError(error, "ConditionalCheckFailedException", "TransactionCanceledException")
    ) {
      throw new StoreConflict(`${what}: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
      });
    }
    throw error;
  }
};

const isCommand = (value: unknown): value is CommandRecord =>
  typeof value === "object" &&
  value !== null &&
  ["setup", "stop-vpn"].includes((value as CommandRecord).kind) &&
  typeof (value as CommandRecord).hash === "string" &&
  typeof (value as CommandRecord).sentAt === "number";

/** Parses an item at the edge: anything malformed is left out rather than half understood. */
const runnerOf = (item: Record<string, unknown>): StoredRunner => {
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  const command = isCommand(item.command) ? item.command : undefined;
  const sending = isCommand({ ...(item.sending as object), status: "pending" })
    ? (item.sending as StoredRunner["sending"])
    : undefined;
  const health = str(item.health);
  return {
    credential: str(item.credential),
    appliedSetup: str(item.appliedSetup),
    command:
      command === undefined
        ? undefined
        : {
            kind: command.kind,
            hash: command.hash,
            commandId: str(command.commandId),
            status: command.status,
            sentAt: command.sentAt,
          },
    sending,
    health: health === "OK" || health === "ALARM" || health === "INSUFFICIENT_DATA" ? health : undefined,
    alarmedAt: typeof item.alarmedAt === "number" ? item.alarmedAt : undefined,
  };
};

/** The requeue episode, or undefined when the item is malformed (a new episode then starts). */
const requeueOf = (item: Record<string, unknown>): RequeueEpisode | undefined => {
  const { reasons, attempts, dueAt } = item;
  if (!Array.isArray(reasons) || !reasons.every((r) => typeof r === "string")) return undefined;
  if (typeof attempts !== "number" || (dueAt !== undefined && typeof dueAt !== "number")) return undefined;
  return { reasons, attempts, dueAt };
};

export class DynamoStore implements LabStore {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    private readonly table: string,
  ) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  async read(lab: string): Promise<StoredLab> {
    const runners = new Map<string, StoredRunner>();
    const leases = new Map<string, Lease>();
    let requeue: RequeueEpisode | undefined;
    const pages = paginateQuery(
      { client: this.doc },
      {
        TableName: this.table,
        KeyConditionExpression: "#pk = :lab",
        ExpressionAttributeNames: names("pk"),
        ExpressionAttributeValues: { ":lab": lab },
        ConsistentRead: true,
      },
    );
    for await (const page of pages) {
      for (const item of page.Items ?? []) {
        const sk = String(item.sk);
        if (sk.startsWith(RUNNER)) runners.set(sk.slice(RUNNER.length), runnerOf(item));
        else if (sk.startsWith(LEASE) && typeof item.holder === "string" && typeof item.since === "number")
          leases.set(sk.slice(LEASE.length), { holder: item.holder, since: item.since });
        else if (sk === REQUEUE) requeue = requeueOf(item);
      }
    }
    return { runners, leases, requeue };
  }

  async lease(lab: string, parameter: string, instanceId: string, now: number): Promise<void> {
    await conditional(`lease of ${parameter} to ${instanceId}`, () =>
      this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.table,
                Key: leaseKey(lab, parameter),
                UpdateExpression: "SET #holder = :me, #since = if_not_exists(#since, :now)",
                ConditionExpression: "attribute_not_exists(#holder) OR #holder = :me",
                ExpressionAttributeNames: names("holder", "since"),
                ExpressionAttributeValues: { ":me": instanceId, ":now": now },
              },
            },
            {
              Update: {
                TableName: this.table,
                Key: runnerKey(lab, instanceId),
                UpdateExpression: "SET #credential = :k",
                ConditionExpression: "attribute_not_exists(#credential) OR #credential = :k",
                ExpressionAttributeNames: names("credential"),
                ExpressionAttributeValues: { ":k": parameter },
              },
            },
          ],
        }),
      ),
    );
  }

  async release(lab: string, parameter: string, instanceId: string): Promise<void> {
    try {
      await conditional(`release of ${parameter} by ${instanceId}`, () =>
        this.doc.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Delete: {
                  TableName: this.table,
                  Key: leaseKey(lab, parameter),
                  ConditionExpression: "#holder = :me",
                  ExpressionAttributeNames: names("holder"),
                  ExpressionAttributeValues: { ":me": instanceId },
                },
              },
              {
                Update: {
                  TableName: this.table,
                  Key: runnerKey(lab, instanceId),
                  UpdateExpression: "REMOVE #credential",
                  ConditionExpression: "#credential = :k",
                  ExpressionAttributeNames: names("credential"),
                  ExpressionAttributeValues: { ":k": parameter },
                },
              },
            ],
          }),
        ),
      );
    } catch (error) {
      // Not (or no longer) its key: there is nothing to give back.
      if (!(error instanceof StoreConflict)) throw error;
    }
  }

  async releaseOrphan(lab: string, parameter: string, holder: string): Promise<void> {
    try {
      await conditional(`release of ${parameter} held by ${holder}`, () =>
        this.doc.send(
          new DeleteCommand({
            TableName: this.table,
            Key: leaseKey(lab, parameter),
            ConditionExpression: "#holder = :h",
            ExpressionAttributeNames: names("holder"),
            ExpressionAttributeValues: { ":h": holder },
          }),
        ),
      );
    } catch (error) {
      if (!(error instanceof StoreConflict)) throw error;
    }
  }

  async beginCommand(
    lab: string,
    instanceId: string,
    intent: Pick<CommandRecord, "kind" | "hash" | "sentAt">,
    expectedCommandId: string | undefined,
    credential: string | undefined,
  ): Promise<void> {
    const conditions = [
      "attribute_not_exists(#sending)",
      expectedCommandId === undefined
        ? "attribute_not_exists(#command.#commandId)"
        : "#command.#commandId = :expected",
      ...(credential === undefined ? [] : ["#credential = :k"]),
    ];
    await conditional(`${intent.kind} on ${instanceId}`, () =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: runnerKey(lab, instanceId),
          UpdateExpression: "SET #sending = :intent",
          ConditionExpression: conditions.join(" AND "),
          ExpressionAttributeNames: names(
            "sending",
            "command",
            "commandId",
            ...(credential === undefined ? [] : ["credential"]),
          ),
          ExpressionAttributeValues: {
            ":intent": { kind: intent.kind, hash: intent.hash, sentAt: intent.sentAt },
            ...(expectedCommandId === undefined ? {} : { ":expected": expectedCommandId }),
            ...(credential === undefined ? {} : { ":k": credential }),
          },
        }),
      ),
    );
  }

  async commandSent(lab: string, instanceId: string, record: CommandRecord): Promise<void> {
    await conditional(`recording ${record.kind} ${record.commandId} on ${instanceId}`, () =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: runnerKey(lab, instanceId),
          UpdateExpression: "SET #command = :record REMOVE #sending",
          ConditionExpression: "#sending.#sentAt = :t",
          ExpressionAttributeNames: names("command", "sending", "sentAt"),
          ExpressionAttributeValues: { ":record": record, ":t": record.sentAt },
        }),
      ),
    );
  }

  async abortCommand(lab: string, instanceId: string, sentAt: number): Promise<void> {
    try {
      await conditional(`dropping the intent of ${instanceId}`, () =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: runnerKey(lab, instanceId),
            UpdateExpression: "REMOVE #sending",
            ConditionExpression: "#sending.#sentAt = :t",
            ExpressionAttributeNames: names("sending", "sentAt"),
            ExpressionAttributeValues: { ":t": sentAt },
          }),
        ),
      );
    } catch (error) {
      if (!(error instanceof StoreConflict)) throw error;
    }
  }

  async recordCommand(
    lab: string,
    instanceId: string,
    record: CommandRecord,
    appliedSetup: string | null | undefined,
  ): Promise<void> {
    const set = [
      "#command = :record",
      ...(typeof appliedSetup === "string" ? ["#appliedSetup = :applied"] : []),
    ];
    const remove = [
      ...(record.commandId === undefined ? ["#sending"] : []),
      ...(appliedSetup === null ? ["#appliedSetup"] : []),
    ];
    const condition =
      record.commandId === undefined
        ? "#sending.#sentAt = :t"
        : "#command.#commandId = :id AND attribute_not_exists(#sending)";
    await conditional(`recording how ${record.commandId ?? "an unsent command"} ended on ${instanceId}`, () =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: runnerKey(lab, instanceId),
          UpdateExpression: `SET ${set.join(", ")}${remove.length > 0 ? ` REMOVE ${remove.join(", ")}` : ""}`,
          ConditionExpression: condition,
          ExpressionAttributeNames: names(
            "command",
            "sending",
            ...(record.commandId === undefined ? ["sentAt"] : ["commandId"]),
            ...(appliedSetup === undefined ? [] : ["appliedSetup"]),
          ),
          ExpressionAttributeValues: {
            ":record": record,
            ...(typeof appliedSetup === "string" ? { ":applied": appliedSetup } : {}),
            ...(record.commandId === undefined ? { ":t": record.sentAt } : { ":id": record.commandId }),
          },
        }),
      ),
    );
  }

  async recordHealth(lab: string, instanceId: string, health: AlarmState, alarmedAt?: number): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: runnerKey(lab, instanceId),
        ...(alarmedAt === undefined
          ? {
              UpdateExpression: "SET #health = :h",
              ExpressionAttributeNames: names("health"),
              ExpressionAttributeValues: { ":h": health },
            }
          : {
              UpdateExpression: "SET #health = :h, #alarmedAt = :a",
              ExpressionAttributeNames: names("health", "alarmedAt"),
              ExpressionAttributeValues: { ":h": health, ":a": alarmedAt },
            }),
      }),
    );
  }

  async adopt(lab: string, instanceId: string, state: StoredRunner, now: number): Promise<void> {
    await conditional(`adoption of ${instanceId}`, () =>
      this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.table,
                Item: { ...runnerKey(lab, instanceId), ...state },
                ConditionExpression: "attribute_not_exists(#sk)",
                ExpressionAttributeNames: names("sk"),
              },
            },
            ...(state.credential === undefined
              ? []
              : [
                  {
                    Put: {
                      TableName: this.table,
                      Item: { ...leaseKey(lab, state.credential), holder: instanceId, since: now },
                      ConditionExpression: "attribute_not_exists(#holder)",
                      ExpressionAttributeNames: names("holder"),
                    },
                  },
                ]),
          ],
        }),
      ),
    );
  }

  async forget(lab: string, instanceId: string): Promise<void> {
    await conditional(`forgetting ${instanceId}`, () =>
      this.doc.send(
        new DeleteCommand({
          TableName: this.table,
          Key: runnerKey(lab, instanceId),
          ConditionExpression: "attribute_not_exists(#credential)",
          ExpressionAttributeNames: names("credential"),
        }),
      ),
    );
  }

  async recordRequeue(lab: string, episode: RequeueEpisode | undefined): Promise<void> {
    const Key = { pk: lab, sk: REQUEUE };
    if (episode === undefined) {
      await this.doc.send(new DeleteCommand({ TableName: this.table, Key }));
      return;
    }
    await this.doc.send(new PutCommand({ TableName: this.table, Item: { ...Key, ...episode } }));
  }
}
