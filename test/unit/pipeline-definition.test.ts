import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isVeritrailError } from '../../src/core/errors.js';
import { landingPrefixOf, parsePipelineDefinition } from '../../src/core/pipeline.js';

// Tests mutate arbitrary fields of the example definition.
// biome-ignore lint/suspicious/noExplicitAny: a JSON document edited freely by the tests
type Doc = Record<string, any>;

const example = () =>
  JSON.parse(
    readFileSync(join(import.meta.dirname, '../../examples/credit-scoring/pipeline.json'), 'utf8'),
  ) as Doc;

function problem(mutate: (d: Doc) => void): string {
  const d = example();
  mutate(d);
  try {
    parsePipelineDefinition(d);
  } catch (e) {
    expect(isVeritrailError(e, 'PIPELINE_INVALID')).toBe(true);
    return (e as Error).message;
  }
  throw new Error('definition was accepted');
}

describe('pipeline definitions', () => {
  it('accepts the bundled examples and fills defaults', () => {
    const def = parsePipelineDefinition(example());
    expect(def.name).toBe('credit-scoring');
    expect(def.gate.thresholds.minGroupSize).toBe(30);
    expect(landingPrefixOf(def)).toBe('credit-scoring/');
    const strict = JSON.parse(
      readFileSync(join(import.meta.dirname, '../../examples/credit-scoring/pipeline.strict.json'), 'utf8'),
    );
    expect(parsePipelineDefinition(strict).gate.thresholds.maxEqualizedOddsDifference).toBe(0.1);
  });

  describe('refuses, naming the field', () => {
    it('a missing label', () => expect(problem((d) => delete d.dataset.label)).toMatch(/dataset\.label/));
    it('a bad name', () => expect(problem((d) => (d.name = 'Credit Scoring'))).toMatch(/^.*name: must be/));
    it('an unknown key (a typo)', () =>
      expect(problem((d) => (d.gate.tresholds = {}))).toMatch(/gate.*tresholds/));
    it('an image tag instead of a digest', () =>
      expect(
        problem((d) => (d.trainer.aws.image = '123456789012.dkr.ecr.eu-west-1.amazonaws.com/x:latest')),
      ).toMatch(/trainer\.aws\.image: must be pinned by digest/));
    it('no protected attribute', () =>
      expect(problem((d) => (d.dataset.protected = []))).toMatch(/dataset\.protected/));
    it('a column named twice', () =>
      expect(problem((d) => d.dataset.features.push('sex'))).toMatch(/"sex" is named twice/));
    it('a validation fraction out of range', () =>
      expect(problem((d) => (d.dataset.validationFraction = 1))).toMatch(/dataset\.validationFraction/));
  });
});
