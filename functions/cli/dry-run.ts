// `npm run dry-run`: labgate's reconcile of a sample world, without AWS. The sample is lab foo of
// infra/labs.ts with three AZs, two runners and three worker subnets each, where one runner has just
// stopped, another's tunnel health alarm fired and a new runner is launching. The report is what the
// deployed function would return for `{ "action": "resync", "dryRun": true }` on such a lab.
import type { World } from "../core/world.ts";
import { launchingRunner, memoryProvider } from "../local/model.ts";
import { convergedWorld, labNamed, runnerId, withPool, withRunner } from "../local/sample-world.ts";
import { labObservability } from "../reconcile/observability.ts";
import { reconcile } from "../reconcile/reconcile.ts";
import { formatReport } from "./report-table.ts";

const lab = withPool(labNamed("foo"), 8);
const converged = convergedWorld(lab, {
  azs: ["eu-central-1a", "eu-central-1b", "eu-central-1c"],
  runnersPerAz: 2,
  subnetsPerAz: 3,
});
const launching = runnerId("eu-central-1b", 3);
const world: World = withRunner(
  withRunner(
    {
      ...converged,
      runners: [...converged.runners, launchingRunner(launching, "eu-central-1b", "10.0.103.11")],
    },
    runnerId("eu-central-1a", 1),
    { state: "stopped" },
  ),
  runnerId("eu-central-1c", 2),
  { healthAlarm: "ALARM" },
);

// The report is the output here: no log lines, and metrics (EMF on stdout in Lambda) stay unpublished.
process.env.POWERTOOLS_METRICS_DISABLED = "true";
const { logger, metrics } = labObservability(lab.name, { quiet: true });
const {
  runnerIds: _ids,
  again: _again,
  ...report
} = await reconcile(lab, memoryProvider(world), {
  dryRun: true,
  trigger: "resync (dry run) of a sample world",
  logger,
  metrics,
});
console.log(formatReport(report));
