// Whether an event concerns this lab. Events that can be filtered by EventBridge are filtered there too;
// this is the second, cheap check, and the only one for EC2 state changes (which name an instance only).
import type { LabConfig } from "../core/config.ts";
import { alarmPrefix, commandMarkerPrefix } from "../core/names.ts";
import type { Trigger } from "../events/triggers.ts";
import type { LabProvider } from "./ports.ts";

/** true, or why the event is not this lab's. */
export const concerns = async (
  trigger: Trigger,
  lab: LabConfig,
  knownRunners: ReadonlySet<string>,
  provider: Pick<LabProvider, "ownsInstance">,
): Promise<true | string> => {
  const group = lab.runners.autoScalingGroupName;
  switch (trigger.kind) {
    case "lifecycle":
    case "group-activity":
      return trigger.group === group || `group ${trigger.group} is not ${group}`;
    case "tunnel-report":
      // The event carries the instance's tags, its group's among them.
      return (
        trigger.group === group ||
        `instance ${trigger.instanceId} is in group ${trigger.group ?? "(none)"}, not ${group}`
      );
    case "alarm":
      return (
        trigger.alarmName.startsWith(alarmPrefix(lab.name)) ||
        `alarm ${trigger.alarmName} is not lab ${lab.name}'s`
      );
    case "command-status":
      return (
        trigger.firstLine?.startsWith(commandMarkerPrefix(lab.name)) ||
        `command ${trigger.commandId} was not sent by labgate for lab ${lab.name}`
      );
    case "instance-state":
      return knownRunners.has(trigger.instanceId) || (await provider.ownsInstance(trigger.instanceId, lab))
        ? true
        : `instance ${trigger.instanceId} is not in group ${group}`;
    case "schedule":
    case "requeue":
    case "resync":
      return true;
  }
};

export const describeTrigger = (t: Trigger): string => {
  switch (t.kind) {
    case "lifecycle":
      return `lifecycle ${t.transition} ${t.instanceId}`;
    case "group-activity":
      return `group activity ${t.instanceId ?? ""}`.trim();
    case "instance-state":
      return `instance ${t.instanceId} ${t.state}`;
    case "alarm":
      return `alarm ${t.alarmName} ${t.state}`;
    case "tunnel-report":
      return `tunnel report ${t.instanceId} ${t.report?.state ?? "removed"}`;
    case "command-status":
      return `command ${t.commandId} ${t.status}`;
    case "schedule":
      return "schedule";
    case "requeue":
      return `requeue (${t.reason})`;
    case "resync":
      return t.dryRun ? "resync (dry run)" : "resync";
  }
};
