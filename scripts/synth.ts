/**
 * `npm run synth [-- --stage <name>] [--bundle] [--out <dir>] [--region <r>] [--account <id>]`
 *
 * Synthesizes the SST v2 stacks offline (no AWS credentials, no network) and writes one
 * CloudFormation template per stack to out/cloudformation/<stack>.template.json, for cfn-lint,
 * checkov or a review. Without --bundle the Lambda code is a placeholder (every other property is
 * what `sst deploy` would deploy); with --bundle the handlers are built with esbuild as SST does.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { synthesizeApp } from '../stacks/synthesize.js';

export const DEFAULT_OUT_DIR = path.join('out', 'cloudformation');

const { values } = parseArgs({
  options: {
    stage: { type: 'string', default: 'synth' },
    bundle: { type: 'boolean', default: false },
    out: { type: 'string', default: DEFAULT_OUT_DIR },
    region: { type: 'string', default: 'eu-west-1' },
    account: { type: 'string', default: '123456789012' },
  },
});

const started = performance.now();
const out = path.resolve(values.out);
const app = await synthesizeApp({
  stage: values.stage,
  bundle: values.bundle,
  region: values.region,
  account: values.account,
  outdir: path.resolve('.sst', `synth-${values.stage}`),
});
const assembly = app.synth();
mkdirSync(out, { recursive: true });
for (const old of readdirSync(out)) if (old.endsWith('.template.json')) rmSync(path.join(out, old));
for (const stack of assembly.stacks) {
  writeFileSync(
    path.join(out, `${stack.stackName}.template.json`),
    `${JSON.stringify(stack.template, null, 2)}\n`,
  );
}
const ms = Math.round(performance.now() - started);
process.stdout.write(
  `wrote ${assembly.stacks.length} templates to ${path.relative(process.cwd(), out)} in ${ms} ms` +
    `${values.bundle ? '' : ' (placeholder function code; --bundle to build handlers)'}\n`,
);
// esbuild's service and SST's watchers keep handles open after a bundling synth: the templates are
// written, so end here rather than hang.
process.exit(0);
