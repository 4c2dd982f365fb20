import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule, { type FormatsPlugin } from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import {
  FAIRNESS_PREDICATE_TYPE,
  GATE_PREDICATE_TYPE,
  RETRAIN_SKIP_PREDICATE_TYPE,
  TRANSFORM_PREDICATE_TYPE,
} from '../../../src/core/attest/predicates.js';
import { KNOWN_PREDICATES } from '../../../src/core/attest/verify.js';
import { retrainSkip, runStatements } from './fixtures.js';
import { clone } from './helpers.js';

// ajv-formats is CommonJS: under NodeNext its default import is module.exports, which carries `.default`.
const addFormats = (addFormatsModule as unknown as { default: FormatsPlugin }).default;

const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);

const schemaFiles: Record<string, string> = {
  [TRANSFORM_PREDICATE_TYPE]: 'transform-v1.schema.json',
  [FAIRNESS_PREDICATE_TYPE]: 'fairness-v1.schema.json',
  [GATE_PREDICATE_TYPE]: 'gate-v1.schema.json',
  [RETRAIN_SKIP_PREDICATE_TYPE]: 'retrain-skip-v1.schema.json',
};

function validatorFor(predicateType: string) {
  const file = schemaFiles[predicateType] ?? '';
  const schema = JSON.parse(readFileSync(new URL(`../../../schemas/${file}`, import.meta.url), 'utf8')) as {
    $id: string;
  };
  return ajv.getSchema(schema.$id) ?? ajv.compile(schema);
}

function zodAccepts(predicateType: string, predicate: unknown): boolean {
  return KNOWN_PREDICATES[predicateType]?.safeParse(predicate).success ?? false;
}

const s = runStatements();
const examples: [string, { predicateType: string; predicate: unknown }][] = [
  ['transform', s.transform],
  ['fairness', s.fairness],
  ['gate', s.gate],
  ['retrain-skip', retrainSkip()],
];

describe('the JSON Schemas in schemas/', () => {
  it('compile under JSON Schema 2020-12 in strict mode, with the id of their predicate type', () => {
    for (const [type, file] of Object.entries(schemaFiles)) {
      const schema = JSON.parse(readFileSync(new URL(`../../../schemas/${file}`, import.meta.url), 'utf8'));
      expect(schema.$id).toBe(
        `${type.replace('https://veritrail.dev/attestation/', 'https://veritrail.dev/schemas/attestation/')}.json`,
      );
      expect(() => validatorFor(type)).not.toThrow();
    }
  });

  it.each(examples)('accept the %s statement the builder makes, as does the verifier', (_, st) => {
    const validate = validatorFor(st.predicateType);
    expect(validate(st.predicate), JSON.stringify(validate.errors)).toBe(true);
    expect(zodAccepts(st.predicateType, st.predicate)).toBe(true);
  });

  const breakers: [string, string, (p: Record<string, unknown>) => void][] = [
    ['transform', TRANSFORM_PREDICATE_TYPE, (p) => delete p.inputs],
    ['transform', TRANSFORM_PREDICATE_TYPE, (p) => Object.assign(p, { inputs: [] })],
    ['transform', TRANSFORM_PREDICATE_TYPE, (p) => Object.assign(p, { startedOn: 'yesterday' })],
    ['fairness', FAIRNESS_PREDICATE_TYPE, (p) => Object.assign(p, { confidenceLevel: 95 })],
    ['fairness', FAIRNESS_PREDICATE_TYPE, (p) => Object.assign(p, { metrics: [] })],
    [
      'fairness',
      FAIRNESS_PREDICATE_TYPE,
      (p) => Object.assign(p, { groups: [{ attribute: 'sex', value: 'F', tp: -1, fp: 0, tn: 0, fn: 0 }] }),
    ],
    [
      'fairness',
      FAIRNESS_PREDICATE_TYPE,
      (p) => Object.assign(p, { evaluationData: { name: 'v', digest: { sha256: 'ABC' } } }),
    ],
    ['gate', GATE_PREDICATE_TYPE, (p) => Object.assign(p, { decision: 'maybe' })],
    ['gate', GATE_PREDICATE_TYPE, (p) => delete p.policy],
    ['retrain-skip', RETRAIN_SKIP_PREDICATE_TYPE, (p) => Object.assign(p, { unchanged: [] })],
    ['retrain-skip', RETRAIN_SKIP_PREDICATE_TYPE, (p) => delete p.previousRunId],
  ];

  it.each(breakers)('and the verifier both refuse a broken %s predicate (%#)', (name, type, breakIt) => {
    const st = examples.find(([n]) => n === name)?.[1];
    const predicate = clone(st?.predicate) as Record<string, unknown>;
    breakIt(predicate);
    expect(validatorFor(type)(predicate)).toBe(false);
    expect(zodAccepts(type, predicate)).toBe(false);
  });

  it('and the verifier both ignore unknown fields (in-toto parsing rules)', () => {
    for (const [, st] of examples) {
      const predicate = { ...(st.predicate as object), 'x-extension': { any: 1 } };
      expect(validatorFor(st.predicateType)(predicate)).toBe(true);
      expect(zodAccepts(st.predicateType, predicate)).toBe(true);
    }
  });
});
