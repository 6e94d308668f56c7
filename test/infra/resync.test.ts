// The resync CLI: it invokes the lab's function by its deployed name, prints the report as a table, and
// turns the usual failures into what the operator should do.
import { InvokeCommand, type InvokeCommandOutput, LambdaClient } from "@aws-sdk/client-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  invokeResync,
  main,
  parseResyncArgs,
  type ResyncError,
  type ResyncOptions,
} from "../../functions/cli/resync.ts";

const lambda = mockClient(LambdaClient);
beforeEach(() => lambda.reset());
afterEach(() => vi.restoreAllMocks());

const options: ResyncOptions = {
  stage: "prod",
  lab: "foo",
  dryRun: true,
  region: "eu-central-1",
  json: false,
};
const payload = (value: unknown) =>
  new TextEncoder().encode(JSON.stringify(value)) as InvokeCommandOutput["Payload"];
const awsError = (name: string, message: string) => Object.assign(new Error(message), { name });

const report = {
  lab: "foo",
  dryRun: false,
  trigger: "resync",
  actions: [
    {
      id: "route:rtb-0a:10.200.0.0/16",
      after: [],
      kind: "replace-route",
      routeTableId: "rtb-0a",
      cidr: "10.200.0.0/16",
      target: { instanceId: "i-0b", eniId: "eni-0b" },
      previous: "i-0a",
      failover: true,
      reason: "runner i-0a's tunnel is down",
      outcome: "done",
    },
    {
      id: "lease:i-0c",
      after: [],
      kind: "lease-credential",
      instanceId: "i-0c",
      parameter: "/labgate/foo/vpn/client-2",
      reason: "new runner needs a credential",
      outcome: "failed",
    },
  ],
  errors: ["lease:i-0c: throttled"],
  findings: [{ kind: "credential-pool-empty", message: "all 3 credentials are leased" }],
};

describe("parseResyncArgs", () => {
  it("reads stage, lab and dry-run", () => {
    expect(parseResyncArgs(["--stage", "prod", "--lab", "foo", "--dry-run"], ["foo", "bar"])).toEqual({
      stage: "prod",
      lab: "foo",
      dryRun: true,
      region: undefined,
      json: false,
    });
  });

  it("refuses a missing stage, an unknown lab and an unknown option, with exit code 2", () => {
    for (const argv of [
      ["--lab", "foo"],
      ["--stage", "prod", "--lab", "baz"],
      ["--stage", "p", "--lab", "foo", "--dryrun"],
    ]) {
      expect(() => parseResyncArgs(argv, ["foo", "bar"])).toThrow(expect.objectContaining({ exitCode: 2 }));
    }
  });
});

describe("invokeResync", () => {
  it("invokes the lab's function of the stage synchronously with the resync payload", async () => {
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, Payload: payload(report) });
    await invokeResync(new LambdaClient({ region: "eu-central-1" }), options);
    const calls = lambda.commandCalls(InvokeCommand);
    expect(calls).toHaveLength(1);
    const input = calls[0]?.args[0].input;
    expect(input?.FunctionName).toBe("labgate-prod-foo");
    expect(input?.InvocationType).toBe("RequestResponse");
    expect(JSON.parse(new TextDecoder().decode(input?.Payload as Uint8Array))).toEqual({
      action: "resync",
      dryRun: true,
    });
  });

  it("says the lab is not deployed when the function does not exist", async () => {
    lambda.on(InvokeCommand).rejects(awsError("ResourceNotFoundException", "Function not found"));
    const error = (await invokeResync(new LambdaClient({}), options).catch((e) => e)) as ResyncError;
    expect(error.exitCode).toBe(4);
    expect(error.message).toMatch(/not deployed for lab foo in stage prod.*labgate-prod-foo/s);
    expect(error.message).toContain("npx sst deploy --stage prod");
  });

  it("says the credentials are missing when no provider has any", async () => {
    lambda
      .on(InvokeCommand)
      .rejects(awsError("CredentialsProviderError", "Could not load credentials from any providers"));
    const error = (await invokeResync(new LambdaClient({}), options).catch((e) => e)) as ResyncError;
    expect(error.exitCode).toBe(3);
    expect(error.message).toMatch(/no AWS credentials/);
  });

  it("says another reconcile is running when the function is throttled", async () => {
    lambda.on(InvokeCommand).rejects(awsError("TooManyRequestsException", "Rate exceeded"));
    const error = (await invokeResync(new LambdaClient({}), options).catch((e) => e)) as ResyncError;
    expect(error.exitCode).toBe(5);
  });

  it("reports the function's own error", async () => {
    lambda.on(InvokeCommand).resolves({
      StatusCode: 200,
      FunctionError: "Unhandled",
      Payload: payload({ errorType: "ConfigError", errorMessage: "LABGATE_CONFIG is not set" }),
    });
    const error = (await invokeResync(new LambdaClient({}), options).catch((e) => e)) as ResyncError;
    expect(error.message).toContain("ConfigError: LABGATE_CONFIG is not set");
  });

  it("refuses a report without actions", async () => {
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, Payload: payload({ lab: "foo", dryRun: true }) });
    await expect(invokeResync(new LambdaClient({}), options)).rejects.toThrow(/unexpected report/);
  });
});

describe("main", () => {
  const printed = () => {
    const out = vi.spyOn(console, "log").mockImplementation(() => {});
    const err = vi.spyOn(console, "error").mockImplementation(() => {});
    return () => ({ out: out.mock.calls.flat().join("\n"), err: err.mock.calls.flat().join("\n") });
  };

  it("prints the report as a table of action, target, outcome and reason, and fails when an action failed", async () => {
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, Payload: payload(report) });
    const output = printed();
    const code = await main(["--stage", "prod", "--lab", "foo", "--region", "eu-central-1"]);
    const { out } = output();
    expect(out).toMatch(/ACTION\s+TARGET\s+OUTCOME\s+REASON/);
    expect(out).toMatch(
      /replace-route\s+rtb-0a 10\.200\.0\.0\/16 -> i-0b\s+done\s+runner i-0a's tunnel is down/,
    );
    expect(out).toMatch(/lease-credential\s+i-0c\s+failed\s+new runner needs a credential/);
    expect(out).toContain("credential-pool-empty: all 3 credentials are leased");
    expect(out).toContain("lease:i-0c: throttled");
    expect(code).toBe(1);
  });

  it("succeeds on a dry run without errors", async () => {
    const planned = {
      ...report,
      dryRun: true,
      errors: [],
      actions: report.actions.map((a) => ({ ...a, outcome: "planned" })),
    };
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, Payload: payload(planned) });
    const output = printed();
    expect(await main(["--stage", "prod", "--lab", "foo", "--dry-run", "--region", "eu-central-1"])).toBe(0);
    expect(output().out).toMatch(/dry run: nothing was changed[\s\S]*planned/);
  });

  it("prints a clear error and a distinct exit code when the function is not deployed", async () => {
    lambda.on(InvokeCommand).rejects(awsError("ResourceNotFoundException", "Function not found"));
    const output = printed();
    expect(await main(["--stage", "dev", "--lab", "bar", "--region", "eu-central-1"])).toBe(4);
    expect(output().err).toContain("resync: labgate is not deployed for lab bar in stage dev");
  });
});
