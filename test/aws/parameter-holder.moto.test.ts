// The holder tag of a credential parameter (functions/aws/parameter-holder.ts) against a real SSM API: moto,
// started and stopped by this suite. The exact requests are checked in test/aws/parameter-holder.test.ts;
// here, what SSM then holds.
import { ListTagsForResourceCommand, ParameterType, PutParameterCommand } from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type * as ParameterHolder from "../../functions/aws/parameter-holder.ts";
import { HOLDER_TAG, instanceArn } from "../../functions/core/names.ts";
import { MOTO_REGION, type Moto, motoUnavailableReason, startMoto, useMoto } from "../support/moto.ts";
import { type MotoClients, motoClients, resetMoto } from "../support/moto-lab.ts";

const skip = await motoUnavailableReason();
if (skip && process.env.CI === "true") throw new Error(`the moto holder suite cannot run in CI: ${skip}`);
if (skip) console.warn(`SKIPPED moto holder suite: ${skip}`);

const account = { partition: "aws", region: MOTO_REGION, account: "123456789012" };
const PARAMETER = "/labgate/foo/vpn/client-1";
const A1 = instanceArn(account, "i-0f0000000000a0001");
const B1 = instanceArn(account, "i-0f0000000000b0001");

let moto: Moto | undefined;
let restoreEnv: (() => void) | undefined;
let clients: MotoClients;
let holder: typeof ParameterHolder;

beforeAll(async () => {
  if (skip) return;
  moto = await startMoto();
  restoreEnv = useMoto(moto);
  clients = motoClients(moto);
  // The adapters' SSM client reads the endpoint from the environment when its module loads: load it now.
  holder = await import("../../functions/aws/parameter-holder.ts");
}, 60_000);

afterAll(async () => {
  clients?.destroy();
  await moto?.stop();
  restoreEnv?.();
});

beforeEach(async () => {
  if (skip || !moto) return;
  await resetMoto(moto);
  await clients.ssm.send(
    new PutParameterCommand({ Name: PARAMETER, Type: ParameterType.SECURE_STRING, Value: "static key" }),
  );
});

const holderTag = async (): Promise<string | undefined> => {
  const out = await clients.ssm.send(
    new ListTagsForResourceCommand({ ResourceType: "Parameter", ResourceId: PARAMETER }),
  );
  return out.TagList?.find((t) => t.Key === HOLDER_TAG)?.Value;
};

const describeIf = skip ? describe.skip : describe;

describeIf("the holder tag of a credential parameter, in SSM", () => {
  it("names the holder, and a new lease replaces it", async () => {
    await holder.setParameterHolder(PARAMETER, A1);
    expect(await holderTag()).toBe(A1);
    await holder.setParameterHolder(PARAMETER, B1);
    expect(await holderTag()).toBe(B1);
  });

  it("clears the tag only for the holder it names: a late release of an old lease keeps the new holder", async () => {
    await holder.setParameterHolder(PARAMETER, B1);
    expect(await holder.clearParameterHolder(PARAMETER, A1)).toBe(false);
    expect(await holderTag()).toBe(B1);
    expect(await holder.clearParameterHolder(PARAMETER, B1)).toBe(true);
    expect(await holderTag()).toBeUndefined();
    expect(await holder.clearParameterHolder(PARAMETER, B1)).toBe(false);
  });

  it("fails on a parameter that does not exist, as SSM answers", async () => {
    const missing = "/labgate/foo/vpn/client-9";
    await expect(holder.setParameterHolder(missing, A1)).rejects.toMatchObject({ name: "InvalidResourceId" });
    await expect(holder.clearParameterHolder(missing, A1)).rejects.toMatchObject({
      name: "InvalidResourceId",
    });
  });
});
