/**
 * `veritrail report <runId>`: the run's model report, one self-contained HTML file rendered from
 * the run's signed report statement (src/report/). `veritrail report --check <file>` checks a
 * report file against the signed statement it carries.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { VeritrailError } from '../../core/errors.js';
import { DEFAULT_UNIT, parseUnitName } from '../../core/unit.js';
import { assertUnitKnown, resolveHome } from '../../local/home.js';
import { loadLocalReport } from '../../local/report.js';
import { trustedKeys, verifyLocalRun } from '../../local/verify.js';
import { checkReportHtml, renderRunReport } from '../../report/render.js';
import { VerifyError } from '../../verify/codes.js';
import { describeTrusted, TRUST_OPTIONS, TRUST_USAGE, trustOptions } from '../../verify/trust.js';
import { parseCli, usageError } from '../args.js';
import { type CliIo, EXIT } from '../io.js';

export const summary = 'the model report of a run: one self-contained HTML file';

const USAGE = `usage: veritrail report <runId> [--out <file.html>] [--json] [--home <dir>] [trust options]
       veritrail report --check <file.html> (--key <pem> | --trust-state-keys [--unit <unit>]) [--json]

  <runId>    renders the run's signed model report (model card / EU AI Act Annex IV sections,
             plots as inline SVG, chain of custody, audit trail) to --out (default
             report-<runId>.html). With trust options the run is verified first and the result is
             shown in the report. --json prints the signed statement instead.
  --check    checks that a report file carries a statement signed by a trusted key and is,
             byte for byte, its rendering; exit 1 otherwise
  --unit     with --check --trust-state-keys: the business unit whose state key to trust
             (default: the default unit's; a run id names its unit itself)
${TRUST_USAGE}`;

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCli(
    args,
    {
      out: { type: 'string' },
      json: { type: 'boolean' },
      home: { type: 'string' },
      check: { type: 'string' },
      unit: { type: 'string' },
      ...TRUST_OPTIONS,
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (values.help) {
    io.out(USAGE);
    return EXIT.OK;
  }
  const home = resolveHome(values.home, io.env, io.cwd);
  const trusting =
    (values.key ?? []).length > 0 ||
    (values['audit-key'] ?? []).length > 0 ||
    values.trust !== undefined ||
    values['trust-state-keys'] === true;
  try {
    if (values.unit !== undefined && (values.check === undefined || values['trust-state-keys'] !== true))
      throw usageError('--unit goes with --check --trust-state-keys (a run id names its unit itself)', USAGE);
    if (values.check !== undefined) {
      if (positionals.length > 0) throw usageError('give either a run id or --check <file>, not both', USAGE);
      let unit = DEFAULT_UNIT;
      if (values.unit !== undefined) {
        unit = parseUnitName(values.unit);
        await assertUnitKnown(home, unit);
      }
      // Only a signing key is needed: the report file carries no audit checkpoint to check.
      const keys = await trustedKeys(home, await trustOptions(values, io.cwd), { audit: false }, unit);
      let html: string;
      try {
        html = await readFile(resolve(io.cwd, values.check), 'utf8');
      } catch (e) {
        throw usageError(`--check ${values.check} cannot be read: ${(e as Error).message}`, USAGE);
      }
      const r = await checkReportHtml(html, keys.signing);
      if (values.json) io.out(JSON.stringify(r));
      else
        io.out(
          [
            ...r.checks.map(
              (c) =>
                `  ${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(18)} ${c.ok ? '' : `${c.code}: `}${c.detail}`,
            ),
            '',
            r.ok ? `verified: ${values.check} is the signed report` : `NOT VERIFIED: ${values.check}`,
          ].join('\n'),
        );
      return r.ok ? EXIT.OK : EXIT.FAILED;
    }
    if (positionals.length !== 1) throw usageError('name exactly one run id (or use --check <file>)', USAGE);
    const runId = positionals[0] as string;
    const verified = trusting
      ? await verifyLocalRun(home, runId, await trustOptions(values, io.cwd))
      : undefined;
    const local = await loadLocalReport(home, runId);
    if (local.producedNow)
      io.err(
        `veritrail report: run ${runId} had no report statement (it ended before reports existed); one was signed now with the state dir's key`,
      );
    if (values.json) {
      io.out(
        JSON.stringify({
          statementDigest: local.statementDigest,
          statement: local.statement,
          bundle: local.bundle,
        }),
      );
      return EXIT.OK;
    }
    const html = await renderRunReport(local, verified);
    const out = resolve(io.cwd, values.out ?? `report-${runId}.html`);
    await writeFile(out, html);
    io.out(
      [
        `report of run ${runId} (${local.statement.predicate.status}) written to ${out}`,
        `signed statement ${local.statementDigest} (model-report/v1)`,
        verified
          ? `verified with: ${describeTrusted(verified.keys).join('; ')}: ${verified.report.ok ? 'every check holds' : 'some checks FAIL (see the report, section 7)'}`
          : 'not verified (name trusted keys with --key/--audit-key, --trust or --trust-state-keys to include verification)',
        `check it with: veritrail report --check ${values.out ?? `report-${runId}.html`} --key <signing.pub.pem>`,
      ].join('\n'),
    );
    return EXIT.OK;
  } catch (e) {
    if (e instanceof VerifyError) {
      io.err(`veritrail report: ${e.message} [${e.code}]`);
      return e.code === 'RUN_NOT_FOUND' ? EXIT.FAILED : EXIT.USAGE;
    }
    if (e instanceof VeritrailError && e.code === 'RUN_NOT_FOUND') {
      io.err(`veritrail report: ${e.message}`);
      return EXIT.FAILED;
    }
    throw e;
  }
}
