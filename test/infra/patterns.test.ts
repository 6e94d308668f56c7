// Each sample event in events/ reaches its own rule of its own lab and no other lab's rules; the one
// exception, EC2 state changes, is asserted as such because EventBridge cannot filter them by group.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type LabConfig, LabConfigSchema } from "../../functions/core/config.ts";
import { commandMarkerPrefix, healthAlarmName } from "../../functions/core/names.ts";
import { labs } from "../../infra/labs.ts";
import { LAB_ALARMS, labAlarmName } from "../../infra/naming.ts";
import { labEventPatterns, type PatternRuleKind } from "../../infra/patterns.ts";
import { matchesPattern } from "./event-pattern.ts";

const eventsDir = join(import.meta.dirname, "../../events");
const sample = (file: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(eventsDir, file), "utf8")) as Record<string, unknown>;

const [foo, bar] = labs;
if (foo?.name !== "foo" || bar?.name !== "bar") throw new Error("infra/labs.ts must list foo then bar");

/** Every (lab, rule) pair whose pattern matches the event, as "lab/rule". */
const matchingRules = (event: unknown, among: readonly LabConfig[] = labs): string[] =>
  among.flatMap((lab) =>
    Object.entries(labEventPatterns(lab))
      .filter(([, pattern]) => matchesPattern(pattern, event))
      .map(([kind]) => `${lab.name}/${kind}`),
  );

/** The sample rewritten as if it came from lab `to` (its group, alarm or command marker). */
const movedTo = (event: Record<string, unknown>, from: LabConfig, to: LabConfig): unknown =>
  JSON.parse(
    JSON.stringify(event)
      .replaceAll(from.runners.autoScalingGroupName, to.runners.autoScalingGroupName)
      .replaceAll(healthAlarmName(from.name, ""), healthAlarmName(to.name, ""))
      .replaceAll(JSON.stringify(commandMarkerPrefix(from.name)).slice(1, -1), commandMarkerPrefix(to.name)),
  );

const labSamples: Record<string, PatternRuleKind> = {
  "lifecycle-launch.json": "autoscaling",
  "lifecycle-terminate.json": "autoscaling",
  "asg-launch-successful.json": "autoscaling",
  "alarm-state-change.json": "health-alarm",
  "ssm-command-status.json": "command-status",
  "tag-change-tunnel.json": "tunnel-report",
};

describe("event patterns", () => {
  it("covers every sample in events/ (a new sample needs an assertion here)", () => {
    const known = [
      ...Object.keys(labSamples),
      "ec2-state-change.json",
      "ec2-state-change-foreign.json",
      "scheduled.json",
      "resync.json",
      "resync-dry-run.json",
      // The input of the lab's requeue schedule (EventBridge Scheduler invokes the function), not a rule's.
      "requeue.json",
    ];
    expect(
      readdirSync(eventsDir)
        .filter((f) => f.endsWith(".json"))
        .sort(),
    ).toEqual(known.sort());
  });

  for (const [file, kind] of Object.entries(labSamples)) {
    it(`routes ${file} to foo's ${kind} rule and to no rule of bar`, () => {
      expect(matchingRules(sample(file))).toEqual([`foo/${kind}`]);
    });

    it(`routes ${file}, moved to bar, to bar's ${kind} rule only`, () => {
      expect(matchingRules(movedTo(sample(file), foo, bar))).toEqual([`bar/${kind}`]);
    });
  }

  it("sends EC2 state changes of any instance to every lab (the handler drops foreign instances)", () => {
    expect(matchingRules(sample("ec2-state-change.json"))).toEqual([
      "foo/instance-state",
      "bar/instance-state",
    ]);
    expect(matchingRules(sample("ec2-state-change-foreign.json"))).toEqual([
      "foo/instance-state",
      "bar/instance-state",
    ]);
  });

  it("ignores EC2 states that do not change whether a runner can carry routes", () => {
    const pending = {
      ...sample("ec2-state-change.json"),
      detail: { "instance-id": "i-1", state: "pending" },
    };
    expect(matchingRules(pending)).toEqual([]);
  });

  it("leaves scheduled events, requeues and manual payloads to their own paths (no pattern rule matches them)", () => {
    for (const file of ["scheduled.json", "requeue.json", "resync.json", "resync-dry-run.json"]) {
      expect(matchingRules(sample(file)), file).toEqual([]);
    }
  });

  it("does not reconcile on the lab alarms infra creates, only on runner health alarms", () => {
    const event = sample("alarm-state-change.json");
    for (const alarm of Object.values(LAB_ALARMS)) {
      const name = labAlarmName("foo", alarm);
      const changed = { ...event, detail: { ...(event.detail as object), alarmName: name } };
      expect(matchingRules(changed), name).toEqual([]);
    }
  });

  it("waits for a command to finish before reconciling on it", () => {
    const event = sample("ssm-command-status.json");
    for (const status of ["Pending", "InProgress", "Cancelling"]) {
      const changed = { ...event, detail: { ...(event.detail as object), status } };
      expect(matchingRules(changed), status).toEqual([]);
    }
    for (const status of ["Success", "Failed", "TimedOut", "Cancelled"]) {
      const changed = { ...event, detail: { ...(event.detail as object), status } };
      expect(matchingRules(changed), status).toEqual(["foo/command-status"]);
    }
  });

  it("ignores commands that labgate did not send", () => {
    const event = sample("ssm-command-status.json");
    const detail = event.detail as { parameters: object };
    const foreign = {
      ...event,
      detail: { ...detail, parameters: { ...detail.parameters, commands: ["yum update -y"] } },
    };
    expect(matchingRules(foreign)).toEqual([]);
  });

  it("keeps a lab whose name is a prefix of another's apart from it", () => {
    const fo = LabConfigSchema.parse({
      ...foo,
      name: "fo",
      runners: { autoScalingGroupName: "fo-runners", instanceRoleName: "fo-runner-role" },
      vpn: { ...foo.vpn, credentials: ["/labgate/fo/vpn/client-1"] },
    });
    const among = [fo, ...labs];
    for (const [file, kind] of Object.entries(labSamples)) {
      expect(matchingRules(sample(file), among), file).toEqual([`foo/${kind}`]);
      expect(matchingRules(movedTo(sample(file), foo, fo), among), file).toEqual([`fo/${kind}`]);
    }
  });
});
