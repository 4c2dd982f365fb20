/**
 * `veritrail verify <runId>`: checks a run's whole chain of custody offline (src/verify/run.ts);
 * `veritrail verify --bundle <file> --key <pem> [--artifact <path>]`: one bundle, no state dir.
 */

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseVkey } from '../../core/cosignature.js';
import { isVeritrailError } from '../../core/errors.js';
import { resolveHome } from '../../local/home.js';
import { verifyLocalRun } from '../../local/verify.js';
import { verifySingleBundle } from '../../verify/bundle.js';
import { firstBroken, type VerifyCheck, VerifyError, type VerifyReport } from '../../verify/codes.js';
import { describeTrusted, TRUST_OPTIONS, TRUST_USAGE, trustOptions } from '../../verify/trust.js';
import { parseCli, usageError } from '../args.js';
import { type CliIo, EXIT } from '../io.js';

export const summary = 'check signatures, digests and links offline';

const USAGE = `usage: veritrail verify <runId> (--key <pem> --audit-key <pem> | --trust <file> | --trust-state-keys) [--witness <vkey>…] [--json] [--home <dir>]
       veritrail verify <runId> --stage <stage> (--key <pem> --audit-key <pem> | --trust <file> | --trust-stage-keys) [--witness <vkey>…] [--json]
       veritrail verify --bundle <file> --key <pem> [--artifact <path>] [--json]

  <runId>        checks every signature, every digest against the bytes, the links
                 raw -> processed -> model -> fairness -> gate, the run record, the audit
                 log's signed checkpoint and that the key the log records for each signature
                 is the key that verifies it; exit 0 only when every check holds
${TRUST_USAGE}
  --stage <stage>    a run of a deployed stage, read with your AWS credentials (an auditor assumes
                     the stage's read-only auditor role); the raw data is re-read at its pinned S3 versions
  --trust-stage-keys with --stage: trust the stage's own KMS attestation and checkpoint keys
  --witness <vkey>   a witness (C2SP verifier key name+keyid+key, repeatable): reports whether a
                     checkpoint it cosigned covers the run (audit.witnessed)
  --bundle       a single Sigstore bundle (DSSE, in-toto statement) to check with --key
  --artifact     the file (or folder) the bundle must name as a subject
  --json         prints {"ok", "trusted", "checks": [{"name", "ok", "code", "detail"}]}`;

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCli(
    args,
    {
      json: { type: 'boolean' },
      home: { type: 'string' },
      stage: { type: 'string' },
      'trust-stage-keys': { type: 'boolean' },
      ...TRUST_OPTIONS,
      witness: { type: 'string', multiple: true },
      bundle: { type: 'string' },
      artifact: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (values.help) {
    io.out(USAGE);
    return EXIT.OK;
  }
  const readPem = async (p: string | undefined, flag: string): Promise<string | undefined> => {
    if (p === undefined) return undefined;
    try {
      return await readFile(resolve(io.cwd, p), 'utf8');
    } catch (e) {
      throw usageError(`${flag} ${p} cannot be read: ${(e as Error).message}`, USAGE);
    }
  };

  if (values.bundle !== undefined) {
    if (positionals.length > 0) throw usageError('give either a run id or --bundle, not both', USAGE);
    if ((values.key ?? []).length > 1) throw usageError('--bundle takes one --key', USAGE);
    const key = await readPem(values.key?.[0], '--key');
    if (key === undefined) throw usageError('--bundle needs --key <public key PEM>', USAGE);
    let bundleText: string;
    try {
      bundleText = await readFile(resolve(io.cwd, values.bundle), 'utf8');
    } catch (e) {
      throw usageError(`--bundle ${values.bundle} cannot be read: ${(e as Error).message}`, USAGE);
    }
    let result: { ok: boolean; checks: VerifyCheck[] };
    try {
      result = await verifySingleBundle(
        bundleText,
        key,
        values.artifact === undefined ? {} : { artifact: resolve(io.cwd, values.artifact) },
      );
    } catch (e) {
      if (isVeritrailError(e)) {
        io.err(`veritrail verify: ${e.message}`);
        return EXIT.USAGE;
      }
      throw e;
    }
    print(io, { ...result, runId: '', status: '' }, values.json === true, `bundle ${values.bundle}`);
    return result.ok ? EXIT.OK : EXIT.FAILED;
  }

  if (positionals.length !== 1) throw usageError('name exactly one run id (or use --bundle)', USAGE);
  const runId = positionals[0] as string;
  const home = resolveHome(values.home, io.env, io.cwd);
  try {
    const witnesses = (values.witness ?? []).map((v) => {
      try {
        return parseVkey(v);
      } catch (e) {
        throw usageError(
          `--witness ${v} is not a verifier key (name+keyid+key): ${(e as Error).message}`,
          USAGE,
        );
      }
    });
    const trust = await trustOptions(values, io.cwd);
    if (values.stage === undefined && values['trust-stage-keys'])
      throw usageError('--trust-stage-keys needs --stage <stage>', USAGE);
    if (values.stage !== undefined && trust.stateKeys)
      throw usageError('--trust-state-keys is for a state dir; with --stage, use --trust-stage-keys', USAGE);
    const { report, keys } =
      values.stage === undefined
        ? await verifyLocalRun(home, runId, { ...trust, witnesses })
        : await (await import('../../aws/verify.js')).verifyDeployedRun(
            values.stage,
            runId,
            {
              ...(trust.signing ? { signing: trust.signing } : {}),
              ...(trust.audit ? { audit: trust.audit } : {}),
              stageKeys: values['trust-stage-keys'] === true,
              witnesses,
            },
            io.env,
          );
    print(io, report, values.json === true, `run ${runId} (${report.status})`, describeTrusted(keys));
    return report.ok ? EXIT.OK : EXIT.FAILED;
  } catch (e) {
    if (e instanceof VerifyError) {
      io.err(`veritrail verify: ${e.message} [${e.code}]`);
      return e.code === 'RUN_NOT_FOUND' ? EXIT.FAILED : EXIT.USAGE;
    }
    throw e;
  }
}

function print(io: CliIo, report: VerifyReport, json: boolean, what: string, trusted: string[] = []): void {
  if (json) {
    io.out(
      JSON.stringify({
        ok: report.ok,
        ...(report.runId ? { runId: report.runId, status: report.status } : {}),
        ...(trusted.length ? { trusted } : {}),
        checks: report.checks,
      }),
    );
    return;
  }
  const lines = trusted.length ? ['trusted keys:', ...trusted.map((t) => `  ${t}`), ''] : [];
  lines.push(
    ...report.checks.map(
      (c) => `  ${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(24)} ${c.ok ? '' : `${c.code}: `}${c.detail}`,
    ),
  );
  const broken = firstBroken(report.checks);
  if (broken === undefined) {
    lines.push('', `verified: ${what}: ${report.checks.length} checks hold`);
  } else {
    const n = report.checks.filter((c) => !c.ok).length;
    lines.push(
      '',
      `NOT VERIFIED: ${what}: first broken link ${broken.name} [${broken.code}] ${broken.detail}`,
      `(${n} of ${report.checks.length} checks fail)`,
    );
  }
  io.out(`${lines.join('\n')}\n`);
}
