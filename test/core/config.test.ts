import { describe, expect, it } from "vitest";
import { ConfigError, parseLabConfig } from "../../functions/core/config.ts";
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
