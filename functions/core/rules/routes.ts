// Routes: each worker subnet's route for each intranet CIDR targets an eligible runner, in the subnet's AZ
// when one exists there; a route already on an eligible runner of its pool stays (no flapping).
import type { RouteAction, RouteTarget } from "../actions.ts";
import { LAB_TAG } from "../names.ts";
import type { Route, Runner } from "../world.ts";
import type { Planning } from "./planning.ts";
import { byId, ineligibility, targets } from "./runner.ts";

/** Each worker subnet's route for each intranet CIDR targets an eligible runner, in its AZ when one exists. */
export const planRoutes = ({ world, lab, live, findings }: Planning): RouteAction[] => {
  const eligible = live.filter((r) => ineligibility(r) === undefined);
  const tables = new Map<string, { az: string; subnets: string[] }>();
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
    const entry = tables.get(s.routeTableId) ?? { az: s.az, subnets: [] };
    entry.subnets.push(s.subnetId);
    tables.set(s.routeTableId, entry);
  }

  const runnerOf = (route: Route | undefined): Runner | undefined => live.find((r) => targets(route, r));
  const poolFor = (az: string): readonly Runner[] => {
    const inAz = eligible.filter((r) => r.az === az);
    return inAz.length > 0 || !lab.crossAzFallback ? inAz : eligible;
  };

  // Routes already on a runner of their pool stay there (no flapping); they count towards that runner's load.
  const load = new Map<string, number>();
  const ordered = [...tables.entries()].sort(([a], [b]) => a.localeCompare(b));
  for (const [id, { az }] of ordered) {
    const pool = poolFor(az);
    const carriers = new Set(
      lab.intranetCidrs
        .map((cidr) => runnerOf(world.routeTables[id]?.routes[cidr]))
        .filter((r): r is Runner => r !== undefined && pool.includes(r)),
    );
    for (const r of carriers) load.set(r.instanceId, (load.get(r.instanceId) ?? 0) + 1);
  }

  const actions: RouteAction[] = [];
  for (const [id, { az, subnets }] of ordered) {
    const table = world.routeTables[id];
    const pool = poolFor(az);
    if (table === undefined) continue;
    if (pool.length === 0) {
      findings.push({
        kind: "subnet-unreachable",
        subnetId: subnets[0],
        message: `no runner can carry worker subnet(s) ${subnets.join(", ")} in ${az}${lab.crossAzFallback ? "" : " (cross-AZ fallback is off)"}; routes left as they are`,
      });
      continue;
    }
    const kept = lab.intranetCidrs
      .map((cidr) => runnerOf(table.routes[cidr]))
      .find((r) => r && pool.includes(r));
    const chosen =
      kept ??
      [...pool].sort(
        (a, b) => (load.get(a.instanceId) ?? 0) - (load.get(b.instanceId) ?? 0) || byId(a, b),
      )[0];
    if (chosen === undefined || chosen.eniId === undefined) continue;
    if (kept === undefined) load.set(chosen.instanceId, (load.get(chosen.instanceId) ?? 0) + 1);
    const target: RouteTarget = { instanceId: chosen.instanceId, eniId: chosen.eniId };

    for (const cidr of lab.intranetCidrs) {
      const route = table.routes[cidr];
      const current = runnerOf(route);
      if (current && pool.includes(current)) continue;
      const where = `${cidr} in ${id} (${subnets.join(", ")}, ${az})`;
      const to = `${chosen.instanceId} in ${chosen.az}`;
      const why =
        route === undefined
          ? `${where} has no route`
          : route.blackhole
            ? `${where} is a blackhole (its target is gone)`
            : current === undefined
              ? `${where} points at ${route.eniId ?? route.instanceId ?? "something"}, which is not a runner of lab ${lab.name}`
              : ineligibility(current) === undefined
                ? `${where} is carried by ${current.instanceId} in ${current.az}, but ${az} has an eligible runner again`
                : `${where} is carried by ${current.instanceId}, which can no longer carry it: ${ineligibility(current)}`;
      actions.push({
        kind: route === undefined ? "create-route" : "replace-route",
        id: `route:${id}:${cidr}`,
        after: [],
        routeTableId: id,
        cidr,
        target,
        previous: route?.instanceId ?? current?.instanceId,
        failover: route !== undefined && (current === undefined || ineligibility(current) !== undefined),
        reason: `${why}; point it at ${to}`,
      });
    }
  }
  return actions;
};
