import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveHeader, validateRow } from '../../src/core/dataset-schema.js';
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
      groups: ['female', 'under_25'],
    });
    expect(validateRow('A1,female,under_25,1,1,1,1,1,1,no'.split(','), index, def, at).label).toBe('0');
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
