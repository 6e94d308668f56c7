// `npm run resync -- --stage <stage> --lab <lab> [--dry-run]`: asks a deployed lab's reconciler for a full
// re-sync (or a dry run) and prints its report as a table (report-table.ts, as the local dry run does).
// See infra/README.md "Manual re-sync".
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { InvokeCommand, type InvokeCommandOutput, LambdaClient } from "@aws-sdk/client-lambda";
import { z } from "zod";
import { labs } from "../../infra/labs.ts";
import { functionName } from "../../infra/naming.ts";
import { FINDING_KINDS } from "../core/actions.ts";
import type { Report } from "../reconcile/reconcile.ts";
import { formatReport } from "./report-table.ts";

const USAGE = "usage: npm run resync -- --stage <stage> --lab <lab> [--dry-run] [--region <region>] [--json]";

export class ResyncError extends Error {
  override name = "ResyncError";
  constructor(
    message: string,
    readonly exitCode: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface ResyncOptions {
  readonly stage: string;
  readonly lab: string;
  readonly dryRun: boolean;
  readonly region: string | undefined;
  readonly json: boolean;
}

export const parseResyncArgs = (argv: readonly string[], knownLabs: readonly string[]): ResyncOptions => {
  let values: { stage?: string; lab?: string; "dry-run"?: boolean; region?: string; json?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        stage: { type: "string" },
        lab: { type: "string" },
        "dry-run": { type: "boolean", default: false },
        region: { type: "string" },
        json: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (cause) {
    throw new ResyncError(`${(cause as Error).message}\n${USAGE}`, 2, { cause });
  }
  const { stage, lab } = values;
  if (!stage || !lab) throw new ResyncError(`--stage and --lab are required\n${USAGE}`, 2);
  if (!knownLabs.includes(lab)) {
    throw new ResyncError(`unknown lab "${lab}"; infra/labs.ts lists: ${knownLabs.join(", ")}`, 2);
  }
  return {
    stage,
    lab,
    dryRun: values["dry-run"] ?? false,
    region: values.region,
    json: values.json ?? false,
  };
};

// The report the handler returns for { action: "resync" } (reconcile/reconcile.ts Report), parsed at the
// edge: a function of another version must not print a half-understood table.
const ReportSchema = z.object({
  lab: z.string(),
  dryRun: z.boolean(),
  trigger: z.string(),
  actions: z.array(
    z.looseObject({
      kind: z.string(),
      reason: z.string(),
      outcome: z.enum(["done", "deferred", "failed", "skipped", "planned"]),
    }),
  ),
  findings: z.array(
    z.object({
      kind: z.enum(FINDING_KINDS),
      message: z.string(),
      instanceId: z.string().optional(),
      subnetId: z.string().optional(),
    }),
  ),
  errors: z.array(z.string()),
  ignored: z.string().optional(),
});

/** Turns an SDK failure into what the operator should do about it. */
const explain = (error: unknown, options: ResyncOptions, fn: string): ResyncError => {
  const name = (error as { name?: string }).name ?? "";
  const message = (error as Error).message ?? String(error);
  const badCredentials = [
    "UnrecognizedClientException",
    "ExpiredTokenException",
    "InvalidSignatureException",
  ];
  if (
    name === "CredentialsProviderError" ||
    badCredentials.includes(name) ||
    /could not load credentials/i.test(message)
  ) {
    return new ResyncError(
      `no AWS credentials found (${message}).\nSet AWS_PROFILE (after \`aws sso login\`) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for the account of stage ${options.stage}.`,
      3,
      { cause: error },
    );
  }
  if (/region is missing/i.test(message)) {
    return new ResyncError("no AWS region: pass --region or set AWS_REGION", 3, { cause: error });
  }
  if (name === "ResourceNotFoundException") {
    return new ResyncError(
      `labgate is not deployed for lab ${options.lab} in stage ${options.stage}: there is no function ${fn}${options.region ? ` in ${options.region}` : ""}.\nDeploy it with \`npx sst deploy --stage ${options.stage}\`, or check --stage, --lab and the region.`,
      4,
      { cause: error },
    );
  }
  if (name === "TooManyRequestsException") {
    return new ResyncError(
      `another reconcile of lab ${options.lab} is running (one at a time per lab); try again in a minute`,
      5,
      { cause: error },
    );
  }
  if (name === "AccessDeniedException") {
    return new ResyncError(`these credentials may not invoke ${fn} (lambda:InvokeFunction): ${message}`, 3, {
      cause: error,
    });
  }
  return new ResyncError(`invoking ${fn} failed: ${name ? `${name}: ` : ""}${message}`, 1, { cause: error });
};

export const invokeResync = async (client: LambdaClient, options: ResyncOptions): Promise<Report> => {
  const fn = functionName(options.stage, options.lab);
  let response: InvokeCommandOutput;
  try {
    response = await client.send(
      new InvokeCommand({
        FunctionName: fn,
        InvocationType: "RequestResponse",
        Payload: new TextEncoder().encode(JSON.stringify({ action: "resync", dryRun: options.dryRun })),
      }),
    );
  } catch (error) {
    throw explain(error, options, fn);
  }
  const text = response.Payload ? new TextDecoder().decode(response.Payload) : "";
  if (response.FunctionError) {
    let detail = text;
    try {
      const e = JSON.parse(text) as { errorType?: string; errorMessage?: string };
      detail = [e.errorType, e.errorMessage].filter(Boolean).join(": ") || text;
    } catch {}
    throw new ResyncError(
      `${fn} failed (${response.FunctionError}): ${detail}\nRead its logs for details.`,
      1,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ResyncError(`${fn} returned something that is not JSON: ${text.slice(0, 200)}`, 1, { cause });
  }
  const report = ReportSchema.safeParse(json);
  if (!report.success) {
    throw new ResyncError(`${fn} returned an unexpected report: ${report.error.message}`, 1);
  }
  return report.data;
};

export const main = async (argv: readonly string[]): Promise<number> => {
  try {
    const options = parseResyncArgs(
      argv,
      labs.map((l) => l.name),
    );
    const client = new LambdaClient(options.region ? { region: options.region } : {});
    const report = await invokeResync(client, options);
    console.log(options.json ? JSON.stringify(report, null, 2) : formatReport(report));
    return report.errors.length > 0 ? 1 : 0;
  } catch (error) {
    if (error instanceof ResyncError) {
      console.error(`resync: ${error.message}`);
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
