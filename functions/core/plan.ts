// The pure core: from the observed world of one lab and its configuration, the actions that take the world
// to the desired state, each with a reason. No SDK, no environment, no clock: `world.now` is the time.
// Each rule lives in rules/; this is the order they are applied in, and what each hands to the next.
import type { Action, Finding, Plan } from "./actions.ts";
import type { LabConfig } from "./config.ts";
import { manageHealthAlarms } from "./rules/alarms.ts";
import { leaseCredentials } from "./rules/credentials.ts";
import { completeLaunches, retireTerminating } from "./rules/lifecycle.ts";
import type { Planning } from "./rules/planning.ts";
import { planRoutes } from "./rules/routes.ts";
import { byId, ineligibility, isLive } from "./rules/runner.ts";
import { disableSourceDestChecks, pushSetups, recordCommandOutcomes } from "./rules/setup.ts";
import type { World } from "./world.ts";

export { ineligibility } from "./rules/runner.ts";
export { SETUP_RETRY_MS } from "./rules/setup.ts";

export const plan = (world: World, lab: LabConfig): Plan => {
  const actions: Action[] = [];
  const findings: Finding[] = [];
  const live = world.runners.filter(isLive).sort(byId);
  const p: Planning = {
    world,
    lab,
    live,
    findings,
    add: (action) => {
      actions.push(action);
      return action.id;
    },
  };

  // Routes first: every other decision about a runner going away waits on its routes having moved.
  const routes = planRoutes(p);
  for (const a of routes) p.add(a);
  const sourceDestIds = disableSourceDestChecks(p);
  const leases = leaseCredentials(p);
  const recordIds = recordCommandOutcomes(p);
  const desiredSetup = pushSetups(p, leases);
  completeLaunches(p, { leases, desiredSetup, recordIds, sourceDestIds });
  retireTerminating(p, (instanceId) => routes.filter((a) => a.previous === instanceId).map((a) => a.id));
  manageHealthAlarms(p);

  const eligible = live.filter((r) => ineligibility(r) === undefined);
  if (eligible.length === 0) {
    findings.push({
      kind: "lab-unreachable",
      message: `lab ${lab.name} is unreachable: no runner can carry its traffic (${live.length} live runner(s))`,
    });
  }
  const eligibleByAz: Record<string, number> = {};
  for (const az of [...world.subnets.map((s) => s.az), ...live.map((r) => r.az)].sort()) eligibleByAz[az] = 0;
  for (const r of eligible) eligibleByAz[r.az] = (eligibleByAz[r.az] ?? 0) + 1;

  return { actions, findings, eligibleByAz, credentialsFree: leases.free };
};
