// What the deployment promises, checked on the data infra deploys: the labs file, resource names, the
// lifecycle hooks' safe defaults and the lab alarms.
import { describe, expect, it } from "vitest";
import { LabConfigSchema } from "../../functions/core/config.ts";
import {
  alarmPrefix,
  LAUNCH_HOOK,
  METRIC_NAMESPACE,
  METRICS,
  TERMINATE_HOOK,
} from "../../functions/core/names.ts";
import { labAlarmSpecs } from "../../infra/alarm-specs.ts";
import { LIFECYCLE_HOOKS } from "../../infra/hooks.ts";
import { parseLabs } from "../../infra/lab-set.ts";
import { labInputs, labs } from "../../infra/labs.ts";
import {
  functionName,
  healthAlarmPrefix,
  LAB_ALARMS,
  labAlarmName,
  requeueRoleName,
  requeueScheduleName,
  ruleName,
} from "../../infra/naming.ts";
import { SCHEDULE_EXPRESSION } from "../../infra/patterns.ts";

const [foo, bar] = labInputs;
if (foo?.name !== "foo" || bar?.name !== "bar") throw new Error("infra/labs.ts must list foo then bar");

describe("labs file", () => {
  it("holds the sample labs foo and bar, valid for the function's own schema", () => {
    expect(labs.map((l) => l.name)).toEqual(["foo", "bar"]);
    for (const lab of labs) expect(LabConfigSchema.parse(JSON.parse(JSON.stringify(lab)))).toEqual(lab);
  });

  it("names the lab and the field of every mistake", () => {
    const broken = { ...bar, intranetCidrs: ["10.210.0.1/16"], dnsServers: [] };
    expect(() => parseLabs([foo, broken])).toThrow(/lab bar: intranetCidrs\.0: .*\n.*lab bar: dnsServers/s);
  });

  it("refuses labs that would interfere: same name, group, runner role, or a shared credential", () => {
    expect(() => parseLabs([foo, { ...bar, name: "foo" }])).toThrow(
      /lab name foo belongs to more than one lab/,
    );
    const runners = (patch: Partial<(typeof bar)["runners"]>) => ({
      ...bar,
      runners: { ...bar.runners, ...patch },
    });
    expect(() => parseLabs([foo, runners({ autoScalingGroupName: "foo-runners" })])).toThrow(
      /Auto Scaling group foo-runners belongs to more than one lab/,
    );
    expect(() => parseLabs([foo, runners({ instanceRoleName: "foo-runner-role" })])).toThrow(
      /runners' instance role foo-runner-role belongs to more than one lab/,
    );
    const stolen = { ...bar, vpn: { ...bar.vpn, credentials: ["/labgate/foo/vpn/client-1"] } };
    expect(() => parseLabs([foo, stolen])).toThrow(/credential parameter \/labgate\/foo\/vpn\/client-1/);
  });

  it("refuses an empty labs file", () => {
    expect(() => parseLabs([])).toThrow(/no lab/);
  });
});

describe("names", () => {
  it("gives each lab's function and rules a fixed name that includes the stage", () => {
    expect(functionName("prod", "foo")).toBe("labgate-prod-foo");
    expect(ruleName("prod", "foo", "command-status")).toBe("labgate-prod-foo-command-status");
  });

  it("gives each lab one requeue schedule name (so at most one is pending) and the role it runs with", () => {
    expect(requeueScheduleName("prod", "foo")).toBe("labgate-prod-foo-requeue");
    expect(requeueRoleName("prod", "foo")).toBe("labgate-prod-foo-requeue-invoke");
    expect(requeueScheduleName("prod", "bar")).not.toBe(requeueScheduleName("prod", "foo"));
  });

  it("refuses a stage that would make a name AWS rejects", () => {
    expect(() => functionName("a".repeat(60), "foo")).toThrow(/shorter stage/);
    expect(() => ruleName("my stage", "foo", "schedule")).toThrow(/not valid/);
    expect(() => requeueScheduleName("a".repeat(50), "foo")).toThrow(/Scheduler schedule name .* not valid/);
    expect(() => requeueRoleName("a".repeat(45), "foo")).toThrow(/IAM role name .* not valid/);
  });

  it("keeps lab alarms under the lab's prefix and out of the runner health alarms' prefix", () => {
    for (const alarm of Object.values(LAB_ALARMS)) {
      const name = labAlarmName("foo", alarm);
      expect(name.startsWith(alarmPrefix("foo"))).toBe(true);
      expect(name.startsWith(healthAlarmPrefix("foo"))).toBe(false);
    }
  });
});

describe("lifecycle hooks", () => {
  const byName = Object.fromEntries(LIFECYCLE_HOOKS.map((h) => [h.name, h]));

  it("abandons a launch and lets a termination go ahead when labgate does not answer", () => {
    expect(byName[LAUNCH_HOOK]).toMatchObject({
      transition: "autoscaling:EC2_INSTANCE_LAUNCHING",
      defaultResult: "ABANDON",
    });
    expect(byName[TERMINATE_HOOK]).toMatchObject({
      transition: "autoscaling:EC2_INSTANCE_TERMINATING",
      defaultResult: "CONTINUE",
    });
  });

  it("waits longer than a setup command may run, and long enough for the schedule to retry", () => {
    const schedule = /^rate\((\d+) minutes\)$/.exec(SCHEDULE_EXPRESSION);
    const scheduleSeconds = Number(schedule?.[1]) * 60;
    expect(scheduleSeconds).toBeGreaterThan(0);
    const setupTimeoutSeconds = 15 * 60; // the SSM executionTimeout of the setup command (events/ssm-command-status.json)
    expect(byName[LAUNCH_HOOK]?.heartbeatTimeout).toBeGreaterThan(setupTimeoutSeconds + scheduleSeconds);
    for (const hook of LIFECYCLE_HOOKS) {
      expect(hook.heartbeatTimeout).toBeGreaterThanOrEqual(2 * scheduleSeconds);
      expect(hook.heartbeatTimeout).toBeLessThanOrEqual(7200); // the AWS maximum
    }
  });
});

describe("lab alarms", () => {
  const specs = labAlarmSpecs({ lab: "foo", functionName: "labgate-prod-foo", deadLetterQueueName: "dlq" });
  const kind = (k: string) => specs.find((s) => s.kind === k);

  it("creates one alarm of each kind, named under the lab's prefix", () => {
    expect(specs.map((s) => s.kind).sort()).toEqual(Object.values(LAB_ALARMS).sort());
    for (const s of specs) expect(s.name).toBe(labAlarmName("foo", s.kind));
  });

  it("alarms on the reconciler's own metrics for the lab, with all of their dimensions", () => {
    for (const [k, metric] of [
      ["unreachable", METRICS.labUnreachable],
      ["failover", METRICS.failovers],
      ["actions-failed", METRICS.actionsFailed],
      ["rollout-halted", METRICS.rolloutHalted],
    ] as const) {
      expect(kind(k)).toMatchObject({
        namespace: METRIC_NAMESPACE,
        metricName: metric,
        dimensions: { Lab: "foo" },
      });
    }
  });

  it("alarms on the function's errors, its silence, and a non-empty dead-letter queue", () => {
    expect(kind("errors")).toMatchObject({ namespace: "AWS/Lambda", metricName: "Errors" });
    expect(kind("errors")?.dimensions).toEqual({ FunctionName: "labgate-prod-foo" });
    expect(kind("not-running")).toMatchObject({ metricName: "Invocations", treatMissingData: "breaching" });
    expect(kind("dead-letters")).toMatchObject({
      namespace: "AWS/SQS",
      metricName: "ApproximateNumberOfMessagesVisible",
      dimensions: { QueueName: "dlq" },
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: 1,
    });
  });

  it("tells about a failover once, and about an unreachable lab until it recovers", () => {
    expect(kind("failover")?.notifyOk).toBe(false);
    expect(kind("unreachable")?.notifyOk).toBe(true);
  });
});
