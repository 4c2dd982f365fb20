/** `veritrail export <runId> --out <dir>`: an evidence folder for auditors (src/verify/export.ts). */
import { resolve } from 'node:path';
import { VeritrailError } from '../../core/errors.js';
import { factsOf } from '../../core/run-facts.js';
import { resolveHome } from '../../local/home.js';
import { copyModel, loadLocalReport } from '../../local/report.js';
import { openLocalRuntime } from '../../local/runtime.js';
import { verifyLocalRun } from '../../local/verify.js';
import { renderRunReport } from '../../report/render.js';
import { firstBroken, VerifyError } from '../../verify/codes.js';
import { writeEvidenceFolder } from '../../verify/export.js';
import { describeTrusted, TRUST_OPTIONS, TRUST_USAGE, trustOptions } from '../../verify/trust.js';
import { parseCli, usageError } from '../args.js';
import { type CliIo, EXIT } from '../io.js';

export const summary = 'write an evidence folder for auditors';

const USAGE = `usage: veritrail export <runId> --out <dir> (--key <pem> --audit-key <pem> | --trust <file> | --trust-state-keys)
                        [--without-model] [--home <dir>]

  writes the model (model.tar.gz), every bundle, the signed model report (report.sigstore.json) and its
  rendering (report.html), the manifests, the fairness report and gate decision, the public keys that
  verified, the run's audit entries with inclusion proofs and the signed checkpoint, SHA256SUMS,
  VERIFY.md (how to check each file by hand with openssl) and verify.sh (the same, with sh,
  coreutils and openssl only). <dir> must be absent or empty. Exit 1 when the run does not verify
  (the folder is still written).
${TRUST_USAGE}
  --without-model    leave model.tar.gz out; the folder and verify.sh then say it was not checked`;

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCli(
    args,
    {
      out: { type: 'string' },
      home: { type: 'string' },
      'without-model': { type: 'boolean' },
      ...TRUST_OPTIONS,
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (values.help) {
    io.out(USAGE);
    return EXIT.OK;
  }
  if (positionals.length !== 1) throw usageError('name exactly one run id', USAGE);
  if (!values.out) throw usageError('--out <dir> is required', USAGE);
  const runId = positionals[0] as string;
  const out = resolve(io.cwd, values.out);
  const home = resolveHome(values.home, io.env, io.cwd);
  try {
    const { report, evidence, keys } = await verifyLocalRun(home, runId, await trustOptions(values, io.cwd));
    const local = await loadLocalReport(home, runId);
    const html = await renderRunReport(local, { report, evidence, keys });
    const { modelDigest, modelKey } = factsOf(evidence.run);
    const hasModel = modelKey !== undefined;
    const rt = hasModel && !values['without-model'] ? await openLocalRuntime(home) : undefined;
    let files: string[];
    try {
      files = await writeEvidenceFolder(out, evidence, keys, report, {
        report: { bundle: local.bundleBytes, html },
        ...(rt ? { model: (dest: string) => copyModel(rt.objects, evidence.run, dest) } : {}),
        ...(hasModel && values['without-model'] ? { withoutModel: { digest: String(modelDigest) } } : {}),
      });
    } finally {
      await rt?.close();
    }
    io.out(
      [
        `exported ${files.length} files to ${out}`,
        ...(values['without-model'] && hasModel
          ? ['the model is NOT in this folder (--without-model): verify.sh will say it was not checked']
          : []),
        'trusted keys:',
        ...describeTrusted(keys).map((k) => `  ${k}`),
        `check them with: sh ${values.out}/verify.sh   (or read ${values.out}/VERIFY.md)`,
      ].join('\n'),
    );
    if (local.producedNow)
      io.err(
        `veritrail export: run ${runId} had no report statement (it ended before reports existed); one was signed now with the state dir's key`,
      );
    const broken = firstBroken(report.checks);
    if (broken) {
      io.err(
        `veritrail export: run ${runId} does NOT verify: first broken link ${broken.name} [${broken.code}] ${broken.detail}`,
      );
      return EXIT.FAILED;
    }
    return EXIT.OK;
  } catch (e) {
    if (e instanceof VerifyError) {
      io.err(`veritrail export: ${e.message} [${e.code}]`);
      return e.code === 'RUN_NOT_FOUND' ? EXIT.FAILED : EXIT.USAGE;
    }
    if (e instanceof VeritrailError && e.code === 'RUN_NOT_FOUND') {
      io.err(`veritrail export: ${e.message}`);
      return EXIT.FAILED;
    }
    throw e;
  }
}
