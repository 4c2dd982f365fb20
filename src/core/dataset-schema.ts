import { VeritrailError } from './errors.js';
import type { PipelineDefinition } from './pipeline.js';
import { secretKindsIn } from './redact.js';

/** Where each column the pipeline needs sits in a CSV header. */
export interface ColumnIndex {
  width: number;
  label: number;
  features: number[];
  groups: number[];
}

/** A validated row: encoded feature texts (numeric), the 0/1 label, and protected attribute values. */
export interface ValidRow {
  features: string[];
  label: '0' | '1';
  /** The label as written, for the two-class check ({@link DatasetChecks}). */
  rawLabel: string;
  groups: string[];
}

/**
 * The feature columns of the processed channels, in order: a numeric feature as itself, a
 * categorical one as one `<column>=<value>` indicator column per declared value (one-hot).
 */
export function encodedFeatureColumns(def: PipelineDefinition): string[] {
  return def.dataset.features.flatMap((f) => {
    const values = def.dataset.categorical[f];
    return values ? values.map((v) => `${f}=${v}`) : [f];
  });
}

/** The encoding Preprocess applied, as recorded in the transform statement's parameters. */
export function featureEncoding(def: PipelineDefinition): Record<string, unknown> {
  return {
    categorical: Object.fromEntries(
      Object.entries(def.dataset.categorical).map(([c, values]) => [
        c,
        { method: 'one-hot', columns: values.map((v) => `${c}=${v}`), values },
      ]),
    ),
    missing: def.dataset.missing,
    columns: encodedFeatureColumns(def),
  };
}

/**
 * Whole-dataset checks that no single row can make: the label has exactly two distinct values, one
 * of them the declared positive (so "1.0"/"0.0" or a third value is never silently a negative), and
 * each protected attribute's privileged value occurs. Feed every valid row to `observe`, then call
 * `finish` once.
 */
export class DatasetChecks {
  private readonly labels = new Set<string>();
  private readonly groups: Set<string>[];

  constructor(private readonly def: PipelineDefinition) {
    this.groups = def.dataset.protected.map(() => new Set<string>());
  }

  observe(row: ValidRow, where: { file: string; line: number }): void {
    this.labels.add(row.rawLabel);
    if (this.labels.size > 2) {
      throw new VeritrailError(
        'DATASET_VALUE',
        `${where.file} line ${where.line}: the label column ${this.def.dataset.label.column} holds a third distinct value (values found: ${list(this.labels)}); veritrail trains binary classifiers only: map the labels to two values, one of them dataset.label.positive ("${this.def.dataset.label.positive}")`,
        { details: { column: this.def.dataset.label.column, values: [...this.labels].sort() } },
      );
    }
    row.groups.forEach((g, i) => {
      const set = this.groups[i];
      // Bounded: a column with thousands of values is reported by its first 1000.
      if (set && set.size < 1000) set.add(g);
    });
  }

  finish(): void {
    const { column, positive } = this.def.dataset.label;
    if (this.labels.size !== 2 || !this.labels.has(positive)) {
      throw new VeritrailError(
        'DATASET_VALUE',
        `the label column ${column} must hold exactly two distinct values, one of them the declared positive "${positive}"; values found: ${list(this.labels)}. Fix dataset.label.positive or the data`,
        { details: { column, values: [...this.labels].sort() } },
      );
    }
    this.def.dataset.protected.forEach((p, i) => {
      const seen = this.groups[i] ?? new Set<string>();
      if (!seen.has(p.privileged)) {
        throw new VeritrailError(
          'DATASET_VALUE',
          `the privileged value "${p.privileged}" of protected column ${p.column} does not occur in the data; values seen: ${list(seen)}. Fix dataset.protected[].privileged`,
          { details: { column: p.column, values: [...seen].sort() } },
        );
      }
    });
  }
}

function list(values: Set<string>): string {
  return [...values]
    .sort()
    .slice(0, 20)
    .map((v) => JSON.stringify(v.slice(0, 40)))
    .join(', ');
}

const NUMBER = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;

/** Resolves the pipeline's columns in a header; DATASET_SCHEMA names the first missing column. */
export function resolveHeader(fields: readonly string[], def: PipelineDefinition, file: string): ColumnIndex {
  const names = fields.map((f) => f.trim());
  const dupes = [...new Set(names.filter((n, i) => names.indexOf(n) !== i))];
  if (dupes.length > 0) {
    throw new VeritrailError(
      'DATASET_SCHEMA',
      `${file}: the header names ${dupes.map((d) => `"${d}"`).join(', ')} more than once; give every column a distinct name`,
      { details: { duplicates: dupes } },
    );
  }
  const at = (name: string, role: string) => {
    const i = names.indexOf(name);
    if (i < 0) {
      throw new VeritrailError(
        'DATASET_SCHEMA',
        `${file}: the ${role} column "${name}" is missing (columns found: ${names.join(', ')}); add it to the data or fix the pipeline definition`,
        { details: { column: name, role } },
      );
    }
    return i;
  };
  return {
    width: fields.length,
    label: at(def.dataset.label.column, 'label'),
    groups: def.dataset.protected.map((p) => at(p.column, 'protected')),
    features: def.dataset.features.map((f) => at(f, 'feature')),
  };
}

/**
 * Validates one data row and encodes its features; DATASET_VALUE names the file, line and column,
 * and what to do. `undefined`: the row has a missing feature and the policy drops it.
 */
export function validateRow(
  fields: readonly string[],
  index: ColumnIndex,
  def: PipelineDefinition,
  where: { file: string; line: number },
): ValidRow | undefined {
  const at = `${where.file} line ${where.line}`;
  const details = { line: where.line, file: where.file };
  if (fields.length !== index.width) {
    throw new VeritrailError(
      'DATASET_VALUE',
      `${at}: ${fields.length} fields where the header has ${index.width}; fix the row`,
      {
        details,
      },
    );
  }
  const missing = def.dataset.missing;
  const features: string[] = [];
  for (let k = 0; k < index.features.length; k++) {
    const column = def.dataset.features[k] ?? '';
    const raw = fields[index.features[k] as number] ?? '';
    const v = raw.trim();
    const categories = def.dataset.categorical[column];
    if (missing.markers.includes(v) || missing.markers.includes(raw)) {
      if (missing.policy === 'drop-row') return undefined;
      if (missing.policy === 'impute' && !categories && missing.value !== undefined) {
        features.push(String(missing.value));
        continue;
      }
      throw new VeritrailError(
        'DATASET_VALUE',
        `${at}: feature column ${column} is missing a value ("${raw.slice(0, 40)}"); ${categories ? 'a categorical feature cannot be imputed: ' : ''}declare dataset.missing.policy "drop-row"${categories ? '' : ' or "impute" with a value'}, or fill the data`,
        { details: { ...details, column } },
      );
    }
    if (categories) {
      const at_ = categories.indexOf(v);
      if (at_ < 0) {
        throw new VeritrailError(
          'DATASET_VALUE',
          `${at}: categorical feature ${column} holds "${v.slice(0, 40)}", which is not one of its declared values (${categories.join(', ')}); add it to dataset.categorical.${column} or fix the data`,
          { details: { ...details, column } },
        );
      }
      for (let c = 0; c < categories.length; c++) features.push(c === at_ ? '1' : '0');
      continue;
    }
    if (!NUMBER.test(v) || !Number.isFinite(Number(v))) {
      throw new VeritrailError(
        'DATASET_VALUE',
        `${at}: feature column ${column} holds "${v.slice(0, 40)}", which is not a number; feature columns must be numeric (or declared in dataset.categorical)`,
        { details: { ...details, column } },
      );
    }
    features.push(v);
  }
  const label = (fields[index.label] ?? '').trim();
  if (label === '') {
    throw new VeritrailError(
      'DATASET_VALUE',
      `${at}: the label column ${def.dataset.label.column} is empty; every row needs a label`,
      {
        details: { ...details, column: def.dataset.label.column },
      },
    );
  }
  const groups = index.groups.map((i, k) => {
    const v = (fields[i] ?? '').trim();
    if (v === '') {
      const column = def.dataset.protected[k]?.column;
      throw new VeritrailError(
        'DATASET_VALUE',
        `${at}: the protected column ${column} is empty; every row needs a value`,
        {
          details: { ...details, column },
        },
      );
    }
    return v;
  });
  return { features, label: label === def.dataset.label.positive ? '1' : '0', rawLabel: label, groups };
}

/**
 * The record-by-record rules every reader of a raw dataset applies (Preprocess's transform and the
 * local preflight): each file's header resolved against the definition, one header for every file
 * of a dataset, no cell that looks like a credential (checked before the row is validated, so a
 * secret is never echoed by a value error: invariant 7), then the row's own validation.
 */
export class DatasetRecords {
  private header: readonly string[] | undefined;

  constructor(private readonly def: PipelineDefinition) {}

  /**
   * A reader of one file's records: the header record gives `'header'`; a data record its valid
   * row, or `undefined` when the missing-value policy drops it.
   */
  file(path: string): (fields: string[], line: number) => ValidRow | undefined | 'header' {
    let index: ColumnIndex | undefined;
    return (fields, line) => {
      if (!index) {
        index = resolveHeader(fields, this.def, path);
        if (this.header && this.header.join(',') !== fields.join(',')) {
          throw new VeritrailError(
            'DATASET_SCHEMA',
            `${path}: header differs from the first file's; all files of a dataset must share one header`,
          );
        }
        this.header = fields;
        return 'header';
      }
      const kinds = secretKindsIn(fields.join('\n'));
      if (kinds.length > 0) {
        throw new VeritrailError(
          'DATASET_VALUE',
          `${path}:${line}: a cell looks like a credential (${kinds[0]}); remove it from the data`,
        );
      }
      return validateRow(fields, index, this.def, { file: path, line }) ?? undefined;
    };
  }
}
