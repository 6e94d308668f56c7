// The status table of a lab with a DNS service address and a runner that reported its tunnel down: what the
// operator sees of the two additions.
import { describe, expect, it } from "vitest";
import { formatStatus } from "../../functions/cli/status-table.ts";
import { plan } from "../../functions/core/plan.ts";
import {
  convergedWorld,
  labNamed,
  NOW,
  runnerId,
  subnetId,
  withPool,
  withRunner,
} from "../../functions/local/sample-world.ts";

describe("status table", () => {
  const shape = { azs: ["eu-central-1a"], runnersPerAz: 2, subnetsPerAz: 1 };
  const lab = { ...withPool(labNamed("bar"), 4), workerSubnets: { ids: [subnetId("eu-central-1a", 1)] } };
  const A1 = runnerId("eu-central-1a", 1);
  const world = withRunner(convergedWorld(lab, shape), A1, {
    tunnelReport: { state: "down", at: NOW - 4_000 },
  });
  const out = formatStatus({ stage: "prod", lab, world, plan: plan(world, lab), deadLetters: 0 });

  it("shows each worker subnet's route to the DNS service address beside the intranet's", () => {
    expect(out).toMatch(
      /WORKER SUBNET\s+AZ\s+ROUTE TABLE\s+10\.210\.0\.0\/16\s+10\.211\.4\.0\/24\s+100\.64\.53\.2\/32/,
    );
    expect(out).toMatch(new RegExp(`subnet-0f0000000000a0001 .*(-> ${A1}\\s+){2}-> ${A1}`));
  });

  it("shows a runner's own tunnel report beside its alarm, and why it may carry nothing", () => {
    const row = out.split("\n").find((l) => l.startsWith(A1)) ?? "";
    expect(row).toContain("healthy; reported down 2026-11-26T08:59:56.000Z");
    expect(row).toContain("no: its tunnel watch reported its tunnel down at 2026-11-26T08:59:56.000Z");
  });
});
