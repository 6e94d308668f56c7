// The VPC router of the lab in a box: a bridge per worker subnet holding the workers' gateway (its workers stay
// for the lab's life), and for runner subnets, one Linux bridge per AZ holding the subnet's gateway address,
// and one port per runner. Like the VPC's own router, a runner subnet's gateway keeps one MAC address for its
// whole life: a Linux bridge otherwise takes the lowest MAC of its ports, so removing the runner
// whose port lent it that address (a replacement, a kill) would change the gateway's MAC under the other
// runners, and what they send to the address they cached (replies on their way back to a worker) would be
// dropped until the router happens to ARP them again.
import type { Host, NetnsWorld } from "../netns.ts";
import { runnerSubnet, type WorkerSpec, type WorkerSubnetSpec } from "./topology.ts";

/** The runner subnet of an AZ: its bridge, with the gateway's address and fixed MAC, up. */
export const addRunnerSubnet = async (router: Host, az: string): Promise<void> => {
  const { cidr, gateway, gatewayMac, bridge } = runnerSubnet(az);
  // An address given at creation is "set" (addr_assign_type 3): the bridge never recomputes it from its ports.
  await router.exec(["ip", "link", "add", bridge, "address", gatewayMac, "type", "bridge"]);
  await router.exec(["ip", "addr", "add", `${gateway}/${cidr.split("/")[1]}`, "dev", bridge]);
  await router.exec(["ip", "link", "set", bridge, "up"]);
};

/** Plugs a runner host into its AZ's runner subnet: `eth0` on the host, `port` on the router's bridge. */
export const attachRunner = async (
  world: NetnsWorld,
  router: Host,
  host: Host,
  port: string,
  az: string,
): Promise<void> => {
  await world.run(["ip", "link", "add", "eth0", "netns", host.name, "type", "veth", "peer", "name", port]);
  await world.run(["ip", "link", "set", port, "netns", router.name]);
  await router.exec(["ip", "link", "set", port, "master", runnerSubnet(az).bridge]);
  await router.exec(["ip", "link", "set", port, "up"]);
};

/** A worker subnet on the VPC router: a bridge holding the workers' gateway address, up. */
export const addWorkerSubnet = async (router: Host, subnet: WorkerSubnetSpec): Promise<void> => {
  await router.exec(["ip", "link", "add", subnet.routerIf, "type", "bridge"]);
  await router.exec([
    "ip",
    "addr",
    "add",
    `${subnet.gateway}/${subnet.cidr.split("/")[1]}`,
    "dev",
    subnet.routerIf,
  ]);
  await router.exec(["ip", "link", "set", subnet.routerIf, "up"]);
};

/** Plugs a worker into its subnet: `eth0` on the worker, a port of the subnet's bridge on the router. */
export const attachWorker = async (
  world: NetnsWorld,
  router: Host,
  worker: Host,
  subnet: WorkerSubnetSpec,
  spec: WorkerSpec,
): Promise<void> => {
  await world.link(
    router,
    spec.routerPort,
    undefined,
    worker,
    "eth0",
    `${spec.ip}/${subnet.cidr.split("/")[1]}`,
  );
  await router.exec(["ip", "link", "set", spec.routerPort, "master", subnet.routerIf]);
};
