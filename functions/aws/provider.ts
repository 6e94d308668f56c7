// The AWS implementation of the LabProvider port: what the reconcile handler uses in Lambda.
import type { LabProvider } from "../reconcile/ports.ts";
import { apply } from "./apply.ts";
import { consoleLog, type Log } from "./log.ts";
import { observe } from "./observe.ts";
import { ownsInstance } from "./owns-instance.ts";

/** A provider that logs through `log` (pass the handler's Powertools Logger). */
export const createAwsProvider = (log: Log = consoleLog): LabProvider => ({
  observe: (lab) => observe(lab, Date.now(), log),
  apply: (action, lab) => apply(action, lab, log),
  ownsInstance,
});

export const awsProvider: LabProvider = createAwsProvider();
