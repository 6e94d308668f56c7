// `npm run lab -- [up|status|replace <runner>|kill <runner>|cut-tunnel <runner>|rotate <runner>|down]`: labgate on a lab in
// a box (network namespaces on this machine, real NetworkManager, OpenVPN, iptables, systemd-resolved).
// The core plans, the local provider applies; lifecycle hooks, state changes and alarms come from commands.
// The lab lives in .lab/ (LABGATE_LAB_DIR overrides it). Ctrl-C during bring-up removes what it made.
import { constants, platform } from "node:os";
import { join } from "node:path";
import { missingPrograms } from "../local/hosts.ts";
import { LabError, LocalLab } from "../local/lab/lab.ts";
import { labObservability } from "../reconcile/observability.ts";
import type { CredentialKind } from "../render/keyfile.ts";
import { LAB_USAGE, type LabCommand, LabUsageError, parseLabArgs } from "./lab-args.ts";
import { formatReport, formatTable } from "./report-table.ts";

const DIR = process.env.LABGATE_LAB_DIR || join(process.cwd(), ".lab");

const prerequisites = async (): Promise<void> => {
  if (platform() !== "linux")
    throw new LabError(`the lab needs Linux network namespaces (this is ${platform()})`);
  if (process.getuid?.() !== 0)
    throw new LabError("the lab needs root (network namespaces, iptables, NetworkManager): run it as root");
  const missing = await missingPrograms();
  if (missing.length > 0) {
    throw new LabError(
      `missing: ${missing.join(", ")}\ninstall them with: xargs -a .ci/apt-packages.txt apt-get install -y --no-install-recommends && bash .ci/install-resolved.sh`,
    );
  }
};

const started = performance.now();
/** A step as it happens, with the time since the command started. */
const step = (text: string): void => {
  console.log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}`);
};

// Ctrl-C (or SIGTERM) during bring-up stops it, and the bring-up removes what it made; a repeated signal
// (a terminal sends one, npm and tsx relay more) changes nothing. Any other command just ends: its state
// file covers whatever it made, for `down`.
const interruption = new AbortController();
let bringingUp = false;
const onSignal = (signal: NodeJS.Signals): void => {
  if (!bringingUp) process.exit(128 + constants.signals[signal]);
  if (interruption.signal.aborted) return;
  console.error(`\n${signal}: stopping the bring-up and removing what it made...`);
  interruption.abort();
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

const printLab = async (lab: LocalLab, reach?: ReadonlyMap<string, string>): Promise<void> => {
  console.log(`\n${formatTable(await lab.status())}\n\n${formatTable(await lab.workerStatus(reach))}`);
};

const up = async (
  observability: ReturnType<typeof labObservability>,
  credentialKind: CredentialKind,
): Promise<void> => {
  bringingUp = true;
  let lab: LocalLab;
  try {
    step(`bringing the lab up with ${credentialKind} credentials`);
    lab = await LocalLab.up(DIR, observability, {
      onStep: step,
      signal: interruption.signal,
      credentialKind,
    });
  } finally {
    bringingUp = false;
  }
  step("the lab is up");
  await printLab(lab);
  console.log(
    `\nstate in ${DIR}; try \`npm run lab -- replace carrier-a\`, \`kill carrier-b\`, \`cut-tunnel carrier-a\`, \`status\`, \`down\``,
  );
};

const act = async (lab: LocalLab, command: LabCommand): Promise<void> => {
  if (!("runner" in command)) return;
  const id = await lab.resolve(command.runner);
  step(`${command.command} ${command.runner} (${id})`);
  if (command.command === "replace") {
    await lab.replace(id);
  } else if (command.command === "rotate") {
    const added = await lab.rotate(id);
    step(`${id}'s key retired; ${added} added to the pool`);
  } else if (command.command === "kill") {
    await lab.kill(id);
    await lab.settle();
  } else {
    await lab.cutTunnel(id);
    await lab.settle();
  }
};

const main = async (): Promise<void> => {
  const command = parseLabArgs(process.argv.slice(2), process.env);
  if (command.command === "help") return void console.log(LAB_USAGE);
  process.env.POWERTOOLS_METRICS_DISABLED = "true";
  const observability = labObservability("foo", { quiet: true });
  // What the lab's state says comes before what this machine lacks: both are true, the first is the news.
  if (command.command === "up") {
    const obstacle = LocalLab.obstacle(DIR);
    if (obstacle) throw new LabError(obstacle);
    await prerequisites();
    return up(observability, command.credentialKind);
  }
  if (command.command === "down") {
    if (!LocalLab.exists(DIR))
      return void console.log(`no lab is up (nothing in ${DIR}): nothing to take down`);
    await prerequisites();
    await LocalLab.down(DIR, observability);
    console.log("the lab is down: its processes are stopped, its namespaces and files deleted");
    return;
  }
  const lab = LocalLab.load(DIR, observability);
  await prerequisites();
  lab.onStep = step;
  await act(lab, command);
  // Every runner reports its tunnel's health, as its timer does every 10 s in AWS, and labgate hears of
  // changes; meanwhile the workers try Beaker (each probe is bounded, the two together take the longer).
  const [reach] = await Promise.all([lab.probeWorkers(), lab.reportAllHealth().then(() => lab.settle())]);
  for (const h of lab.history) console.log(`\n${formatReport(h.report)}`);
  await printLab(lab, reach);
};

main().catch((error: unknown) => {
  if (error instanceof LabUsageError) {
    console.error(`lab: ${error.message}`);
    process.exitCode = 2;
    return;
  }
  console.error(error instanceof LabError ? `lab: ${error.message}` : error);
  process.exitCode = interruption.signal.aborted ? 130 : 1;
});
