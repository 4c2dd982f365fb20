/**
 * `veritrail fairness <file> ...`: fairness metrics of a predictions file (CSV or JSON Lines),
 * streamed in constant memory. Formulas and sources: docs/fairness-metrics.md.
 */
import { createReadStream } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CsvReader } from '../../core/csv.js';
import { isVeritrailError, VeritrailError } from '../../core/errors.js';
import {
  type FairnessAccumulator,
  type FairnessReport,
  FairnessRowSink,
  fairnessReport,
  readJsonLines,
} from '../../core/fairness/index.js';
import { parseOrExit } from '../args.js';
import { type CliIo, EXIT } from '../io.js';

export const summary = 'fairness metrics of a predictions file';

const USAGE = `usage: veritrail fairness <file> --label <col> (--prediction <col> | --score <col> --threshold <t>)
                          --protected <col>[,<col>...] [--privileged <col>=<value>]... [--positive <value>]
                          [--group-by <col>] [--bootstrap <n>] [--seed <n>] [--min-group-size <n>] [--json]

  <file>               CSV with a header line (RFC 4180), or JSON Lines when named *.jsonl / *.ndjson
  --label              column of observed labels
  --prediction         column of predicted labels
  --score, --threshold column of scores; a score >= threshold predicts the positive class
  --protected          protected attribute column(s); several give intersections too
  --privileged         privileged value of a protected column (facet a of the Clarify metrics)
  --positive           the positive class of label and prediction (default 1)
  --group-by           stratifying column for conditional demographic disparity (CDDL, CDDPL)
  --bootstrap          bootstrap samples for confidence intervals (default 1000; 0 turns them off)
  --seed               bootstrap seed (default 1)
  --min-group-size     groups with fewer rows are flagged (default 30)
  --json               print {"groups", "aggregates", "intervals", "warnings"} as JSON`;

interface Options {
  file: string;
  label: string;
  prediction: string | undefined;
  score: string | undefined;
  threshold: number;
  protected: string[];
  privileged: Record<string, string>;
  positive: string;
  groupBy: string | undefined;
  bootstrap: number;
  seed: number;
  minGroupSize: number;
  json: boolean;
}

export async function run(args: string[], io: CliIo): Promise<number> {
  const parsed = parseOrExit(io, 'fairness', USAGE, () => parseOptions(args));
  if (!parsed.ok) return parsed.exitCode;
  if (parsed.value === 'help') {
    io.out(USAGE);
    return EXIT.OK;
  }
  const opts: Options = parsed.value;
  try {
    const acc = await accumulate(resolve(io.cwd, opts.file), opts);
    const report = fairnessReport(acc.toCounts(), {
      attributes: opts.protected,
      privileged: opts.privileged,
      ...(opts.groupBy === undefined ? {} : { groupBy: opts.groupBy }),
      positive: opts.positive,
      bootstrap: { samples: opts.bootstrap, seed: opts.seed },
      minGroupSize: opts.minGroupSize,
    });
    if (acc.count === 0) report.warnings.unshift('the file has no data rows');
    io.out(opts.json ? JSON.stringify(report, null, 2) : renderTable(report));
    return EXIT.OK;
  } catch (e) {
    if (isVeritrailError(e)) {
      io.err(`veritrail fairness: ${e.message}`);
      return e.code.startsWith('DATASET_') || e.code === 'USAGE' ? EXIT.USAGE : EXIT.FAILED;
    }
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'EACCES') {
      io.err(`veritrail fairness: cannot read ${opts.file} (${String(code)}); check the path`);
      return EXIT.USAGE;
    }
    throw e;
  }
}

function parseOptions(args: string[]): Options | 'help' {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      label: { type: 'string' },
      prediction: { type: 'string' },
      score: { type: 'string' },
      threshold: { type: 'string' },
      protected: { type: 'string' },
      privileged: { type: 'string', multiple: true },
      positive: { type: 'string' },
      'group-by': { type: 'string' },
      bootstrap: { type: 'string' },
      seed: { type: 'string' },
      'min-group-size': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const bad = (msg: string): never => {
    throw new VeritrailError('USAGE', msg);
  };
  if (positionals.length !== 1) bad('give exactly one input file');
  if (values.label === undefined) bad('--label is required');
  const hasPred = values.prediction !== undefined;
  const hasScore = values.score !== undefined;
  if (hasPred === hasScore) bad('give either --prediction <col> or --score <col> --threshold <t>');
  if (hasScore && values.threshold === undefined) bad('--score needs --threshold');
  if (hasPred && values.threshold !== undefined) bad('--threshold only applies with --score');
  const threshold = values.threshold === undefined ? 0 : Number(values.threshold);
  if (!Number.isFinite(threshold)) bad(`--threshold must be a number, got "${values.threshold}"`);
  if (values.protected === undefined) bad('--protected is required');
  const prot = (values.protected ?? '').split(',').map((s) => s.trim());
  if (prot.some((p) => p === '')) bad('--protected takes a comma-separated list of column names');
  const privileged: Record<string, string> = {};
  for (const p of values.privileged ?? []) {
    const eq = p.indexOf('=');
    if (eq <= 0) bad(`--privileged takes <col>=<value>, got "${p}"`);
    const col = p.slice(0, eq);
    if (!prot.includes(col)) bad(`--privileged names "${col}", which is not a --protected column`);
    privileged[col] = p.slice(eq + 1);
  }
  const int = (name: string, v: string | undefined, dflt: number, max: number): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0 || n > max)
      bad(`--${name} must be an integer from 0 to ${max}, got "${v}"`);
    return n;
  };
  const label = values.label as string;
  const prediction = values.prediction ?? values.score;
  const groupBy = values['group-by'];
  const columns = [label, prediction, ...prot, ...(groupBy === undefined ? [] : [groupBy])];
  if (new Set(columns).size !== columns.length)
    bad('label, prediction/score, protected and group-by columns must all differ');
  return {
    file: positionals[0] as string,
    label,
    prediction: values.prediction,
    score: values.score,
    threshold,
    protected: prot,
    privileged,
    positive: values.positive ?? '1',
    groupBy,
    bootstrap: int('bootstrap', values.bootstrap, 1000, 100_000),
    seed: int('seed', values.seed, 1, Number.MAX_SAFE_INTEGER),
    minGroupSize: int('min-group-size', values['min-group-size'], 30, Number.MAX_SAFE_INTEGER),
    json: values.json ?? false,
  };
}

async function accumulate(path: string, o: Options): Promise<FairnessAccumulator> {
  const sink = new FairnessRowSink(o);
  const wantedNames = [
    o.label,
    (o.prediction ?? o.score) as string,
    ...o.protected,
    ...(o.groupBy === undefined ? [] : [o.groupBy]),
  ];
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  if (/\.(jsonl|ndjson)$/i.test(path)) {
    await readJsonLines(stream, wantedNames, sink);
    return sink.acc;
  }
  const reader = new CsvReader({
    header(names) {
      return wantedNames.map((w) => {
        const i = names.indexOf(w);
        if (i < 0) {
          throw new VeritrailError(
            'DATASET_SCHEMA',
            `column "${w}" is not in the CSV header (${names.join(', ')})`,
            {
              details: { column: w },
            },
          );
        }
        return i;
      });
    },
    record(values, line) {
      sink.row(values, line);
    },
  });
  for await (const chunk of stream) reader.push(chunk as Buffer);
  reader.end();
  return sink.acc;
}

function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined) return '—';
  return Number.isInteger(v) ? String(v) : v.toFixed(4);
}

function table(rows: string[][]): string {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The human-readable report: groups, then aggregates with their intervals, then warnings. */
export function renderTable(r: FairnessReport): string {
  const cols = [
    'count',
    'baseRate',
    'selectionRate',
    'tpr',
    'fpr',
    'tnr',
    'fnr',
    'ppv',
    'npv',
    'accuracy',
  ] as const;
  const groupRows = [['group', ...cols]];
  for (const [k, g] of Object.entries(r.groups)) groupRows.push([k, ...cols.map((c) => fmt(g[c]))]);
  const aggRows = [['aggregate', 'value', 'low', 'high']];
  for (const [k, v] of Object.entries(r.aggregates)) {
    const iv = r.intervals[k];
    aggRows.push([k, fmt(v), fmt(iv?.low), fmt(iv?.high)]);
  }
  const parts = [table(groupRows), '', table(aggRows)];
  if (r.warnings.length > 0) parts.push('', 'warnings:', ...r.warnings.map((w) => `  - ${w}`));
  return parts.join('\n');
}
