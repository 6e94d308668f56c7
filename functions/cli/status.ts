// `npm run status -- --stage <stage> --lab <lab> [--region <region>] [--json]`: a deployed lab as labgate
// sees it, read from AWS only: the configuration its function was deployed with, then the same observe the
// function runs, the core's plan of it (printed, never applied) and its dead-letter queue. See
// infra/README.md "Status of a lab".
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { GetFunctionConfigurationCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { GetQueueAttributesCommand, GetQueueUrlCommand } from "@aws-sdk/client-sqs";
import { labs } from "../../infra/labs.ts";
import { deadLetterQueueName, functionName } from "../../infra/naming.ts";
import { dynamodb, sqs } from "../aws/clients.ts";
import { describeError } from "../aws/errors.ts";
import { observe } from "../aws/observe.ts";
import { DynamoStore } from "../aws/store.ts";
import { describeAction } from "../core/actions.ts";
import { type LabConfig, parseLabConfig } from "../core/config.ts";
import { plan } from "../core/plan.ts";
import type { LabStore } from "../reconcile/store.ts";
import { formatStatus, type LabStatus } from "./status-table.ts";

const USAGE = "usage: npm run status -- --stage <stage> --lab <lab> [--region <region>] [--json]";

export class StatusError extends Error {
  override name = "StatusError";
  constructor(
    message: string,
    readonly exitCode: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface StatusOptions {
  readonly stage: string;
  readonly lab: string;
  readonly region: string | undefined;
  readonly json: boolean;
}

export const parseStatusArgs = (argv: readonly string[], knownLabs: readonly string[]): StatusOptions => {
  let values: { stage?: string; lab?: string; region?: string; json?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        stage: { type: "string" },
        lab: { type: "string" },
        region: { type: "string" },
        json: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (cause) {
    throw new StatusError(`${(cause as Error).message}\n${USAGE}`, 2, { cause });
  }
  const { stage, lab } = values;
  if (!stage || !lab) throw new StatusError(`--stage and --lab are required\n${USAGE}`, 2);
  if (!knownLabs.includes(lab))
    throw new StatusError(`unknown lab "${lab}"; infra/labs.ts lists: ${knownLabs.join(", ")}`, 2);
  return { stage, lab, region: values.region, json: values.json ?? false };
};

/** Turns an SDK failure into what the operator should do about it. */
const explain = (error: unknown, options: StatusOptions, what: string): StatusError => {
  const name = (error as { name?: string }).name ?? "";
  const message = (error as Error).message ?? String(error);
  if (
    name === "CredentialsProviderError" ||
    ["UnrecognizedClientException", "ExpiredTokenException", "InvalidSignatureException"].includes(name) ||
    /could not load credentials/i.test(message)
  ) {
    return new StatusError(
      `no AWS credentials found (${message}).\nSet AWS_PROFILE (after \`aws sso login\`) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for the account of stage ${options.stage}.`,
      3,
      { cause: error },
    );
  }
  if (/region is missing/i.test(message))
    return new StatusError("no AWS region: pass --region or set AWS_REGION", 3, { cause: error });
  if (/AccessDenied|UnauthorizedOperation/.test(name))
    return new StatusError(`these credentials may not ${what}: ${message}`, 3, { cause: error });
  return new StatusError(`${what} failed: ${describeError(error)}`, 1, { cause: error });
};

/** The configuration the stage's function of the lab runs with (its LABGATE_CONFIG), read from Lambda. */
/** The configuration a stage's function runs with, and the store table it keeps labgate's state in. */
export const deployedConfig = async (
  lambda: LambdaClient,
  options: StatusOptions,
): Promise<{ readonly lab: LabConfig; readonly storeTable: string }> => {
  const fn = functionName(options.stage, options.lab);
  let text: string | undefined;
  let storeTable: string | undefined;
  try {
    const out = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: fn }));
    text = out.Environment?.Variables?.LABGATE_CONFIG;
    storeTable = out.Environment?.Variables?.LABGATE_STORE_TABLE;
  } catch (error) {
    if ((error as { name?: string }).name === "ResourceNotFoundException") {
      throw new StatusError(
        `labgate is not deployed for lab ${options.lab} in stage ${options.stage}: there is no function ${fn}${options.region ? ` in ${options.region}` : ""}.\nDeploy it with \`npx sst deploy --stage ${options.stage}\`, or check --stage, --lab and the region.`,
        4,
        { cause: error },
      );
    }
    throw explain(error, options, `read the configuration of ${fn} (lambda:GetFunctionConfiguration)`);
  }
  if (!storeTable) {
    throw new StatusError(
      `${fn} has no LABGATE_STORE_TABLE: it was deployed by an older labgate; deploy this one first`,
      4,
    );
  }
  try {
    return { lab: parseLabConfig(text, `LABGATE_CONFIG of ${fn}`), storeTable };
  } catch (cause) {
    throw new StatusError((cause as Error).message, 1, { cause });
  }
};

/** How many messages wait in the lab's dead-letter queue, or why that could not be read. */
const deadLetters = async (options: StatusOptions): Promise<number | string> => {
  const name = deadLetterQueueName(options.stage, options.lab);
  try {
    const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
    const out = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["ApproximateNumberOfMessages"] }),
    );
    return Number(out.Attributes?.ApproximateNumberOfMessages ?? 0);
  } catch (error) {
    return `unknown (${name}: ${describeError(error)})`;
  }
};

/** Everything the table shows, read from AWS; nothing is written. */
export const readStatus = async (
  lab: LabConfig,
  store: LabStore,
  options: StatusOptions,
  now: number = Date.now(),
): Promise<LabStatus> => {
  const [world, letters] = await Promise.all([
    observe(lab, { store, now, log: { info: () => undefined, warn: () => undefined } }).catch(
      (error: unknown) => {
        throw explain(error, options, `read lab ${lab.name} (EC2, Auto Scaling, CloudWatch, SSM)`);
      },
    ),
    deadLetters(options),
  ]);
  // observe plans around a read that fails; for a person asking, missing access or credentials is the answer.
  for (const u of world.unknown) {
    const [name = "", ...rest] = u.error.split(": ");
    const error = Object.assign(new Error(rest.join(": ")), { name });
    const explained = explain(
      error,
      options,
      `read lab ${lab.name} (EC2, Auto Scaling, CloudWatch, SSM, DynamoDB)`,
    );
    if (explained.exitCode === 3) throw explained;
  }
  return { stage: options.stage, lab, world, plan: plan(world, lab), deadLetters: letters };
};

export const main = async (
  argv: readonly string[],
  storeOf: (table: string) => LabStore = (table) => new DynamoStore(dynamodb, table),
): Promise<number> => {
  try {
    const options = parseStatusArgs(
      argv,
      labs.map((l) => l.name),
    );
    // The adapters' shared clients take their region from the environment when they first call AWS.
    if (options.region) process.env.AWS_REGION = options.region;
    const { lab, storeTable } = await deployedConfig(new LambdaClient({}), options);
    const status = await readStatus(lab, storeOf(storeTable), options);
    console.log(
      options.json
        ? JSON.stringify(
            { ...status, plan: { ...status.plan, actions: status.plan.actions.map(describeAction) } },
            null,
            2,
          )
        : formatStatus(status),
    );
    return 0;
  } catch (error) {
    if (error instanceof StatusError) {
      console.error(`status: ${error.message}`);
      return error.exitCode;
    }
    throw error;
  }
};

const invokedDirectly = (): boolean => {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
};

if (invokedDirectly()) process.exitCode = await main(process.argv.slice(2));
