/**
 * Readers that turn a predictions file's rows into confusion counts, streamed in constant memory:
 * the binary label/prediction rule of a row, and JSON Lines columns (CSV columns: CsvReader in src/core/csv.ts).
 * `veritrail fairness` (src/cli/commands/fairness.ts) reads files through them.
 */
import { VeritrailError } from '../errors.js';
import { FairnessAccumulator } from './counts.js';

/** Which columns hold what, and how a label, prediction or score becomes binary. */
export interface FairnessRowOptions {
  label: string;
  /** Column of predicted labels; or `score` with `threshold`. */
  prediction: string | undefined;
  score: string | undefined;
  threshold: number;
  protected: string[];
  groupBy: string | undefined;
  /** The positive class of label and prediction. */
  positive: string;
}

/**
 * Turns the raw strings of one row into a binary label, a binary prediction and the group values.
 * A label or prediction column with a third distinct value is an error: the metrics are binary, and
 * silently calling every other value negative would hide a wrong --positive.
 */
export class FairnessRowSink {
  readonly acc: FairnessAccumulator;
  private readonly groups: string[];
  private negLabel: string | undefined;
  private negPred: string | undefined;

  constructor(private readonly o: FairnessRowOptions) {
    const attrs = o.groupBy === undefined ? o.protected : [...o.protected, o.groupBy];
    this.acc = new FairnessAccumulator(attrs);
    this.groups = new Array(attrs.length).fill('');
  }

  /** `values` = [label, prediction-or-score, ...groups]. */
  row(values: readonly string[], line: number): void {
    const l = values[0] as string;
    let label: boolean;
    if (l === this.o.positive) label = true;
    else if (l === this.negLabel) label = false;
    else if (this.negLabel === undefined) {
      this.negLabel = l;
      label = false;
    } else this.third(line, this.o.label, l, this.negLabel);
    const p = values[1] as string;
    let pred: boolean;
    if (this.o.score !== undefined) {
      const s = p.trim() === '' ? Number.NaN : Number(p);
      if (!Number.isFinite(s)) this.fail(line, `score "${p}" in column ${this.o.score} is not a number`);
      pred = s >= this.o.threshold;
    } else if (p === this.o.positive) pred = true;
    else if (p === this.negPred) pred = false;
    else if (this.negPred === undefined) {
      this.negPred = p;
      pred = false;
    } else this.third(line, this.o.prediction as string, p, this.negPred);
    const g = this.groups;
    for (let i = 0; i < g.length; i++) g[i] = values[i + 2] as string;
    this.acc.add(g, label, pred);
  }

  private third(line: number, col: string, v: string, neg: string): never {
    this.fail(
      line,
      `column ${col} has a third distinct value "${v}" besides "${this.o.positive}" (positive) and "${neg}"; the metrics need binary labels — set --positive or binarize the column`,
    );
  }

  private fail(line: number, msg: string): never {
    throw new VeritrailError('DATASET_VALUE', `line ${line}: ${msg}`, { details: { line } });
  }
}

/**
 * Reads JSON Lines (one object per line, blank lines skipped) and hands the named fields of each
 * line, as strings, to `sink.row` with the line number.
 */
export async function readJsonLines(
  stream: AsyncIterable<unknown>,
  names: string[],
  sink: Pick<FairnessRowSink, 'row'>,
): Promise<void> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const values: string[] = new Array(names.length).fill('');
  let carry: Buffer | null = null;
  let line = 0;
  const handle = (bytes: Buffer): void => {
    line++;
    let text: string;
    try {
      text = decoder.decode(bytes).trim();
    } catch (e) {
      throw new VeritrailError('DATASET_VALUE', `line ${line}: not valid UTF-8`, {
        cause: e,
        details: { line },
      });
    }
    if (text === '') return;
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      throw new VeritrailError('DATASET_VALUE', `line ${line}: not valid JSON (${(e as Error).message})`, {
        cause: e,
        details: { line },
      });
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      throw new VeritrailError('DATASET_VALUE', `line ${line}: each line must be a JSON object`, {
        details: { line },
      });
    }
    const rec = obj as Record<string, unknown>;
    names.forEach((n, j) => {
      const v = rec[n];
      if (typeof v === 'string') values[j] = v;
      else if (typeof v === 'number' || typeof v === 'boolean') values[j] = String(v);
      else {
        throw new VeritrailError(
          'DATASET_VALUE',
          `line ${line}: field "${n}" is ${v === undefined ? 'missing' : 'not a string, number or boolean'}`,
          { details: { line, column: n } },
        );
      }
    });
    sink.row(values, line);
  };
  for await (const chunk of stream) {
    let buf = chunk as Buffer;
    if (carry !== null) {
      buf = Buffer.concat([carry, buf]);
      carry = null;
    }
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(10, start);
      if (nl < 0) break;
      handle(buf.subarray(start, nl));
      start = nl + 1;
    }
    if (start < buf.length) carry = Buffer.from(buf.subarray(start));
  }
  if (carry !== null) handle(carry);
}
