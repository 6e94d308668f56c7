// The logger and metrics of one lab's reconciler: every log line carries the lab, every metric the lab's
// dimensions (names.ts), so that alarms and log queries can rely on them.
import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { METRIC_NAMESPACE, metricDimensions, SERVICE } from "../core/names.ts";
import type { Observability } from "./reconcile.ts";

export const labObservability = (lab: string, options: { readonly quiet?: boolean } = {}): Observability => {
  const logger = new Logger({
    serviceName: SERVICE,
    persistentKeys: { lab },
    ...(options.quiet && { logLevel: "SILENT" as const }),
  });
  const { service: _service, ...dimensions } = metricDimensions(lab);
  const metrics = new Metrics({
    namespace: METRIC_NAMESPACE,
    serviceName: SERVICE,
    defaultDimensions: dimensions,
  });
  return { logger, metrics };
};
