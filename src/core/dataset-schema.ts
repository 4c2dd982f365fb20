import { VeritrailError } from './errors.js';
import type { PipelineDefinition } from './pipeline.js';

/** Where each column the pipeline needs sits in a CSV header. */
export interface ColumnIndex {
  width: number;
  label: number;
  features: number[];
  groups: number[];
}

/** A validated row: feature texts (numeric), the 0/1 label, and protected attribute values. */
export interface ValidRow {
  features: string[];
  label: '0' | '1';
  groups: string[];
}

const NUMBER = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;

/** Resolves the pipeline's columns in a header; DATASET_SCHEMA names the first missing column. */
export function resolveHeader(fields: readonly string[], def: PipelineDefinition, file: string): ColumnIndex {
  const names = fields.map((f) => f.trim());
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

/** Validates one data row; DATASET_VALUE names the file, line and column, and what to do. */
export function validateRow(
  fields: readonly string[],
  index: ColumnIndex,
  def: PipelineDefinition,
  where: { file: string; line: number },
): ValidRow {
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
  const features = index.features.map((i, k) => {
    const v = fields[i] ?? '';
    if (!NUMBER.test(v) || !Number.isFinite(Number(v))) {
      const column = def.dataset.features[k];
      throw new VeritrailError(
        'DATASET_VALUE',
        `${at}: feature column ${column} holds "${v.slice(0, 40)}", which is not a number; feature columns must be numeric`,
        { details: { ...details, column } },
      );
    }
    return v.trim();
  });
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
  return { features, label: label === def.dataset.label.positive ? '1' : '0', groups };
}
