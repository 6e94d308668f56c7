// Sample worlds of the labs in infra/labs.ts, observed in a known state: for the local dry run, the tests
// and the benchmarks.

import { labs } from "../../infra/labs.ts";
import { formatCommandTag } from "../core/command-tag.ts";
import { type LabConfig, LabConfigSchema } from "../core/config.ts";
import { routedCidrs } from "../core/routed.ts";
import type { CommandRecord, RouteTable, Runner, WorkerSubnet, World } from "../core/world.ts";
import { renderRunnerSetup } from "../render/index.ts";

export const labNamed = (name: string): LabConfig => {
  const input = labs.find((l) => l.name === name);
  if (!input) throw new Error(`no lab ${name} in infra/labs.ts`);
  return LabConfigSchema.parse(input);
};

export const NOW = Date.parse("2026-11-26T09:00:00Z");

export interface Shape {
  readonly azs: readonly string[];
  readonly runnersPerAz: number;
  readonly subnetsPerAz: number;
}

const letter = (az: string): string => az.slice(-1);
export const runnerId = (az: string, n: number): string =>
  `i-0f0000000000${letter(az)}${String(n).padStart(4, "0")}`;
export const subnetId = (az: string, n: number): string =>
  `subnet-0f0000000000${letter(az)}${String(n).padStart(4, "0")}`;
export const tableId = (az: string, n: number): string =>
  `rtb-0f0000000000${letter(az)}${String(n).padStart(4, "0")}`;

const workerCidr = (azIndex: number, n: number): string => `10.0.${azIndex * 16 + n}.0/24`;

/** A runner that is fully set up and may carry traffic. */
export const readyRunner = (
  lab: LabConfig,
  az: string,
  n: number,
  credential: string,
  cidrs: string[],
): Runner => {
  const instanceId = runnerId(az, n);
  const privateIp = `10.0.${100 + n}.${10 + az.charCodeAt(az.length - 1) - 97}`;
  const setup = renderRunnerSetup({
    lab,
    instanceId,
    privateIp,
    credentialParameter: credential,
    workerCidrs: cidrs,
  });
  const command: CommandRecord = {
    kind: "setup",
    hash: setup.hash,
    commandId: `00000000-0000-4000-8000-${instanceId.slice(-12)}`,
    status: "success",
    sentAt: NOW - 3_600_000,
  };
  return {
    instanceId,
    az,
    state: "running",
    lifecycle: "InService",
    privateIp,
    eniId: `eni-${instanceId.slice(2)}`,
    sourceDestCheck: false,
    imdsLocked: true,
    recorded: true,
    credential,
    appliedSetup: setup.hash,
    command,
    recordedHealth: "OK",
    mirror: { credential, appliedSetup: setup.hash, command: formatCommandTag(command) },
    commandOutcome: undefined,
    healthAlarm: "OK",
  };
};

/**
 * A converged world: every runner ready, every worker subnet with its own route table whose routes point at
 * a runner of its AZ (subnet k of an AZ on runner k mod runnersPerAz).
 */
export const convergedWorld = (lab: LabConfig, shape: Shape): World => {
  const subnets: WorkerSubnet[] = [];
  shape.azs.forEach((az, a) => {
    for (let n = 1; n <= shape.subnetsPerAz; n++) {
      subnets.push({ subnetId: subnetId(az, n), az, cidr: workerCidr(a, n), routeTableId: tableId(az, n) });
    }
  });
  const cidrs = [...new Set(subnets.map((s) => s.cidr))].sort();
  const credentials = [...lab.vpn.credentials];
  const runners: Runner[] = [];
  for (const az of shape.azs) {
    for (let n = 1; n <= shape.runnersPerAz; n++) {
      const credential = credentials.shift();
      if (!credential) throw new Error("the lab's credential pool is smaller than the shape's runners");
      runners.push(readyRunner(lab, az, n, credential, cidrs));
    }
  }
  const routeTables: Record<string, RouteTable> = {};
  for (const s of subnets) {
    const n = Number(s.subnetId.slice(-4));
    const carrier = runners.find((r) => r.instanceId === runnerId(s.az, ((n - 1) % shape.runnersPerAz) + 1));
    routeTables[s.routeTableId as string] = {
      routeTableId: s.routeTableId as string,
      routes: Object.fromEntries(
        routedCidrs(lab).map((c) => [
          c,
          { instanceId: carrier?.instanceId, eniId: carrier?.eniId, blackhole: false },
        ]),
      ),
    };
  }
  return {
    lab: lab.name,
    now: NOW,
    runners,
    subnets,
    routeTables,
    healthAlarms: runners.map((r) => ({
      name: `labgate-${lab.name}-tunnel-${r.instanceId}`,
      instanceId: r.instanceId,
    })),
    orphanLeases: [],
    unknown: [],
  };
};

/** A copy of `world` with one runner changed. */
export const withRunner = (world: World, instanceId: string, change: Partial<Runner>): World => ({
  ...world,
  runners: world.runners.map((r) => (r.instanceId === instanceId ? { ...r, ...change } : r)),
});

/** A lab with a credential pool large enough for a shape (the sample foo has three credentials). */
export const withPool = (lab: LabConfig, size: number): LabConfig => ({
  ...lab,
  vpn: {
    ...lab.vpn,
    credentials: Array.from({ length: size }, (_, i) => `/labgate/${lab.name}/vpn/client-${i + 1}`),
  },
});
