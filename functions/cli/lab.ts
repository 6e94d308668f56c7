// `npm run lab -- [up|status|replace <runner>|kill <runner>|cut-tunnel <runner>|down]`: labgate on a lab in
// a box (network namespaces on this machine, real NetworkManager, OpenVPN, iptables, systemd-resolved).
// The core plans, the local provider applies; lifecycle hooks, state changes and alarms come from commands.
import { platform } from "node:os";
import { join } from "node:path";
import { missingPrograms } from "../local/hosts.ts";
import { LabError, LocalLab } from "../local/lab/lab.ts";
import { labObservability } from "../reconcile/observability.ts";
import { parseLabArgs, USAGE } from "./lab-args.ts";
import { formatReport, formatTable } from "./report-table.ts";

const DIR = join(process.cwd(), ".lab");
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

const main = async (): Promise<void> => {
  const { command, target, credentialKind } = parseLabArgs(process.argv.slice(2), process.env);
  process.env.POWERTOOLS_METRICS_DISABLED = "true";
  const observability = labObservability("foo", { quiet: true });
  const needTarget = (): string => {
    if (!target) throw new LabError(`${command} needs a runner\n${USAGE}`);
    return target;
  };
  if (command === "help" || command === "--help") return void console.log(USAGE);
  await prerequisites();
  if (command === "up") {
    console.log(
      `bringing the lab up: 2 AZs, 2 runners each, a worker per AZ, the lab's VPN servers (${credentialKind} credentials), DNS and Beaker...`,
    );
    const lab = await LocalLab.up(DIR, observability, { credentialKind });
    for (const h of lab.history) console.log(`\n${formatReport(h.report)}`);
    console.log(`\n${formatTable(await lab.status())}\n\n${formatTable(await lab.workerStatus())}`);
    console.log(
      `\nthe lab is up (state in ${DIR}); try \`npm run lab -- replace a1\`, \`kill a1\`, \`cut-tunnel b1\`, \`down\``,
    );
    return;
  }
  const lab = LocalLab.load(DIR, observability);
  switch (command) {
    case "status":
      break;
    case "down":
      await lab.down();
      console.log("the lab is down: its processes are stopped and its namespaces deleted");
      return;
    case "replace":
      await lab.replace(lab.resolve(needTarget()));
      break;
    case "kill":
      await lab.kill(lab.resolve(needTarget()));
      await lab.settle();
      break;
    case "cut-tunnel":
      await lab.cutTunnel(lab.resolve(needTarget()));
      await lab.settle();
      break;
    default:
      throw new LabError(`unknown command ${command}\n${USAGE}`);
  }
  for (const h of lab.history) console.log(`\n${formatReport(h.report)}`);
  console.log(`\n${formatTable(await lab.status())}\n\n${formatTable(await lab.workerStatus())}`);
};

main().catch((error: unknown) => {
  console.error(error instanceof LabError ? `lab: ${error.message}` : error);
  process.exitCode = 1;
});
