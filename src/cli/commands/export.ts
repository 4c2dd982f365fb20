/** `veritrail export <runId> --out <dir>`: an evidence folder for auditors (src/verify/export.ts). */
import { resolve } from 'node:path';
import { resolveHome } from '../../local/home.js';
import { firstBroken, VerifyError } from '../../verify/codes.js';
import { writeEvidenceFolder } from '../../verify/export.js';
import { verifyLocalRun } from '../../verify/local.js';
import { parseCli, usageError } from '../args.js';
import { type CliIo, EXIT } from '../io.js';

export const summary = 'write an evidence folder for auditors';

const USAGE = `usage: veritrail export <runId> --out <dir> [--home <dir>]

  writes every bundle, the manifests, the fairness report and gate decision, both public keys,
  the run's audit entries with inclusion proofs and the signed checkpoint, SHA256SUMS,
  VERIFY.md (how to check each signature by hand with openssl) and verify.sh (the same, scripted).
  <dir> must be absent or empty. Exit 1 when the run does not verify (the folder is still written).`;

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCli(
    args,
    { out: { type: 'string' }, home: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
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
  try {
    const { report, evidence, keys } = await verifyLocalRun(resolveHome(values.home, io.env, io.cwd), runId);
    const files = await writeEvidenceFolder(out, evidence, keys, report);
    io.out(
      `exported ${files.length} files to ${out}\ncheck them with: sh ${values.out}/verify.sh   (or read ${values.out}/VERIFY.md)`,
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
    throw e;
  }
}
