// The lab in a box's VPC router, on the real kernel: a runner subnet's gateway keeps its MAC address when
// runners come and go. A Linux bridge otherwise takes the lowest MAC of its ports: removing the runner whose
// port lent it (a replacement, a kill) changed the gateway's MAC under the other runners, and what they sent
// to the address they had cached was dropped.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addRunnerSubnet, attachRunner } from "../../functions/local/lab/router.ts";
import { runnerSubnet } from "../../functions/local/lab/topology.ts";
import { type Host, NetnsWorld, netnsUnavailableReason } from "../../functions/local/netns.ts";

const skipReason = netnsUnavailableReason();
if (skipReason && process.env.CI === "true")
  throw new Error(`the router test cannot run in CI: ${skipReason}`);
if (skipReason) console.warn(`SKIPPED lab router test: ${skipReason}`);

const AZ = "eu-local-1a";
/** A MAC below every random one (those have the locally administered bit, 0x02, set): RFC 7042's documentation range. */
const LOWEST_MAC = "00:00:5e:00:53:01";

describe.skipIf(skipReason !== undefined)("the lab's VPC router", { timeout: 60_000 }, () => {
  const world = new NetnsWorld();
  const { gateway, cidr } = runnerSubnet(AZ);
  const prefix = cidr.split("/")[1];
  let router: Host;
  let stays: Host;

  beforeAll(async () => {
    router = await world.addHost(world.unique("lgv"));
    stays = await world.addHost(world.unique("lgs"));
    const leaves = await world.addHost(world.unique("lgx"));
    await addRunnerSubnet(router, AZ);
    await attachRunner(world, router, stays, world.unique("vs"), AZ);
    await attachRunner(world, router, leaves, world.unique("vx"), AZ);
    // The worst case: the runner that leaves has the lowest MAC on the bridge.
    await router.exec(["ip", "link", "set", world.unique("vx"), "address", LOWEST_MAC]);
    for (const [host, n] of [
      [stays, 11],
      [leaves, 12],
    ] as const) {
      await host.exec(["ip", "addr", "add", `10.0.101.${n}/${prefix}`, "dev", "eth0"]);
      await host.exec(["ip", "link", "set", "eth0", "up"]);
      await host.exec(["ping", "-c", "1", "-W", "2", gateway]);
    }
  });

  afterAll(async () => {
    await world.stopAll();
  });

  it("keeps the gateway's MAC, so a runner's cached gateway still works when the runner with the lowest MAC leaves", async () => {
    const mac = async () =>
      (await router.exec(["cat", `/sys/class/net/${runnerSubnet(AZ).bridge}/address`])).stdout.trim();
    const cached = (await stays.exec(["ip", "neigh", "show", gateway, "dev", "eth0"])).stdout;
    const before = await mac();
    expect(cached).toContain(before);
    await world.removeHost(world.unique("lgx"));
    expect(await mac()).toBe(before);
    // Traffic the staying runner starts towards its gateway (as a reply to a worker would be) gets through.
    const ping = await stays.exec(["ping", "-c", "5", "-i", "0.2", "-W", "1", gateway], { check: false });
    expect(ping.stdout).toMatch(/5 packets transmitted, 5 received/);
  });
});
