// Per-runner tunnel health alarms: one for every live runner once its setup is in place (its health
// reporter publishes from then on), none for runners that are gone. Their state is recorded in the store
// whenever it changes, so that routes can still move when the alarms cannot be read.
import { healthAlarmName } from "../names.ts";
import type { Planning } from "./planning.ts";
import { appliedSetup } from "./runner.ts";

export const manageHealthAlarms = (p: Planning): void => {
  if (!p.known("alarms")) return;
  const existing = new Map(p.world.healthAlarms.map((a) => [a.name, a]));
  for (const r of p.live) {
    const name = healthAlarmName(p.lab.name, r.instanceId);
    const alarm = existing.get(name);
    if (appliedSetup(r, p.world.now) === undefined) continue;
    if (alarm !== undefined ? !alarm.outdated : r.healthAlarm !== undefined) continue;
    p.add({
      kind: "put-health-alarm",
      id: `put-health-alarm:${r.instanceId}`,
      after: [],
      instanceId: r.instanceId,
      alarmName: name,
      reason:
        alarm === undefined
          ? `runner ${r.instanceId} is set up and has no tunnel health alarm`
          : `the tunnel health alarm of ${r.instanceId} watches another metric than the runners publish now (made by an older labgate)`,
    });
  }
  // Only with every instance known: an alarm whose runner merely was not read is not an orphan.
  if (!p.known("instances")) return;
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

/** Records each runner's alarm state in the store when it changed (one write per change, none when steady). */
export const recordHealth = (p: Planning): void => {
  if (!p.known("alarms") || !p.known("store")) return;
  for (const r of p.live) {
    if (r.healthAlarm === undefined || r.healthAlarm === r.recordedHealth) continue;
    p.add({
      kind: "record-health",
      id: `record-health:${r.instanceId}`,
      after: [],
      instanceId: r.instanceId,
      health: r.healthAlarm,
      alarmedAt: r.healthAlarm === "ALARM" ? p.world.now : undefined,
      reason: `the tunnel health alarm of ${r.instanceId} is ${r.healthAlarm} (recorded: ${r.recordedHealth ?? "nothing"})`,
    });
  }
};
