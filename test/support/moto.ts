// An AWS emulator for the adapters' integration tests: moto's server (in the machine image's Python), started
// on a free loopback port by the suite that needs it and stopped by pid when the suite ends.
// `python3 -m moto.server` serves every service on one endpoint; the SDK clients reach it through the
// standard AWS_ENDPOINT_URL variable.
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { CreateTableCommand, DeleteTableCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { STORE_TABLE_KEYS } from "../../functions/aws/store.ts";

/** Why moto cannot run here, or undefined when it can. */
export const motoUnavailableReason = async (): Promise<string | undefined> => {
  const probe = spawn("python3", ["-c", "import moto.server"], { stdio: "ignore" });
  const code = await new Promise<number | null>((resolve) =>
    probe.on("close", resolve).on("error", () => resolve(-1)),
  );
  return code === 0 ? undefined : "python3 cannot import moto.server (the machine image's Python has it)";
};

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });

export interface Moto {
  readonly endpoint: string;
  stop(): Promise<void>;
}

/** Starts moto on a free loopback port and waits (at most 30 s) until it answers. */
export const startMoto = async (): Promise<Moto> => {
  const port = await freePort();
  // --pdeathsig: a test runner killed outright (a timeout, ^C) takes its server with it.
  const child: ChildProcess = spawn(
    "setpriv",
    ["--pdeathsig", "KILL", "python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)],
    { stdio: "ignore" },
  );
  const endpoint = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.pid === undefined) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    if (child.exitCode === null) child.kill("SIGKILL");
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`${endpoint}/moto-api/`)).ok) return { endpoint, stop };
    } catch {
      // Not listening yet.
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`moto did not start on ${endpoint} (exit ${child.exitCode})`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
};

/** The region of every moto suite (its AZs are REGION + "a", "b"...). */
export const MOTO_REGION = "eu-central-1";

/**
 * Points every AWS SDK client created from now on at moto, with throwaway credentials. Returns what puts
 * the environment back: a worker process may run other test files after this one.
 */
export const useMoto = (moto: Moto): (() => void) => {
  const settings: Record<string, string> = {
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_REGION: MOTO_REGION,
    AWS_ACCESS_KEY_ID: "testing",
    AWS_SECRET_ACCESS_KEY: "testing",
    AWS_MAX_ATTEMPTS: "1",
  };
  const before = Object.fromEntries(Object.keys(settings).map((k) => [k, process.env[k]]));
  Object.assign(process.env, settings);
  return () => {
    for (const [key, value] of Object.entries(before)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
};

/** A fresh store table (the keys infra creates it with). */
export const createStoreTable = async (client: DynamoDBClient, name: string): Promise<void> => {
  await client.send(new DeleteTableCommand({ TableName: name })).catch(() => undefined);
  await client.send(
    new CreateTableCommand({
      TableName: name,
      BillingMode: "PAY_PER_REQUEST",
      KeySchema: STORE_TABLE_KEYS.map((k) => ({ AttributeName: k.name, KeyType: k.type })),
      AttributeDefinitions: STORE_TABLE_KEYS.map((k) => ({ AttributeName: k.name, AttributeType: "S" })),
    }),
  );
};
