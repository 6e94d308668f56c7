// `npm run bench:cold-start`: what a Lambda cold start costs labgate's code. The handler is bundled as SST
// bundles it (esbuild, ESM, minified, the AWS SDK included), then a fresh Node process imports the bundle;
// the time of that import is the module initialisation a cold start adds to Lambda's own (runtime start-up
// is not counted: it is the same for every function).
import { execFileSync } from "node:child_process";
import { mkdirSync, statSync } from "node:fs";
import { build } from "esbuild";
import { labNamed, withPool } from "../../functions/local/sample-world.ts";

const out = new URL("../../.bench/handler.mjs", import.meta.url).pathname;
mkdirSync(new URL("../../.bench/", import.meta.url), { recursive: true });
await build({
  entryPoints: [new URL("../../functions/reconcile/handler.ts", import.meta.url).pathname],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node24",
  minify: true,
  outfile: out,
  // ESM bundles of CommonJS dependencies need `require`.
  banner: { js: "import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);" },
  logLevel: "error",
});

const probe = `const t=performance.now();await import(${JSON.stringify(out)});console.log(performance.now()-t);`;
const env = {
  ...process.env,
  LABGATE_CONFIG: JSON.stringify(withPool(labNamed("foo"), 8)),
  AWS_REGION: "eu-central-1",
  POWERTOOLS_LOG_LEVEL: "SILENT",
};
const runs = Array.from({ length: 15 }, () =>
  Number(
    execFileSync(process.execPath, ["--input-type=module", "-e", probe], { env, encoding: "utf8" }).trim(),
  ),
);
const sorted = [...runs].sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
console.log(
  `cold start: bundled handler ${(statSync(out).size / 1024).toFixed(0)} KiB; import (config parse, clients, logger) median ${median.toFixed(0)} ms, min ${sorted[0]?.toFixed(0)} ms, max ${sorted.at(-1)?.toFixed(0)} ms over ${runs.length} fresh processes (${process.version}, ${process.arch})`,
);
