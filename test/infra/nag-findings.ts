/**
 * Child process of test/infra/compliance.test.ts: synthesizes the app offline (placeholder code, the
 * settings in its environment), applies the four cdk-nag packs and writes one JSON file (NAG_OUT,
 * with the templates): every
 * unsuppressed finding (errors and warnings) and every suppression that was used, with its reason.
 * A process of its own because SST keeps one app per process and the settings are read from the
 * environment at synth time.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { synthesizeApp } from '../../stacks/synthesize.js';
import { applyPacks, collectNag } from './nag.js';

const root = path.resolve(import.meta.dirname, '../..');
const app = await synthesizeApp({
  stage: process.env.NAG_STAGE ?? 'nag',
  root,
  outdir: path.join(root, '.sst', `synth-${process.env.NAG_STAGE ?? 'nag'}`),
});
applyPacks(app);
const assembly = app.synth();
const { findings, suppressed } = collectNag(assembly);
// To a file (NAG_OUT): the process exits right after (SST and esbuild keep handles open), which
// would cut short a large write to a pipe.
const out = process.env.NAG_OUT;
if (!out) throw new Error('NAG_OUT (the JSON file to write) is not set');
writeFileSync(
  out,
  JSON.stringify({
    findings,
    suppressed,
    templates: assembly.stacks.map((s) => ({ name: s.stackName, template: s.template })),
  }),
);
process.exit(0);
