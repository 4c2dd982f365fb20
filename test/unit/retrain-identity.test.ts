import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { digestOf } from '../../src/core/digest.js';
import { parsePipelineDefinition } from '../../src/core/pipeline.js';
import { decideRetrain } from '../../src/core/start.js';
import { assertConfinedToCode, trainerEnvironment } from '../../src/steps/trainer-env.js';

const base = {
  apiVersion: 'veritrail.dev/v1',
  name: 'credit-scoring',
  dataset: {
    label: { column: 'y', positive: '1' },
    protected: [{ column: 'sex', privileged: 'm' }],
    features: ['x'],
  },
  trainer: { code: 'trainer', command: ['node', 'trainer/train.mjs'] },
};

describe('the retrain identity (issue 11 item 5)', () => {
  const d = (s: string) => digestOf(s);
  const inputs = {
    data: d('data'),
    code: d('code'),
    definition: d('def'),
    policy: d('policy'),
    environment: d('env'),
  };

  it('retrains when only the gate policy bytes changed', () => {
    const r = decideRetrain({
      latestInputs: { ...inputs, policy: d('policy v2') },
      lastSuccessfulRun: { runId: 'r-1', inputs },
      force: false,
    });
    expect(r).toEqual({ action: 'train', reason: 'inputs-changed', changed: ['policy'] });
  });

  it('retrains when only the trainer environment changed', () => {
    const r = decideRetrain({
      latestInputs: { ...inputs, environment: d('python 3.12') },
      lastSuccessfulRun: { runId: 'r-1', inputs },
      force: false,
    });
    expect(r).toMatchObject({ action: 'train', changed: ['environment'] });
  });

  it('skips only when every part is identical, and says which parts it compared', () => {
    const r = decideRetrain({
      latestInputs: inputs,
      lastSuccessfulRun: { runId: 'r-1', inputs },
      force: false,
    });
    expect(r).toMatchObject({
      action: 'skip',
      reason: expect.stringMatching(/data, code, definition, policy, environment/),
    });
  });

  it('records the interpreter, its version and (for node) the runtime versions', () => {
    const env = trainerEnvironment(['node', 'x.mjs']);
    expect(env.version).toBe(process.version);
    expect(env.packages).toMatch(/^sha256:/);
    expect(env.digest).toMatch(/^sha256:/);
  });
});

describe('commands confined to trainer.code', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a command that runs a script beside the definition, outside trainer.code', () => {
    dir = mkdtempSync(join(tmpdir(), 'veritrail-confine-'));
    mkdirSync(join(dir, 'trainer'));
    writeFileSync(join(dir, 'trainer', 'train.mjs'), '');
    writeFileSync(join(dir, 'helper.mjs'), '');
    const at = pathToFileURL(`${dir}/`).href;
    expect(() => assertConfinedToCode(parsePipelineDefinition(base), at)).not.toThrow();
    const outside = parsePipelineDefinition({
      ...base,
      trainer: { ...base.trainer, command: ['node', 'helper.mjs'] },
    });
    expect(() => assertConfinedToCode(outside, at)).toThrow(
      /trainer.command runs helper.mjs, which is outside trainer.code/,
    );
  });
});
