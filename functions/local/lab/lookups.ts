// Name lookups measured from a worker, beside the pings: every 100 ms a lookup of Beaker's name goes to the
// worker's own resolver (systemd-resolved's stub, as a CI job's lookups do), whatever the earlier ones are
// doing. A lookup that does not bring Beaker's address within LOOKUP_TIMEOUT_MS failed.
import { existsSync, readFileSync } from "node:fs";
import type { Host } from "../netns.ts";
import { waitFor } from "../netns.ts";

export const LOOKUP_INTERVAL_MS = 100;
/** As ping's -W 2: an answer within 2 s counts (a CI job's resolver waits longer still). */
export const LOOKUP_TIMEOUT_MS = 2_000;

/**
 * The prober, run by node in the worker's namespaces: one line of JSON per lookup, when it ends. On SIGINT it
 * sends no more and exits once every lookup sent has ended (each is bounded by the timeout).
 */
const PROBER = `
const { Resolver } = require("node:dns").promises;
const [name, expected, interval, timeout] = process.argv.slice(1);
const resolver = new Resolver({ timeout: Number(timeout), tries: 1 });
resolver.setServers(["127.0.0.53"]);
let seq = 0;
let pending = 0;
const lookup = () => {
  const s = ++seq;
  const sentAt = Date.now();
  pending++;
  resolver.resolve4(name).then(
    (a) => ({ ok: a.includes(expected), answer: a.join(",") }),
    (e) => ({ ok: false, answer: String(e.code) }),
  ).then((r) => {
    const endedAt = Date.now();
    const ok = r.ok && endedAt - sentAt <= Number(timeout);
    process.stdout.write(JSON.stringify({ seq: s, sentAt, endedAt, ok, answer: r.answer }) + "\\n");
    pending--;
  });
};
const timer = setInterval(lookup, Number(interval));
lookup();
process.on("SIGINT", () => {
  clearInterval(timer);
  setInterval(() => pending === 0 && process.exit(0), 20);
});
`;

export interface Lookup {
  readonly seq: number;
  readonly sentAt: number;
  readonly endedAt: number;
  readonly ok: boolean;
  /** The addresses it got, or the resolver's error code. */
  readonly answer: string;
}

export interface LookupResult {
  readonly az: string;
  readonly sent: number;
  readonly failed: number;
  /** Each failed lookup: when it was sent, and what it got, for the evidence. */
  readonly failures: readonly Lookup[];
  /** The longest time between the sending of two lookups that got their answer, in seconds. */
  readonly longestGapSeconds: number;
  /** When lookups were back for good: the first success sent after the last failure (undefined: none failed). */
  readonly backAt: number | undefined;
}

/** Starts looking `name` up from a worker every LOOKUP_INTERVAL_MS; the returned function stops it. */
export const startLookups = (
  host: Host,
  az: string,
  log: string,
  name: string,
  expected: string,
): (() => Promise<LookupResult>) => {
  const pid = host.start(
    [process.execPath, "-e", PROBER, name, expected, String(LOOKUP_INTERVAL_MS), String(LOOKUP_TIMEOUT_MS)],
    log,
  );
  return async () => {
    process.kill(pid, "SIGINT");
    await waitFor("the lookups to end", () => !existsSync(`/proc/${pid}`), {
      timeoutMs: LOOKUP_TIMEOUT_MS + 3_000,
    });
    return parseLookups(az, readFileSync(log, "utf8"));
  };
};

/** Reads what the prober wrote: one JSON line per lookup, in the order they ended. */
export const parseLookups = (az: string, text: string): LookupResult => {
  const lookups = text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Lookup)
    .sort((a, b) => a.seq - b.seq);
  const failures = lookups.filter((l) => !l.ok);
  const lastFailure = failures.at(-1);
  const back = lastFailure && lookups.find((l) => l.ok && l.seq > lastFailure.seq);
  const answered = lookups.filter((l) => l.ok).map((l) => l.sentAt);
  let longest = LOOKUP_INTERVAL_MS;
  for (let i = 1; i < answered.length; i++)
    longest = Math.max(longest, (answered[i] as number) - (answered[i - 1] as number));
  return {
    az,
    sent: lookups.length,
    failed: failures.length,
    failures,
    longestGapSeconds: Number((longest / 1000).toFixed(1)),
    backAt: lastFailure ? (back?.sentAt ?? Number.POSITIVE_INFINITY) : undefined,
  };
};
