/**
 * `veritrail model get <runId> --out <dir>`: hands over a run's model only once the run verifies
 * with the trusted keys, and only bytes whose digest is the signed one: model.tar.gz, its files
 * unpacked under model/, the provenance and model-signature bundles and the key that verified them.
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as tar from 'tar';
import { digestsEqual } from '../../core/digest.js';
import { VeritrailError } from '../../core/errors.js';
import { factsOf } from '../../core/run-facts.js';
import { resolveHome } from '../../local/home.js';
import { copyModel } from '../../local/report.js';
import { openLocalRuntime } from '../../local/runtime.js';
import { verifyLocalRun } from '../../local/verify.js';
import { firstBroken, VerifyError } from '../../verify/codes.js';
import { describeTrusted, TRUST_OPTIONS, TRUST_USAGE, trustOptions } from '../../verify/trust.js';
import { parseCli, usageError } from '../args.js';
import { type CliIo, EXIT } from '../io.js';

export const summary = 'hand over the verified model files of a run';

const USAGE = `usage: veritrail model get <runId> --out <dir> (--key <pem> --audit-key <pem> | --trust <file> | --trust-state-keys) [--home <dir>]

  verifies the run first (as veritrail verify) and refuses when any check fails; then writes
  model.tar.gz (checked again against the signed digest as it is copied), its files under model/,
  provenance.sigstore.json, model-signature.sigstore.json and signing.pub.pem. <dir> must be
  absent or empty.
${TRUST_USAGE}`;

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCli(
    args,
    {
      out: { type: 'string' },
      home: { type: 'string' },
      ...TRUST_OPTIONS,
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (values.help) {
    io.out(USAGE);
    return EXIT.OK;
  }
  const [sub, runId, ...extra] = positionals;
  if (sub !== 'get' || runId === undefined || extra.length > 0)
    throw usageError('say "model get <runId> --out <dir>"', USAGE);
  if (!values.out) throw usageError('--out <dir> is required', USAGE);
  const out = resolve(io.cwd, values.out);
  const home = resolveHome(values.home, io.env, io.cwd);
  try {
    const { report, evidence, keys } = await verifyLocalRun(home, runId, await trustOptions(values, io.cwd));
    const run = evidence.run;
    const { modelDigest, modelKey } = factsOf(run);
    if (modelDigest === undefined || modelKey === undefined) {
      io.err(`veritrail model: run ${runId} has no model: it ended (${run.status}) before training`);
      return EXIT.FAILED;
    }
    const broken = firstBroken(report.checks);
    if (broken) {
      io.err(
        `veritrail model: run ${runId} does NOT verify, so its model is not handed over: first broken link ${broken.name} [${broken.code}] ${broken.detail}`,
      );
      return EXIT.FAILED;
    }
    const existing = await readdir(out).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return [];
      throw usageError(`cannot use ${out}: ${e.message}`, USAGE);
    });
    if (existing.length > 0) throw usageError(`${out} is not empty; name a new folder`, USAGE);
    await mkdir(join(out, 'model'), { recursive: true });
    const rt = await openLocalRuntime(home);
    try {
      const written = await copyModel(rt.objects, run, join(out, 'model.tar.gz'));
      if (!digestsEqual(written, modelDigest)) {
        await rm(join(out, 'model.tar.gz'), { force: true });
        io.err(
          `veritrail model: the stored model changed while it was copied (${written}, signed ${modelDigest}); nothing handed over`,
        );
        return EXIT.FAILED;
      }
    } finally {
      await rt.close();
    }
    // tar refuses absolute paths and '..' by default (node-tar "preservePaths: false").
    await tar.x({ file: join(out, 'model.tar.gz'), cwd: join(out, 'model'), strict: true });
    const prov = evidence.bundles.provenance;
    const sig = evidence.bundles['model-signing'];
    if (prov) await writeFile(join(out, 'provenance.sigstore.json'), prov, { flag: 'wx' });
    if (sig) await writeFile(join(out, 'model-signature.sigstore.json'), sig, { flag: 'wx' });
    if (evidence.signingKey)
      await writeFile(join(out, 'signing.pub.pem'), evidence.signingKey.pem, { flag: 'wx' });
    const files = (await readdir(join(out, 'model'), { recursive: true, withFileTypes: true }))
      .filter((e) => e.isFile())
      .map((e) => e.name);
    io.out(
      [
        `model of run ${runId} (${run.status}) in ${out}`,
        `  model.tar.gz   ${modelDigest} (the signed digest)`,
        `  model/         ${files.length} file(s): ${files.join(', ')}`,
        '  provenance.sigstore.json, model-signature.sigstore.json, signing.pub.pem',
        `verified with: ${describeTrusted(keys).join('; ')}`,
        ...(run.status === 'REJECTED'
          ? ['the gate REJECTED this model: it is handed over for inspection, not for deployment']
          : []),
      ].join('\n'),
    );
    return EXIT.OK;
  } catch (e) {
    if (e instanceof VerifyError) {
      io.err(`veritrail model: ${e.message} [${e.code}]`);
      return e.code === 'RUN_NOT_FOUND' ? EXIT.FAILED : EXIT.USAGE;
    }
    if (e instanceof VeritrailError && e.code === 'RUN_NOT_FOUND') {
      io.err(`veritrail model: ${e.message}`);
      return EXIT.FAILED;
    }
    throw e;
  }
}
