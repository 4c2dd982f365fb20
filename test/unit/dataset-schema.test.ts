import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DatasetChecks,
  DatasetRecords,
  encodedFeatureColumns,
  featureEncoding,
  resolveHeader,
  validateRow,
} from '../../src/core/dataset-schema.js';
import { isVeritrailError } from '../../src/core/errors.js';
import { parsePipelineDefinition } from '../../src/core/pipeline.js';

const def = parsePipelineDefinition(
  JSON.parse(readFileSync(join(import.meta.dirname, '../../examples/credit-scoring/pipeline.json'), 'utf8')),
);
const header =
  'applicant_id,sex,age_group,income,debt_ratio,credit_history_years,late_payments,loan_amount,employment_years,repaid'.split(
    ',',
  );
const index = resolveHeader(header, def, 'a.csv');
const at = { file: 'a.csv', line: 7 };

describe('dataset rows', () => {
  it('map the label to 0/1 by the positive value and keep feature text as written', () => {
    const row = validateRow('A1,female,under_25,12.5,0.3,1e1,0,3,1,1'.split(','), index, def, at);
    expect(row).toEqual({
      features: ['12.5', '0.3', '1e1', '0', '3', '1'],
      label: '1',
      rawLabel: '1',
      groups: ['female', 'under_25'],
    });
    expect(validateRow('A1,female,under_25,1,1,1,1,1,1,no'.split(','), index, def, at)?.label).toBe('0');
  });

  it.each([
    [
      'a non-numeric feature',
      'A1,male,25_to_60,abc,0.3,1,0,3,1,1',
      /line 7: feature column income holds "abc"/,
    ],
    ['Infinity', 'A1,male,25_to_60,Infinity,0.3,1,0,3,1,1', /income/],
    ['an empty label', 'A1,male,25_to_60,1,0.3,1,0,3,1,', /label column repaid is empty/],
    ['an empty protected value', 'A1,,25_to_60,1,0.3,1,0,3,1,1', /protected column sex is empty/],
    ['a short row', 'A1,male', /2 fields where the header has 10/],
  ])('refuse %s with the line and column', (_what, line, message) => {
    try {
      validateRow(line.split(','), index, def, at);
      expect.unreachable();
    } catch (e) {
      expect(isVeritrailError(e, 'DATASET_VALUE')).toBe(true);
      expect((e as Error).message).toMatch(message);
    }
  });

  it('a header without a required column names it and says what to do', () => {
    expect(() =>
      resolveHeader(
        header.filter((h) => h !== 'age_group'),
        def,
        'a.csv',
      ),
    ).toThrow(/protected column "age_group" is missing.*fix the pipeline definition/);
  });
});

describe('data the way ML teams have it (issue 11 item 8)', () => {
  const checked = (labels: string[], sexes = ['male', 'female']) => {
    const checks = new DatasetChecks(def);
    labels.forEach((l, i) => {
      const row = validateRow(
        `A${i},${sexes[i % sexes.length]},25_to_60,1,1,1,1,1,1,${l}`.split(','),
        index,
        def,
        {
          file: 'a.csv',
          line: i + 2,
        },
      );
      if (row) checks.observe(row, { file: 'a.csv', line: i + 2 });
    });
    checks.finish();
  };

  it('accepts exactly two label values, one of them the positive', () => {
    expect(() => checked(['1', '0', '1'])).not.toThrow();
  });

  it('refuses "1.0"/"0.0" when the positive is "1", naming the values found, instead of reading them as negatives', () => {
    expect(() => checked(['1.0', '0.0'])).toThrow(/exactly two distinct values.*"0\.0", "1\.0"/);
  });

  it('refuses a third label value as multi-class, naming the values', () => {
    expect(() => checked(['1', '0', '2'])).toThrow(
      /third distinct value \(values found: "0", "1", "2"\).*binary classifiers only/,
    );
  });

  it('refuses a single label value', () => {
    expect(() => checked(['1', '1'])).toThrow(/exactly two distinct values/);
  });

  it('refuses a privileged value that does not occur, listing the values seen', () => {
    expect(() => checked(['1', '0'], ['Male', 'Female'])).toThrow(
      /privileged value "male" of protected column sex does not occur.*"Female", "Male"/,
    );
  });

  it('refuses duplicate header names', () => {
    expect(() => resolveHeader([...header, 'income'], def, 'a.csv')).toThrow(/names "income" more than once/);
  });

  describe('categorical features and the missing-value policy', () => {
    const cat = parsePipelineDefinition({
      ...JSON.parse(
        readFileSync(join(import.meta.dirname, '../../examples/credit-scoring/pipeline.json'), 'utf8'),
      ),
      dataset: {
        label: { column: 'repaid', positive: '1' },
        protected: [{ column: 'sex', privileged: 'male' }],
        features: ['income', 'housing'],
        categorical: { housing: ['rent', 'own', 'mortgage'] },
        missing: { policy: 'impute', value: 0 },
      },
    });
    const h = resolveHeader(['sex', 'income', 'housing', 'repaid'], cat, 'c.csv');

    it('one-hot encodes a declared categorical feature in the declared order and records the encoding', () => {
      expect(encodedFeatureColumns(cat)).toEqual([
        'income',
        'housing=rent',
        'housing=own',
        'housing=mortgage',
      ]);
      expect(validateRow(['male', '5', 'own', '1'], h, cat, at)?.features).toEqual(['5', '0', '1', '0']);
      expect(featureEncoding(cat)).toMatchObject({
        categorical: { housing: { method: 'one-hot', values: ['rent', 'own', 'mortgage'] } },
        missing: { policy: 'impute', value: 0 },
      });
    });

    it('refuses an undeclared category, naming the declared ones', () => {
      expect(() => validateRow(['male', '5', 'boat', '1'], h, cat, at)).toThrow(
        /"boat", which is not one of its declared values \(rent, own, mortgage\)/,
      );
    });

    it('imputes the declared value for a missing numeric feature, never for a categorical one', () => {
      expect(validateRow(['male', '', 'rent', '1'], h, cat, at)?.features).toEqual(['0', '1', '0', '0']);
      expect(() => validateRow(['male', '5', '', '1'], h, cat, at)).toThrow(
        /categorical feature cannot be imputed/,
      );
    });

    it('drops the row under drop-row, and refuses it under refuse (the default)', () => {
      const drop = parsePipelineDefinition({
        ...cat,
        dataset: { ...cat.dataset, missing: { policy: 'drop-row' } },
      });
      expect(validateRow(['male', '', 'rent', '1'], h, drop, at)).toBeUndefined();
      const refuse = parsePipelineDefinition({
        ...cat,
        dataset: { ...cat.dataset, missing: { policy: 'refuse' } },
      });
      expect(() => validateRow(['male', '', 'rent', '1'], h, refuse, at)).toThrow(
        /income is missing a value/,
      );
    });

    it('refuses a definition that imputes without a value or declares a categorical column that is not a feature', () => {
      expect(() =>
        parsePipelineDefinition({ ...cat, dataset: { ...cat.dataset, missing: { policy: 'impute' } } }),
      ).toThrow(/needs dataset.missing.value/);
      expect(() =>
        parsePipelineDefinition({ ...cat, dataset: { ...cat.dataset, categorical: { color: ['a', 'b'] } } }),
      ).toThrow(/dataset.categorical.color is not one of dataset.features/);
    });
  });
});

describe('a dataset read record by record (DatasetRecords: Preprocess and the local preflight)', () => {
  const row = 'A1,male,25_to_60,47.3,0.352,7.6,1,51.6,10.9,0'.split(',');

  it('resolves each header, requires one header for every file, and validates the rows', () => {
    const records = new DatasetRecords(def);
    const first = records.file('a.csv');
    expect(first(header, 1)).toBe('header');
    expect(first(row, 2)).toMatchObject({ label: '0' });
    const second = records.file('b.csv');
    expect(() => second([...header].reverse(), 1)).toThrow(/b\.csv: header differs from the first file's/);
  });

  it('refuses a credential-looking cell by kind before any value error could echo it', () => {
    const secret = 'AKIAIOSFODNN7EXAMPLE';
    const read = new DatasetRecords(def).file('a.csv');
    read(header, 1);
    const withSecret = [...row];
    withSecret[4] = secret; // debt_ratio, a numeric column: its value error would quote the cell
    let message = '';
    try {
      read(withSecret, 9);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/a\.csv:9: a cell looks like a credential/);
    expect(message).not.toContain(secret);
  });
});
