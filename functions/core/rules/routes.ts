// Routes: each worker subnet's route for each CIDR the lab routes (its intranet and its DNS service address)
// targets an eligible runner, in the subnet's AZ when one exists there; a route already on a runner of its
// pool stays (no flapping). All of a table's routes go to one runner. Hysteresis: a route that went across
// AZs comes back only to a runner whose tunnel has been healthy for `failbackHoldSeconds`, and a runner whose
// alarm cleared less than that ago takes a new route only when no other runner can.
import type { RouteAction, RouteTarget } from "../actions.ts";
import { LAB_TAG } from "../names.ts";
import { routedCidrs } from "../routed.ts";
import type { Route, Runner } from "../world.ts";
import type { Planning } from "./planning.ts";
import { byId, health, healthUnknown, ineligibility, targets } from "./runner.ts";

interface TableToRoute {
  readonly az: string;
  readonly subnets: readonly string[];
}

/** What a route points at, in words: its runner, or the kind and id of whatever else it targets. */
const describeTarget = (route: Route): string =>
  route.eniId ?? route.instanceId ?? route.other ?? "nothing (no target)";

/**
 * The route tables to route, with the AZ each serves. From the worker subnets when they were read; when
 * they were not, from the AZ of the runner the table's first intranet CIDR points at (routes are in-AZ but
 * for fallbacks), so that routes still move off a runner that died.
 */
const tablesToRoute = (p: Planning): Map<string, TableToRoute> => {
  const { world, lab, findings } = p;
  const tables = new Map<string, { az: string; subnets: string[] }>();
  if (!p.known("subnets")) {
    for (const [id, table] of Object.entries(world.routeTables)) {
      // The AZ of the runner the table's first routed CIDR (in configuration order) points at.
      const az = routedCidrs(lab)
        .map((cidr) => table.routes[cidr])
        .map((route) =>
          world.runners.find(
            (r) =>
              targets(route, r) || (route?.instanceId !== undefined && route.instanceId === r.instanceId),
          ),
        )
        .find((r) => r !== undefined)?.az;
      if (az !== undefined) tables.set(id, { az, subnets: [`(subnets of ${id})`] });
    }
    return tables;
  }
  for (const s of [...world.subnets].sort((a, b) => a.subnetId.localeCompare(b.subnetId))) {
    if (s.routeTableId === undefined || world.routeTables[s.routeTableId] === undefined) {
      findings.push({
        kind: "route-table-missing",
        subnetId: s.subnetId,
        message:
          s.routeTableId === undefined
            ? `worker subnet ${s.subnetId} has no associated route table tagged ${LAB_TAG}=${lab.name}; associate one and tag it`
            : `route table ${s.routeTableId} of worker subnet ${s.subnetId} was not observed (is it tagged ${LAB_TAG}=${lab.name}?)`,
      });
      continue;
    }
    const entry = tables.get(s.routeTableId);
    if (entry === undefined) {
      tables.set(s.routeTableId, { az: s.az, subnets: [s.subnetId] });
    } else if (entry.az !== s.az) {
      // One table cannot be routed in two AZs at once: the subnet of the other AZ would go cross-AZ forever.
      findings.push({
        kind: "route-table-shared",
        subnetId: s.subnetId,
        message: `route table ${s.routeTableId} serves worker subnets of ${entry.az} (${entry.subnets.join(", ")}) and ${s.az} (${s.subnetId}); give each AZ's worker subnets their own table. It is routed for ${entry.az}`,
      });
    } else {
      entry.subnets.push(s.subnetId);
    }
  }
  return tables;
};

/** Each worker subnet's route for each routed CIDR targets an eligible runner, in its AZ when one exists. */
export const planRoutes = (p: Planning): RouteAction[] => {
  const { world, lab, live, findings } = p;
  const cidrs = routedCidrs(lab);
  // Without the route tables nothing is known of where traffic goes: nothing moves.
  if (!p.known("route-tables")) return [];
  const fit = live.filter((r) => ineligibility(p, r) === undefined);
  // New routes go only to runners whose health is known; a route stays on a fit runner whose health is not.
  const eligible = fit.filter((r) => !healthUnknown(p, r));
  const tables = tablesToRoute(p);

  const runnerOf = (route: Route | undefined): Runner | undefined => live.find((r) => targets(route, r));
  const hold = lab.failbackHoldSeconds * 1000;
  /**
   * Its tunnel has been healthy for the hold time (as CloudWatch dates the alarm's OK). An OK without a date
   * (never so from CloudWatch, which dates every state) counts as old: a route is never held back forever.
   */
  const stable = (r: Runner): boolean =>
    health(p, r) === "OK" && (r.healthSince === undefined || world.now - r.healthSince >= hold);
  /** Its alarm fired and it has not been healthy for the hold time since. */
  const recovering = (r: Runner): boolean => r.alarmedAt !== undefined && !stable(r);
  /** Where a route of a table in `az` may go when it must move, best first: at home, then away. */
  const poolFor = (az: string): readonly Runner[] => {
    const home = eligible.filter((r) => r.az === az);
    const away = lab.crossAzFallback ? eligible.filter((r) => r.az !== az) : [];
    const tiers = [
      home.filter(stable),
      home.filter((r) => !recovering(r)),
      away.filter((r) => !recovering(r)),
      home,
      away,
    ];
    return tiers.find((tier) => tier.length > 0) ?? [];
  };
  const keeps = (az: string, r: Runner): boolean => {
    if (fit.includes(r) && healthUnknown(p, r)) return r.az === az || lab.crossAzFallback;
    if (!eligible.includes(r)) return false;
    if (r.az === az) return true;
    // Across AZs: it stays until a runner of the route's own AZ has been healthy for the hold time.
    return lab.crossAzFallback && !eligible.some((x) => x.az === az && stable(x));
  };

  // Routes already on a runner of their pool stay there (no flapping); they count towards that runner's load.
  const load = new Map<string, number>();
  const ordered = [...tables.entries()].sort(([a], [b]) => a.localeCompare(b));
  for (const [id, { az }] of ordered) {
    const carriers = new Set(
      cidrs
        .map((cidr) => runnerOf(world.routeTables[id]?.routes[cidr]))
        .filter((r): r is Runner => r !== undefined && keeps(az, r)),
    );
    for (const r of carriers) load.set(r.instanceId, (load.get(r.instanceId) ?? 0) + 1);
  }

  const actions: RouteAction[] = [];
  for (const [id, { az, subnets }] of ordered) {
    const table = world.routeTables[id];
    if (table === undefined) continue;
    const pool = poolFor(az);
    const isKept = (route: Route | undefined): boolean => {
      const current = runnerOf(route);
      return current !== undefined && keeps(az, current);
    };
    const kept = cidrs.map((cidr) => runnerOf(table.routes[cidr])).find((r) => r && keeps(az, r));
    const chosen =
      kept ??
      [...pool].sort(
        (a, b) => (load.get(a.instanceId) ?? 0) - (load.get(b.instanceId) ?? 0) || byId(a, b),
      )[0];
    if (chosen === undefined || chosen.eniId === undefined) {
      if (cidrs.some((cidr) => !isKept(table.routes[cidr]))) {
        findings.push({
          kind: "subnet-unreachable",
          subnetId: subnets[0],
          message: `no runner can carry worker subnet(s) ${subnets.join(", ")} in ${az}${lab.crossAzFallback ? "" : " (cross-AZ fallback is off)"}; routes left as they are`,
        });
      }
      continue;
    }
    if (kept === undefined) load.set(chosen.instanceId, (load.get(chosen.instanceId) ?? 0) + 1);
    // A route held away while a runner of its own AZ sits out the hold: reconcile again soon, so that the
    // failback follows the hold (a requeue's 30 + 60 + 120 s cover the default 180 s) and not the schedule.
    if (chosen.az !== az && eligible.some((x) => x.az === az && health(p, x) === "OK" && !stable(x))) {
      p.followUp.push(
        `the routes of ${id} come back to ${az} once a runner there has been healthy for ${lab.failbackHoldSeconds} s`,
      );
    }
    const target: RouteTarget = { instanceId: chosen.instanceId, eniId: chosen.eniId };

    for (const cidr of cidrs) {
      const route = table.routes[cidr];
      if (isKept(route)) continue;
      const current = runnerOf(route);
      const where = `${cidr} in ${id} (${subnets.join(", ")}, ${az})`;
      const to = `${chosen.instanceId} in ${chosen.az}`;
      const unfit = current === undefined ? undefined : ineligibility(p, current);
      const why =
        route === undefined
          ? `${where} has no route`
          : route.blackhole
            ? `${where} is a blackhole (its target ${describeTarget(route)} is gone)`
            : current === undefined
              ? `${where} points at ${describeTarget(route)}, which is not a runner of lab ${lab.name}`
              : unfit === undefined
                ? `${where} is carried by ${current.instanceId} in ${current.az}, but ${chosen.instanceId} in ${az} has been healthy for ${lab.failbackHoldSeconds} s`
                : `${where} is carried by ${current.instanceId}, which can no longer carry it: ${unfit}`;
      actions.push({
        kind: route === undefined ? "create-route" : "replace-route",
        id: `route:${id}:${cidr}`,
        after: [],
        routeTableId: id,
        cidr,
        target,
        previous: route?.instanceId ?? current?.instanceId,
        failover: route !== undefined && (current === undefined || unfit !== undefined),
        reason: `${why}; point it at ${to}`,
      });
    }
  }
  return actions;
};

/**
 * Routes to the lab's runners for CIDRs the lab no longer routes (intranet CIDRs or a DNS service address
 * since removed): labgate made them,
 * nothing keeps them right any more (they would become blackholes), so they go. A route to anything that is
 * not one of the lab's runners is left alone: it is not labgate's.
 */
export const deleteRemovedRoutes = (p: Planning): void => {
  if (!p.known("route-tables") || !p.known("instances")) return;
  const { world, lab } = p;
  for (const [id, table] of Object.entries(world.routeTables).sort(([a], [b]) => a.localeCompare(b))) {
    for (const [cidr, route] of Object.entries(table.others ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
      if (routedCidrs(lab).includes(cidr)) continue;
      const runner = world.runners.find(
        (r) =>
          (route.eniId !== undefined && route.eniId === r.eniId) ||
          (route.instanceId !== undefined && route.instanceId === r.instanceId),
      );
      if (runner === undefined) continue;
      p.add({
        kind: "delete-route",
        id: `delete-route:${id}:${cidr}`,
        after: [],
        routeTableId: id,
        cidr,
        instanceId: runner.instanceId,
        reason: `${cidr} in ${id} points at runner ${runner.instanceId} but is no longer one of the CIDRs lab ${lab.name} routes (${routedCidrs(lab).join(", ")}): labgate's old route goes`,
      });
    }
  }
};
