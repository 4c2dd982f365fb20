import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY_TEXT, GATE_SCHEMA_TEXT } from '../../src/core/gate/index.js';

const ROOT = join(import.meta.dirname, '../..');

describe('the embedded default policy and schema', () => {
  it('are byte-identical to the shipped policies/default.cedar', () => {
    expect(DEFAULT_POLICY_TEXT).toBe(readFileSync(join(ROOT, 'policies/default.cedar'), 'utf8'));
  });

  it('are byte-identical to the shipped policies/veritrail.cedarschema', () => {
    expect(GATE_SCHEMA_TEXT).toBe(readFileSync(join(ROOT, 'policies/veritrail.cedarschema'), 'utf8'));
  });
});
