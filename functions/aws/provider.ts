// The AWS implementation of the LabProvider port: what the reconcile handler uses in Lambda.
import type { AccountContext } from "../core/names.ts";
import type { LabProvider } from "../reconcile/ports.ts";
import type { LabStore } from "../reconcile/store.ts";
import { apply } from "./apply.ts";
import { consoleLog, type Log } from "./log.ts";
import { observe } from "./observe.ts";
import { ownsInstance } from "./owns-instance.ts";
import type { SeenReports } from "./seen-reports.ts";

/**
 * A provider over the lab's store, logging through `log` (pass the handler's Powertools Logger); with the
 * account, it also names each credential's holder for IAM (functions/aws/parameter-holder.ts); observe lays
 * the tunnel reports the handler saw in events over what EC2 shows (seen-reports.ts).
 */
export const createAwsProvider = (
  store: LabStore,
  log: Log = consoleLog,
  account?: AccountContext,
  seenReports?: SeenReports,
): LabProvider => ({
  observe: (lab) => observe(lab, { store, log, ...(seenReports && { seenReports }) }),
  apply: (action, lab) => apply(action, lab, { store, log, ...(account && { account }) }),
  ownsInstance,
});
