/**
 * Per-group confusion counts: the only sufficient statistic for every metric in this module.
 * Counts from shards merge by addition, which is how evaluation scales out (docs/design.md "Scale").
 */
import { VeritrailError } from '../errors.js';

/** One confusion matrix: true/false positives/negatives. */
export interface Cells {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

/** The JSON-able form of an accumulator: one entry per observed combination of attribute values. */
export interface FairnessCounts {
  version: 1;
  attributes: string[];
  /** Sorted by `values` (code-unit order) so that equal data gives byte-identical JSON. */
  cells: Array<{ values: string[] } & Cells>;
}

/** Index of a row's cell in a leaf: label * 2 + prediction → tn, fp, fn, tp. */
const TN = 0;
const FP = 1;
const FN = 2;
const TP = 3;

type Leaf = Float64Array;
type Node = Map<string, Node | Leaf>;

/** Above this many dense slots `addColumns` falls back to the per-row map path. */
const DENSE_LIMIT = 1 << 22;

/** A dictionary-encoded column: row i has value `values[codes[i]]`. */
export interface EncodedColumn {
  codes: ArrayLike<number>;
  values: readonly string[];
}

/**
 * Streams rows into per-group confusion counts. Groups are keyed by the tuple of attribute values,
 * held in a trie of Maps so that `add` does no allocation beyond the lookups (a joined `a|b` key would
 * build a string per row).
 */
export class FairnessAccumulator {
  readonly attributes: readonly string[];
  private readonly root: Node = new Map();
  private readonly depth: number;
  private rows = 0;

  constructor(attributes: readonly string[]) {
    if (attributes.length === 0) {
      throw new VeritrailError('USAGE', 'fairness needs at least one protected attribute');
    }
    if (new Set(attributes).size !== attributes.length) {
      throw new VeritrailError('USAGE', `fairness attributes must be distinct: ${attributes.join(', ')}`);
    }
    this.attributes = [...attributes];
    this.depth = attributes.length;
  }

  /** Number of rows added (including merged ones). */
  get count(): number {
    return this.rows;
  }

  /** Adds one row. `groupValues[i]` is the value of `attributes[i]`. */
  add(groupValues: readonly string[], label: boolean, prediction: boolean): void {
    if (groupValues.length !== this.depth) {
      throw new VeritrailError(
        'DATASET_VALUE',
        `a row has ${groupValues.length} attribute values but ${this.depth} attributes were declared`,
      );
    }
    const leaf = this.leaf(groupValues);
    const i = (label ? 2 : 0) + (prediction ? 1 : 0);
    leaf[i] = (leaf[i] as number) + 1;
    this.rows++;
  }

  /**
   * Adds a columnar batch: dictionary-encoded attributes; labels and predictions are integers where
   * 0 is negative and any positive integer (below 2³¹) is positive.
   * Counts into a dense typed array indexed by the combined code (the same single pass a hand-written
   * loop would do), then folds the non-empty slots into the trie.
   */
  addColumns(
    columns: readonly EncodedColumn[],
    labels: ArrayLike<number>,
    predictions: ArrayLike<number>,
  ): void {
    if (columns.length !== this.depth) {
      throw new VeritrailError(
        'DATASET_VALUE',
        `expected ${this.depth} attribute columns, got ${columns.length}`,
      );
    }
    const n = labels.length;
    // `-x >>> 31` is 1 for 0 < x < 2³¹ and 0 for 0: branch-free, because labels of real data are
    // unpredictable and a mispredicted branch per row costs more than the counting itself.
    if (predictions.length !== n || columns.some((c) => c.codes.length !== n)) {
      throw new VeritrailError('DATASET_VALUE', 'columnar input: all columns must have the same length');
    }
    let slots = 4;
    for (const c of columns) slots *= Math.max(1, c.values.length);
    if (slots > DENSE_LIMIT) {
      this.addColumnsSparse(columns, labels, predictions);
      return;
    }
    const dense = new Float64Array(slots);
    const c0 = columns[0] as EncodedColumn;
    const k0 = c0.values.length;
    const codes0 = c0.codes;
    if (this.depth === 1) {
      for (let i = 0; i < n; i++) {
        const slot =
          (codes0[i] as number) * 4 +
          ((-(labels[i] as number) >>> 31) << 1) +
          (-(predictions[i] as number) >>> 31);
        dense[slot] = (dense[slot] as number) + 1;
      }
    } else if (this.depth === 2) {
      const codes1 = (columns[1] as EncodedColumn).codes;
      for (let i = 0; i < n; i++) {
        const slot =
          ((codes0[i] as number) + k0 * (codes1[i] as number)) * 4 +
          ((-(labels[i] as number) >>> 31) << 1) +
          (-(predictions[i] as number) >>> 31);
        dense[slot] = (dense[slot] as number) + 1;
      }
    } else {
      for (let i = 0; i < n; i++) {
        let code = 0;
        for (let j = this.depth - 1; j >= 0; j--) {
          const c = columns[j] as EncodedColumn;
          code = code * c.values.length + (c.codes[i] as number);
        }
        const slot = code * 4 + ((-(labels[i] as number) >>> 31) << 1) + (-(predictions[i] as number) >>> 31);
        dense[slot] = (dense[slot] as number) + 1;
      }
    }
    this.foldDense(columns, dense);
    this.rows += n;
  }

  /** Adds every count of `other` (same attributes, same order) into this accumulator. */
  merge(other: FairnessAccumulator): this {
    if (other.attributes.join('\u0000') !== this.attributes.join('\u0000')) {
      throw new VeritrailError(
        'DATASET_VALUE',
        `cannot merge counts over [${other.attributes.join(', ')}] into [${this.attributes.join(', ')}]`,
      );
    }
    for (const cell of other.toCounts().cells) this.addCells(cell.values, cell);
    return this;
  }

  /** A JSON-able snapshot, sorted so equal data gives identical output. */
  toCounts(): FairnessCounts {
    const cells: FairnessCounts['cells'] = [];
    const path: string[] = [];
    const walk = (node: Node, level: number): void => {
      for (const [value, child] of node) {
        path.push(value);
        if (level === this.depth - 1) {
          const leaf = child as Leaf;
          cells.push({
            values: [...path],
            tp: leaf[TP] as number,
            fp: leaf[FP] as number,
            tn: leaf[TN] as number,
            fn: leaf[FN] as number,
          });
        } else {
          walk(child as Node, level + 1);
        }
        path.pop();
      }
    };
    walk(this.root, 0);
    cells.sort((a, b) => compareTuples(a.values, b.values));
    return { version: 1, attributes: [...this.attributes], cells };
  }

  /** Rebuilds an accumulator from `toCounts()` output (e.g. read back from a shard), validating it. */
  static fromCounts(counts: FairnessCounts): FairnessAccumulator {
    if (
      counts === null ||
      typeof counts !== 'object' ||
      counts.version !== 1 ||
      !Array.isArray(counts.attributes)
    ) {
      throw new VeritrailError('DATASET_VALUE', 'fairness counts: expected {version: 1, attributes, cells}');
    }
    const acc = new FairnessAccumulator(counts.attributes);
    if (!Array.isArray(counts.cells))
      throw new VeritrailError('DATASET_VALUE', 'fairness counts: cells must be a list');
    counts.cells.forEach((cell, i) => {
      const ok =
        Array.isArray(cell.values) &&
        cell.values.length === counts.attributes.length &&
        cell.values.every((v) => typeof v === 'string') &&
        [cell.tp, cell.fp, cell.tn, cell.fn].every((x) => Number.isSafeInteger(x) && x >= 0);
      if (!ok) {
        throw new VeritrailError(
          'DATASET_VALUE',
          `fairness counts: cell ${i} must have ${counts.attributes.length} string values and non-negative integer tp, fp, tn, fn`,
          { details: { cell: i } },
        );
      }
      acc.addCells(cell.values, cell);
    });
    return acc;
  }

  private addCells(values: readonly string[], c: Cells): void {
    const leaf = this.leaf(values);
    leaf[TP] = (leaf[TP] as number) + c.tp;
    leaf[FP] = (leaf[FP] as number) + c.fp;
    leaf[TN] = (leaf[TN] as number) + c.tn;
    leaf[FN] = (leaf[FN] as number) + c.fn;
    this.rows += c.tp + c.fp + c.tn + c.fn;
  }

  private leaf(values: readonly string[]): Leaf {
    let node = this.root;
    const last = this.depth - 1;
    for (let i = 0; i < last; i++) {
      const v = values[i] as string;
      let next = node.get(v) as Node | undefined;
      if (next === undefined) {
        next = new Map();
        node.set(v, next);
      }
      node = next;
    }
    const v = values[last] as string;
    let leaf = node.get(v) as Leaf | undefined;
    if (leaf === undefined) {
      leaf = new Float64Array(4);
      node.set(v, leaf);
    }
    return leaf;
  }

  private foldDense(columns: readonly EncodedColumn[], dense: Float64Array): void {
    const values: string[] = new Array(this.depth).fill('');
    for (let slot = 0; slot < dense.length; slot += 4) {
      if (dense[slot] === 0 && dense[slot + 1] === 0 && dense[slot + 2] === 0 && dense[slot + 3] === 0)
        continue;
      let code = slot / 4;
      for (let j = 0; j < this.depth; j++) {
        const c = columns[j] as EncodedColumn;
        const k = c.values.length;
        const v = c.values[code % k];
        if (v === undefined)
          throw new VeritrailError('DATASET_VALUE', `columnar input: code out of range in column ${j}`);
        values[j] = v;
        code = Math.floor(code / k);
      }
      const leaf = this.leaf(values);
      for (let i = 0; i < 4; i++) leaf[i] = (leaf[i] as number) + (dense[slot + i] as number);
    }
  }

  private addColumnsSparse(
    columns: readonly EncodedColumn[],
    labels: ArrayLike<number>,
    predictions: ArrayLike<number>,
  ): void {
    const values: string[] = new Array(this.depth).fill('');
    for (let i = 0; i < labels.length; i++) {
      for (let j = 0; j < this.depth; j++) {
        const c = columns[j] as EncodedColumn;
        const v = c.values[c.codes[i] as number];
        if (v === undefined)
          throw new VeritrailError('DATASET_VALUE', `columnar input: row ${i} has an unknown code`);
        values[j] = v;
      }
      this.add(values, Boolean(labels[i]), Boolean(predictions[i]));
    }
  }
}

/** Adds two counts objects over the same attributes (map-reduce of shards). */
export function mergeCounts(a: FairnessCounts, b: FairnessCounts): FairnessCounts {
  const acc = FairnessAccumulator.fromCounts(a);
  acc.merge(FairnessAccumulator.fromCounts(b));
  return acc.toCounts();
}

function compareTuples(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i] as string;
    const y = b[i] as string;
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length - b.length;
}
