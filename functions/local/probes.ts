// Probes for the attack tests on hosts in network namespaces: a listener that records every client that
// reached it, and attempts (HTTP, DNS, ping) bounded in time that say whether they got through. An attack is
// refused only when the attempt fails *and* the listener saw nothing from the attacker.
import { existsSync, readFileSync } from "node:fs";
import type { Host } from "./netns.ts";
import { waitFor } from "./netns.ts";

/** How long an attempt waits for an answer: a dropped packet costs this much. */
const ATTEMPT_SECONDS = 3;

export interface Listener {
  /** One line per request received: the client's address as the listener saw it. */
  readonly clientsLog: string;
}

/** An HTTP server on address:port of the host (started by pid through the host) that records its clients. */
export const startListener = async (
  host: Host,
  dir: string,
  name: string,
  address: string,
  port: number,
): Promise<Listener> => {
  const clientsLog = `${dir}/${name}.clients`;
  const outLog = `${dir}/${name}.log`;
  const code = [
    'const fs = require("node:fs");',
    'require("node:http").createServer((q, s) => {',
    `  fs.appendFileSync(${JSON.stringify(clientsLog)}, q.socket.remoteAddress + "\\n");`,
    `  s.end(${JSON.stringify(`${name} reached; client=`)} + q.socket.remoteAddress + "\\n");`,
    `}).listen(${port}, ${JSON.stringify(address)}, () => console.log("listening"));`,
  ].join("\n");
  host.start([process.execPath, "-e", code], outLog);
  await waitFor(`the ${name} listener on ${address}:${port}`, () =>
    existsSync(outLog) ? readFileSync(outLog, "utf8").includes("listening") : false,
  );
  return { clientsLog };
};

/** The clients a listener has seen so far. */
export const clientsOf = (listener: Listener): string[] =>
  existsSync(listener.clientsLog)
    ? readFileSync(listener.clientsLog, "utf8").split("\n").filter(Boolean)
    : [];

/** An HTTP GET from the host, optionally from a given source address; the body when it got an answer. */
export const httpGet = async (
  host: Host,
  url: string,
  { source }: { source?: string } = {},
): Promise<string | undefined> => {
  const r = await host.exec(
    ["curl", "-sS", "--max-time", String(ATTEMPT_SECONDS)]
      .concat(source ? ["--interface", source] : [])
      .concat([url]),
    { check: false },
  );
  return r.code === 0 ? r.stdout : undefined;
};

/** A DNS query from the host (UDP, or TCP); the answers (dig +short), empty when nothing answered. */
export const dnsAnswers = async (
  host: Host,
  server: string,
  name: string,
  { source, tcp = false }: { source?: string; tcp?: boolean } = {},
): Promise<string> => {
  const r = await host.exec(
    ["dig", "+short", `+time=${ATTEMPT_SECONDS}`, "+tries=1"]
      .concat(tcp ? ["+tcp"] : [])
      .concat(source ? ["-b", source] : [])
      .concat([`@${server}`, name]),
    { check: false },
  );
  return r.code === 0 ? r.stdout.trim() : "";
};

/** One ping from the host; whether it was answered. */
export const pings = async (host: Host, address: string): Promise<boolean> =>
  (await host.exec(["ping", "-c", "1", "-W", String(ATTEMPT_SECONDS), address], { check: false })).code === 0;
