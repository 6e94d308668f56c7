// Each lab's CloudWatch dashboard (its body is data: infra/dashboard-body.ts), in the stage's region.
import type { LabConfig } from "../functions/core/config.ts";
import { componentName } from "./account.ts";
import { dashboardBody } from "./dashboard-body.ts";
import { labs } from "./labs.ts";
import { dashboardName, deadLetterQueueName } from "./naming.ts";

const createDashboard = (lab: LabConfig) => {
  const stage = $app.stage;
  const region = aws.getRegionOutput().region;
  const dashboard = new aws.cloudwatch.Dashboard(componentName(lab.name, "Dashboard"), {
    dashboardName: dashboardName(stage, lab.name),
    dashboardBody: region.apply((r) =>
      JSON.stringify(
        dashboardBody({
          lab: lab.name,
          region: r,
          deadLetterQueueName: deadLetterQueueName(stage, lab.name),
        }),
      ),
    ),
  });
  const url = $interpolate`https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#dashboards/dashboard/${dashboard.dashboardName}`;
  return { dashboard, url };
};

export const dashboards = Object.fromEntries(labs.map((lab) => [lab.name, createDashboard(lab)]));
