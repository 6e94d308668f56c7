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
  // What infra/reconciler.ts sets on the function, so that the import does all a cold start does.
  LABGATE_CONFIG: JSON.stringify(withPool(labNamed("foo"), 8)),
  LABGATE_STORE_TABLE: "labgate-bench-store",
  LABGATE_REQUEUE: JSON.stringify({
    schedule: "labgate-bench-foo-requeue",
    functionArn: "arn:aws:lambda:eu-central-1:123456789012:function:labgate-bench-foo",
    roleArn: "arn:aws:iam::123456789012:role/labgate-bench-foo-requeue-invoke",
  }),
  LABGATE_AWS_ACCOUNT: JSON.stringify({ partition: "aws", region: "eu-central-1", account: "123456789012" }),
  AWS_REGION: "eu-central-1",
  POWERTOOLS_LOG_LEVEL: "SILENT",
};
const RUNS = 15;
const median = (values: readonly number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const spread = (values: readonly number[]): string =>
  `median ${median(values).toFixed(0)} ms, min ${Math.min(...values).toFixed(0)} ms, max ${Math.max(...values).toFixed(0)} ms`;

// Each round: the import, timed inside a fresh process; then a bare Node start on the same machine, timed
// from outside (spawn to exit), the yardstick that makes the figure comparable between machines as a ratio.
// Interleaved, so that a busy moment weighs on both alike.
const imports: number[] = [];
const bare: number[] = [];
for (let i = 0; i < RUNS; i++) {
  imports.push(
    Number(
      execFileSync(process.execPath, ["--input-type=module", "-e", probe], { env, encoding: "utf8" }).trim(),
    ),
  );
  const t = performance.now();
  execFileSync(process.execPath, ["-e", "0"]);
  bare.push(performance.now() - t);
}

console.log(
  `cold start: bundled handler ${(statSync(out).size / 1024).toFixed(0)} KiB; import (config parse, clients, logger) ${spread(imports)} over ${RUNS} fresh processes (${process.version}, ${process.arch})`,
);
console.log(`bare \`node -e 0\` start on this machine: ${spread(bare)} over ${RUNS} processes`);
console.log(
  `ratio: the import costs ${(median(imports) / median(bare)).toFixed(1)} bare Node starts (compare this between machines, not the milliseconds)`,
);
