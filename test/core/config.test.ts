import { describe, expect, it } from "vitest";
import { ConfigError, intranetVpcOverlaps, parseLabConfig } from "../../functions/core/config.ts";
import { RUNNER_RESERVED_PATHS, RUNNER_SHARED_PATHS, runnerPaths } from "../../functions/core/names.ts";
import { SPECIAL_PURPOSE_RANGES } from "../../functions/core/special-ranges.ts";
import { labInputs } from "../../infra/labs.ts";

const foo = labInputs.find((l) => l.name === "foo");
const json = (patch: Record<string, unknown>): string => JSON.stringify({ ...foo, ...patch });

describe("lab configuration", () => {
  it("accepts the sample labs and fills in the defaults", () => {
    const lab = parseLabConfig(
      JSON.stringify({ ...foo, workerUserScriptPath: undefined, crossAzFallback: undefined }),
    );
    expect(lab.workerUserScriptPath).toBe("/etc/gitlab-runner/worker-user-data.sh");
    expect(lab.crossAzFallback).toBe(true);
    expect(lab.vpn).toMatchObject({ port: 1194, protocol: "udp", cipher: "AES-256-CBC" });
    for (const input of labInputs) expect(parseLabConfig(JSON.stringify(input)).name).toBe(input.name);
  });

  it("says when it is missing or not JSON", () => {
    expect(() => parseLabConfig(undefined)).toThrow("LABGATE_CONFIG is not set");
    expect(() => parseLabConfig("{name:")).toThrow(/LABGATE_CONFIG is not valid JSON/);
  });

  it.each([
    [{ name: "Foo Lab" }, /name: must be 1-11 lowercase letters or digits/],
    [{ intranetCidrs: [] }, /intranetCidrs: must list at least one CIDR/],
    [{ intranetCidrs: ["10.200.0.1/16"] }, /intranetCidrs\.0: must be an IPv4 CIDR block/],
    [
      { intranetCidrs: ["10.0.128.0/17"] },
      /intranetCidrs\.0: 10\.0\.128\.0\/17 overlaps the VPC \(10\.0\.0\.0\/16\)/,
    ],
    [
      { intranetCidrs: ["172.16.0.0/12"] },
      /intranetCidrs\.0: 172\.16\.0\.0\/12 overlaps Docker's default bridge/,
    ],
    [{ intranetDomains: ["foo.example; rm -rf /"] }, /intranetDomains\.0: must be a DNS name/],
    [{ dnsServers: ["10.200.0.300"] }, /dnsServers\.0: must be an IPv4 address/],
    [{ workerUserScriptPath: "relative/path" }, /workerUserScriptPath: must be an absolute path/],
    [
      { vpn: { ...foo?.vpn, credentials: ["/a", "/a"] } },
      /vpn\.credentials: must not list a parameter twice/,
    ],
    [{ vpn: { ...foo?.vpn, cipher: "AES-256-GCM" } }, /vpn\.cipher/],
    [{ vpn: { ...foo?.vpn, remote: "$(reboot)" } }, /vpn\.remote/],
    [{ workerSubnets: { ids: ["sub-1"] } }, /workerSubnets/],
    [{ vpcId: undefined }, /vpcId: /],
    [{ vpcId: "vpc-1; reboot" }, /vpcId: must be a VPC id/],
    [{ runners: { autoScalingGroupName: "foo-runners" } }, /runners\.instanceRoleName: /],
    [
      { runners: { autoScalingGroupName: "foo-runners", instanceRoleName: "path/foo-runner-role" } },
      /runners\.instanceRoleName: must be an IAM role name/,
    ],
    [{ extra: true }, /Unrecognized key/],
  ])("rejects %j, naming the field and the reason", (patch, message) => {
    expect(() => parseLabConfig(json(patch))).toThrow(ConfigError);
    expect(() => parseLabConfig(json(patch))).toThrow(message);
  });

  it("names every bad field at once", () => {
    const error = (() => {
      try {
        parseLabConfig(json({ name: "X", dnsServers: [] }));
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    expect(error?.message).toMatch(/name: /);
    expect(error?.message).toMatch(/dnsServers: must list at least one DNS server/);
  });
});

describe("intranet CIDRs", () => {
  /** foo with these intranet CIDRs and a DNS server inside the first one (and no DNS service address). */
  const intranet = (...cidrs: string[]) =>
    json({
      intranetCidrs: cidrs,
      dnsServers: [(cidrs[0] ?? "").replace(/\.0\/\d+$/, ".53")],
      dnsServiceAddress: undefined,
    });

  it.each(SPECIAL_PURPOSE_RANGES.map((r) => [r.cidr, r.what] as const))(
    "refuses the special-purpose range %s (%s), naming it and why",
    (cidr, what) => {
      expect(() => parseLabConfig(intranet("10.200.0.0/16", cidr))).toThrow(
        `intranetCidrs.1: ${cidr} overlaps ${cidr}, ${what}: `,
      );
    },
  );

  it.each([
    [
      "169.254.169.0/24",
      /intranetCidrs\.0: 169\.254\.169\.0\/24 overlaps 169\.254\.0\.0\/16, link-local .*metadata/,
    ],
    ["128.0.0.0/1", /intranetCidrs\.0: 128\.0\.0\.0\/1 overlaps 169\.254\.0\.0\/16/],
    [
      "224.0.0.0/3",
      /intranetCidrs\.0: 224\.0\.0\.0\/3 overlaps 224\.0\.0\.0\/4, multicast .*\n.*overlaps 240\.0\.0\.0\/4/,
    ],
    ["127.0.0.1/32", /intranetCidrs\.0: 127\.0\.0\.1\/32 overlaps 127\.0\.0\.0\/8, loopback/],
  ])("refuses %s, which reaches into a special-purpose range", (cidr, message) => {
    expect(() => parseLabConfig(intranet(cidr))).toThrow(message);
  });

  it("refuses the default route", () => {
    expect(() => parseLabConfig(intranet("0.0.0.0/0"))).toThrow(
      /intranetCidrs\.0: 0\.0\.0\.0\/0 is the default route: labgate routes a lab's intranet into its tunnel, never all traffic/,
    );
  });

  it("refuses 10.0.0.0/8 when the VPC is known to be inside it", () => {
    expect(() => parseLabConfig(intranet("10.0.0.0/8"))).toThrow(
      /intranetCidrs\.0: 10\.0\.0\.0\/8 overlaps the VPC \(10\.0\.0\.0\/16\)/,
    );
  });

  it.each(["172.16.0.0/16", "192.168.0.0/16", "100.64.0.0/10", "198.18.0.0/15", "130.59.0.0/16"])(
    "accepts %s (private, shared, benchmarking or global unicast)",
    (cidr) => {
      expect(parseLabConfig(intranet(cidr)).intranetCidrs).toEqual([cidr]);
    },
  );

  it("finds the overlaps with every CIDR block of the VPC, not only the configured one", () => {
    const lab = { intranetCidrs: ["10.200.0.0/16", "10.1.0.0/16"] };
    expect(intranetVpcOverlaps(lab, ["10.0.0.0/16", "10.1.128.0/20"])).toEqual([
      "intranetCidrs.1: 10.1.0.0/16 overlaps the VPC (10.1.128.0/20); workers could not tell the two apart",
    ]);
    expect(intranetVpcOverlaps(lab, ["10.0.0.0/16"])).toEqual([]);
  });
});

describe("DNS servers", () => {
  it("must be inside the intranet CIDRs, which are all the tunnel carries", () => {
    expect(() => parseLabConfig(json({ dnsServers: ["10.200.0.10", "8.8.8.8"] }))).toThrow(
      /dnsServers\.1: 8\.8\.8\.8 is not inside the intranet CIDRs \(10\.200\.0\.0\/16\): the lab's DNS is reached through the tunnel/,
    );
    expect(() => parseLabConfig(json({ dnsServers: ["169.254.169.253"] }))).toThrow(/dnsServers\.0: /);
  });
});

describe("worker user script path", () => {
  const path = (workerUserScriptPath: string) => json({ workerUserScriptPath });

  it.each([
    "/etc/gitlab-runner/../labgate/foo/static.key",
    "/etc/gitlab-runner/./worker.sh",
    "/etc//gitlab-runner/worker.sh",
    "/etc/gitlab-runner/",
    "/..",
  ])("refuses %s, which does not name a file plainly", (p) => {
    expect(() => parseLabConfig(path(p))).toThrow(/workerUserScriptPath: .* must name a file plainly/);
  });

  it.each([
    ...RUNNER_RESERVED_PATHS.folders.map((f) => `${f}/worker.sh`),
    ...RUNNER_RESERVED_PATHS.prefixes.map((p) => `${p}worker`),
  ])("refuses %s, which belongs to labgate", (p) => {
    expect(() => parseLabConfig(path(p))).toThrow(/workerUserScriptPath: .*(inside|starts with) .*labgate/);
  });

  it("refuses every file labgate itself writes on a runner, of any lab", () => {
    const own = [...Object.values(runnerPaths("bar")), ...Object.values(RUNNER_SHARED_PATHS)];
    for (const p of own) expect(() => parseLabConfig(path(p)), p).toThrow(/workerUserScriptPath: /);
  });

  it.each(["/etc/gitlab-runner/worker-user-data.sh", "/var/lib/gitlab-runner/labgate-worker.sh"])(
    "accepts %s",
    (p) => {
      expect(parseLabConfig(path(p)).workerUserScriptPath).toBe(p);
    },
  );
});
