// The setup's reading of a credential parameter, run for real (bash, openssl) on credentials made here: the
// kind is told from the content, a TLS credential is checked piece by piece, and nothing prints key material.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CREDENTIAL_FUNCTIONS, messageFunctions, tlsCredentialText } from "../../functions/render/index.ts";

const PARAMETER = "/labgate/foo/vpn/client-1";
const inCi = process.env.CI === "true";
const tools = ["openssl", "openvpn"].filter((p) => spawnSync("sh", ["-c", `command -v ${p}`]).status !== 0);
if (tools.length > 0 && inCi)
  throw new Error(`${tools.join(", ")} required in CI (see .ci/apt-packages.txt)`);
if (tools.length > 0) console.warn(`SKIPPED credential tests: ${tools.join(", ")} not installed`);

const dir = mkdtempSync(join(tmpdir(), "labgate-credential-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const openssl = (...args: string[]): string => {
  const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
};
const read = (name: string): string => readFileSync(join(dir, name), "utf8");
/** An EC certificate and its key: self-signed as a lab makes them, or signed by another, or expired. */
const make = (name: string, options: { signedBy?: string; expired?: boolean } = {}): void => {
  const common = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-subj",
    `/CN=${name}`,
  ];
  if (!options.signedBy && !options.expired) {
    openssl("req", "-x509", ...common, "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "30");
    return;
  }
  openssl("req", "-new", ...common, "-keyout", `${name}.key`, "-out", `${name}.csr`);
  if (options.signedBy) {
    const ca = options.signedBy;
    openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}.crt`,
      "-CAkey",
      `${ca}.key`,
      "-out",
      `${name}.crt`,
    );
    return;
  }
  // Expired: a one-day certificate of 2020 (openssl req cannot backdate).
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "serial"), "01\n");
  writeFileSync(
    join(dir, "ca.cnf"),
    "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nserial=serial\nnew_certs_dir=.\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n",
  );
  const dates = ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"];
  const ca = [
    "ca",
    "-batch",
    "-config",
    "ca.cnf",
    "-selfsign",
    "-keyfile",
    `${name}.key`,
    "-in",
    `${name}.csr`,
  ];
  openssl(...ca, ...dates, "-out", `${name}.crt`);
};

/** Lines of key material that must never appear in the output. */
const secretLines = (pem: string): string[] =>
  pem.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"));

const parse = (credential: string, env: Record<string, string> = {}) => {
  const work = mkdtempSync(join(dir, "run-"));
  const file = join(work, "parameter");
  writeFileSync(file, credential);
  const parts = join(work, "parts");
  mkdirSync(parts, { mode: 0o700 });
  const script = `set -Eeuo pipefail
${messageFunctions("foo")}
OPENVPN_REFUSES_STATIC_KEYS=\${REFUSES:-0}
OPENVPN_VERSION=\${VERSION:-2.6.14}
${CREDENTIAL_FUNCTIONS}
parse_credential ${file} ${parts} 1194 ${PARAMETER}
echo "RESULT kind=$CREDENTIAL_KIND local=$TUNNEL_LOCAL remote=$TUNNEL_REMOTE port=$TUNNEL_PORT"
echo "SUMMARY $CREDENTIAL_SUMMARY"
`;
  writeFileSync(join(work, "parse.sh"), script);
  const r = spawnSync("bash", [join(work, "parse.sh")], {
    encoding: "utf8",
    env: { PATH: process.env.PATH, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, parts };
};

let staticKey = "";
let tls = "";
beforeAll(() => {
  if (tools.length > 0) return;
  spawnSync("openvpn", ["--genkey", "secret", join(dir, "static.key")]);
  const lines = read("static.key").split("\n");
  lines.splice(1, 0, "# labgate local=172.30.0.2 remote=172.30.0.1");
  staticKey = lines.join("\n");
  make("server");
  make("client");
  make("impostor");
  make("labca");
  make("signed-server", { signedBy: "labca" });
  make("signed-client", { signedBy: "labca" });
  tls = tlsCredentialText({
    serverCertificate: read("server.crt"),
    clientCertificate: read("client.crt"),
    clientKey: read("client.key"),
  });
});

describe.skipIf(tools.length > 0)("credential parameters: the kind is told from the content", () => {
  it("reads a static key and its tunnel addresses", () => {
    const r = parse(staticKey);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("RESULT kind=static-key local=172.30.0.2 remote=172.30.0.1 port=1194");
    expect(r.stdout).toContain("SUMMARY static key; local 172.30.0.2, remote 172.30.0.1");
    const withPort = parse(staticKey.replace("remote=172.30.0.1", "remote=172.30.0.1 port=1201"));
    expect(withPort.stdout).toContain("port=1201");
  });

  it("refuses a static key without its addresses line", () => {
    const r = parse(staticKey.replace(/^# labgate .*$/m, "#"));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${PARAMETER} lacks the line '# labgate local=<tunnel local ip>`);
  });

  it("refuses a static key where OpenVPN 2.7 runs, pointing at TLS credentials, without printing it", () => {
    const r = parse(staticKey, { REFUSES: "1", VERSION: "2.7.0" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `${PARAMETER} holds a static key, which OpenVPN 2.7.0 on this runner refuses, and NetworkManager's OpenVPN plugin cannot pass --allow-deprecated-insecure-static-crypto: give lab foo TLS credentials`,
    );
    for (const line of secretLines(staticKey)) expect(r.stdout + r.stderr).not.toContain(line);
  });

  it("reads a TLS credential: each part in its own file, the key private, the server pinned by fingerprint", () => {
    const r = parse(tls);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("RESULT kind=tls local= remote= port=1194");
    const fingerprint = openssl("x509", "-in", "server.crt", "-noout", "-fingerprint", "-sha256")
      .split("=")[1]
      ?.trim();
    expect(r.stdout).toContain(`SUMMARY TLS; client CN=client, server certificate sha256 ${fingerprint}`);
    expect(readFileSync(join(r.parts, "ca.pem"), "utf8")).toBe(read("server.crt"));
    expect(readFileSync(join(r.parts, "cert.pem"), "utf8")).toBe(read("client.crt"));
    expect(readFileSync(join(r.parts, "key.pem"), "utf8")).toBe(read("client.key"));
    expect(statSync(join(r.parts, "key.pem")).mode & 0o777).toBe(0o600);
    for (const line of secretLines(read("client.key"))) expect(r.stdout + r.stderr).not.toContain(line);
  });

  it("takes the port of a TLS credential's line, and CRLF line ends", () => {
    const r = parse(`# labgate port=1300\n${tls}`.replaceAll("\n", "\r\n"));
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("RESULT kind=tls local= remote= port=1300");
    expect(readFileSync(join(r.parts, "key.pem"), "utf8")).toBe(read("client.key"));
  });

  const tlsWith = (patch: { ca?: string; cert?: string; key?: string }) =>
    tlsCredentialText({
      serverCertificate: patch.ca ?? read("server.crt"),
      clientCertificate: patch.cert ?? read("client.crt"),
      clientKey: patch.key ?? read("client.key"),
    });

  it.each([
    [
      "tunnel addresses (the server gives them)",
      () => `# labgate local=172.30.0.2 remote=172.30.0.1\n${tls}`,
      "a TLS credential's line may only be '# labgate port=<server port>'",
    ],
    ["no <ca> block", () => tls.replace(/<ca>[\s\S]*<\/ca>\n/, ""), "needs exactly one <ca> block"],
    [
      "two <cert> blocks",
      () => `${tls}<cert>\n${read("client.crt")}</cert>\n`,
      "needs exactly one <cert> block",
    ],
    [
      "two certificates in <ca>",
      () => tlsWith({ ca: read("server.crt") + read("impostor.crt") }),
      "<ca> must hold exactly one certificate",
    ],
    [
      "a <cert> that is not a certificate",
      () => tlsWith({ cert: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----" }),
      "<cert> is not a certificate",
    ],
    [
      "a key of another certificate",
      () => tlsWith({ key: read("impostor.key") }),
      "<cert> and <key> do not belong together",
    ],
    [
      "an encrypted key",
      () => tlsWith({ key: openssl("pkey", "-in", "client.key", "-aes256", "-passout", "pass:secret") }),
      "<key> is not a private key, or it is encrypted",
    ],
    [
      "a server certificate signed by a CA",
      () => tlsWith({ ca: read("signed-server.crt") }),
      "<ca> must be the lab server's own self-signed certificate",
    ],
    [
      "a CA that also signs clients",
      () =>
        tlsWith({ ca: read("labca.crt"), cert: read("signed-client.crt"), key: read("signed-client.key") }),
      "<ca> also signed this client's certificate, so any client of the lab could pose as its server",
    ],
    ["both kinds at once", () => `${staticKey}\n${tls}`, "holds both a static key and TLS blocks"],
    [
      "neither kind",
      () => "hello\n",
      "holds neither an OpenVPN static key (openvpn --genkey secret) nor a TLS credential",
    ],
  ])(
    "refuses a TLS credential with %s, naming the problem and nothing secret",
    (_what, credential, message) => {
      const text = credential();
      const r = parse(text);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`FAILED: ${PARAMETER}`);
      expect(r.stderr).toContain(message);
      for (const line of [...secretLines(read("client.key")), ...secretLines(staticKey)]) {
        expect(r.stdout + r.stderr).not.toContain(line);
      }
    },
  );

  it("refuses an expired certificate", () => {
    make("expired", { expired: true });
    const expired = openssl("x509", "-in", "expired.crt");
    const r = parse(tlsWith({ cert: expired, key: read("expired.key") }));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("the client certificate in <cert> has expired");
  });
});
