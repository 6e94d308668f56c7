// The pure core: from the observed world of one lab and its configuration, the actions that take the world
// to the desired state, each with a reason. No SDK, no environment, no clock: `world.now` is the time.
// It never throws on what it observed: whatever it cannot handle about one runner, subnet or read is a
// finding about that runner, subnet or read, and everything else is planned as usual.
// Each rule lives in rules/; this is the order they are applied in, and what each hands to the next.
import type { Action, Finding, Plan } from "./actions.ts";
import { intranetVpcOverlaps, type LabConfig } from "./config.ts";
import { adoptTaggedState } from "./rules/adoption.ts";
import { manageHealthAlarms, recordHealth } from "./rules/alarms.ts";
import { leaseCredentials } from "./rules/credentials.ts";
import { completeLaunches, forgetTerminated, retireTerminating, surrenderKeys } from "./rules/lifecycle.ts";
import { repairMirrors } from "./rules/mirror.ts";
import type { Planning } from "./rules/planning.ts";
import { planRollout } from "./rules/rollout.ts";
import { deleteRemovedRoutes, planRoutes } from "./rules/routes.ts";
import { byId, ineligibility, isLive } from "./rules/runner.ts";
import { desiredSetups, disableSourceDestChecks, pushSetups, recordCommandOutcomes } from "./rules/setup.ts";
import type { Read, World } from "./world.ts";

export { SETUP_RETRY_MS } from "./rules/setup.ts";

/** Actions that write a runner's record in the store (the adapters mirror it in the runner's tags). */
const STORE_WRITES: ReadonlySet<Action["kind"]> = new Set([
  "lease-credential",
  "release-credential",
  "push-setup",
  "stop-vpn",
  "record-command",
  "record-health",
  "adopt-runner",
]);

export const plan = (observed: World, lab: LabConfig): Plan => {
  const actions: Action[] = [];
  const findings: Finding[] = [];
  const followUp: string[] = [];
  const unknown = new Set<Read>(observed.unknown.map((u) => u.read));
  const adoptIds = new Map<string, string>();
  const planning = (world: World, draining: ReadonlyMap<string, string> = new Map()): Planning => ({
    world,
    lab,
    live: world.runners.filter(isLive).sort(byId),
    draining,
    findings,
    followUp,
    known: (read) => !unknown.has(read),
    add: (action) => {
      // Once a runner's tagged state is adopted, everything that writes its record waits for the adoption.
      const adopt = "instanceId" in action ? adoptIds.get(action.instanceId) : undefined;
      const withAdoption =
        adopt !== undefined && action.kind !== "adopt-runner"
          ? { ...action, after: [adopt, ...action.after] }
          : action;
      actions.push(withAdoption);
      if (action.kind === "adopt-runner") adoptIds.set(action.instanceId, action.id);
      return action.id;
    },
  });

  for (const u of observed.unknown) {
    findings.push({
      kind: "observe-degraded",
      message: `could not read ${u.read}: ${u.error}; ${DEGRADED[u.read]}`,
    });
  }
  const world = adoptTaggedState(planning(observed));
  const before = planning(world);
  checkSubnets(before);
  checkRunners(before);
  const leases = leaseCredentials(before);
  // Which runners a setup rollout drains in this plan: they carry nothing while their tunnel restarts.
  const desired = desiredSetups(before, leases);
  const rollout = planRollout(before, desired);
  const p = planning(world, rollout.draining);

  // Routes next: every other decision about a runner going away waits on its routes having moved.
  const routes = planRoutes(p);
  for (const a of routes) p.add(a);
  const movedOff = (instanceId: string) => routes.filter((a) => a.previous === instanceId).map((a) => a.id);
  deleteRemovedRoutes(p);
  const sourceDestIds = disableSourceDestChecks(p);
  const recordIds = recordCommandOutcomes(p);
  pushSetups(p, { leases, recordIds, desired, rollout, movedOff });
  completeLaunches(p, { leases, desired, recordIds, sourceDestIds });
  retireTerminating(p, movedOff, recordIds);
  surrenderKeys(p, movedOff, recordIds);
  forgetTerminated(p);
  manageHealthAlarms(p);
  recordHealth(p);
  repairMirrors(
    p,
    new Set(actions.flatMap((a) => (STORE_WRITES.has(a.kind) && "instanceId" in a ? [a.instanceId] : []))),
  );

  const eligible = p.live.filter((r) => ineligibility(p, r) === undefined);
  if (eligible.length === 0) {
    findings.push({
      kind: "lab-unreachable",
      message: `lab ${lab.name} is unreachable: no runner can carry its traffic (${p.live.length} live runner(s))`,
    });
  }
  const eligibleByAz: Record<string, number> = {};
  for (const az of [...world.subnets.map((s) => s.az), ...p.live.map((r) => r.az)].sort())
    eligibleByAz[az] = 0;
  for (const r of eligible) eligibleByAz[r.az] = (eligibleByAz[r.az] ?? 0) + 1;

  return { actions, findings, eligibleByAz, credentialsFree: leases.free, followUp };
};

/** Why each live runner may not carry traffic (undefined: it may), as plan() judges it for this world. */
export const eligibility = (world: World, lab: LabConfig): ReadonlyMap<string, string | undefined> => {
  const unknown = new Set(world.unknown.map((u) => u.read));
  const p: Planning = {
    world,
    lab,
    live: world.runners.filter(isLive).sort(byId),
    draining: new Map(),
    findings: [],
    followUp: [],
    known: (read) => !unknown.has(read),
    add: (action) => action.id,
  };
  return new Map(p.live.map((r) => [r.instanceId, ineligibility(p, r)]));
};

/** What labgate does without each read (README "When a read fails"). */
const DEGRADED: Readonly<Record<Read, string>> = {
  instances: "nothing is known of the runners: no action",
  group:
    "lifecycle states unknown: no hook is completed and no runner leased or set up; routes still move off stopped, terminated and alarming runners",
  subnets:
    "routes still move off runners that cannot carry them (each table within the AZ of the runner it pointed at); no setup is pushed",
  "route-tables": "no route moves, and no terminating runner stops its VPN (the hook waits)",
  alarms:
    "tunnel health taken from the store's record of the alarms; a runner never recorded takes no new route",
  store:
    "no key is leased or released and no command sent; routes move only onto runners that carry routes now",
  vpc: "the intranet CIDRs are not checked against the VPC's CIDR blocks this time",
};

/** Configured worker subnets that do not exist, or none at all. */
const checkSubnets = (p: Planning): void => {
  if (!p.known("subnets")) return;
  const config = p.lab.workerSubnets;
  if ("ids" in config) {
    const found = new Set(p.world.subnets.map((s) => s.subnetId));
    for (const id of config.ids.filter((x) => !found.has(x))) {
      p.findings.push({
        kind: "subnet-missing",
        subnetId: id,
        message: `worker subnet ${id} of the configuration does not exist (deleted?); the other worker subnets are routed as usual`,
      });
    }
  }
  if (p.world.subnets.length === 0) {
    p.findings.push({
      kind: "no-worker-subnets",
      message: `no worker subnet found for lab ${p.lab.name} (${"ids" in config ? `ids ${config.ids.join(", ")}` : `tag ${config.tag.key}=${config.tag.value}`}); runners are set up without worker rules until one exists`,
    });
  }
  for (const message of intranetVpcOverlaps(p.lab, p.world.vpcCidrs ?? [])) {
    p.findings.push({
      kind: "intranet-overlaps-vpc",
      message: `${message}; workers cannot tell the two apart: fix intranetCidrs (or the VPC's CIDR blocks)`,
    });
  }
};

/** What a runner's own settings say that labgate does not change itself. */
const checkRunners = (p: Planning): void => {
  for (const r of p.live.filter((x) => x.imdsLocked === false)) {
    p.findings.push({
      kind: "metadata-open",
      instanceId: r.instanceId,
      message: `${r.instanceId} answers instance metadata without IMDSv2 tokens or with a hop limit above 1: a container or a forwarded packet could reach its role's credentials; set HttpTokens=required and HttpPutResponseHopLimit=1 in the group's launch template`,
    });
  }
};
