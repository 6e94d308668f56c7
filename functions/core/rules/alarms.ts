// Per-runner tunnel health alarms: one for every live runner once its setup is in place (its health
// reporter publishes from then on), none for runners that are gone.
import { healthAlarmName } from "../names.ts";
import type { Planning } from "./planning.ts";
import { appliedSetup } from "./runner.ts";

export const manageHealthAlarms = (p: Planning): void => {
  const existing = new Set(p.world.healthAlarms.map((a) => a.name));
  for (const r of p.live) {
    const name = healthAlarmName(p.lab.name, r.instanceId);
    if (existing.has(name) || r.healthAlarm !== undefined || appliedSetup(r) === undefined) continue;
    p.add({
      kind: "put-health-alarm",
      id: `put-health-alarm:${r.instanceId}`,
      after: [],
      instanceId: r.instanceId,
      alarmName: name,
      reason: `runner ${r.instanceId} is set up and has no tunnel health alarm`,
    });
  }
  const live = new Set(p.live.map((r) => r.instanceId));
  const orphans = p.world.healthAlarms
    .filter((a) => !live.has(a.instanceId))
    .map((a) => a.name)
    .sort();
  if (orphans.length > 0) {
    p.add({
      kind: "delete-health-alarms",
      id: "delete-health-alarms",
      after: [],
      alarmNames: orphans,
      reason: `their runners are gone: ${orphans.join(", ")}`,
    });
  }
};
