// `npm run -s preflight -- <lab>`: prints the preflight of a lab of infra/labs.ts as a script of its own, to run
// on a runner image being built (exit 0: the setup can run there). README "Runner requirements".

import { labs } from "../../infra/labs.ts";
import { LabConfigSchema } from "../core/config.ts";
import { renderPreflight } from "../render/preflight.ts";

const name = process.argv[2];
const lab = labs.find((l) => l.name === name);
if (!lab) {
  console.error(
    `usage: npm run -s preflight -- <lab>   (a lab of infra/labs.ts: ${labs.map((l) => l.name).join(", ")})`,
  );
  process.exit(2);
}
process.stdout.write(renderPreflight(LabConfigSchema.parse(lab)));
