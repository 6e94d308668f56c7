/// <reference path="./.sst/platform/config.d.ts" />
// labgate's deployment: `sst deploy --stage <stage>` creates everything from infra/labs.ts (see infra/README.md).
// No logic here: run() imports one file per domain from infra/.
export default $config({
  app(input) {
    return {
      name: "labgate",
      home: "aws",
      // Stages named production keep their resources (and their logs) when removed by mistake.
      removal: input?.stage === "production" ? "retain" : "remove",
      protect: input?.stage === "production",
    };
  },
  async run() {
    const { reconcilers } = await import("./infra/reconciler.ts");
    const { runnerSides } = await import("./infra/runners.ts");
    const { labAlarms } = await import("./infra/alarms.ts");
    const { credentialKeys } = await import("./infra/credential-keys.ts");
    const { dashboards } = await import("./infra/dashboard.ts");
    const { store } = await import("./infra/store.ts");
    return Object.fromEntries(
      Object.entries(reconcilers).map(([lab, r]) => [
        lab,
        {
          function: r.function.name,
          deadLetterQueue: r.deadLetters.url,
          alarmTopic: labAlarms[lab]?.topic.arn,
          runnerPolicy: runnerSides[lab]?.policy.arn,
          credentialKey: credentialKeys[lab]?.alias.name,
          dashboard: dashboards[lab]?.url,
          store: store.name,
        },
      ]),
    );
  },
});
