import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { putJsonCas } from '../../src/cas.js';
import { parsePipelineDefinition } from '../../src/core/pipeline.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import { assertUnitKnown, homePaths, unitPaths } from '../../src/local/home.js';
import { openLocalRuntime } from '../../src/local/runtime.js';
import { forRun, inUnit, unitOfRun } from '../../src/local/units.js';
import { EXAMPLE } from '../helpers/workspace.js';

describe('unitPaths', () => {
  it('gives the default unit the layout of a state dir made before units', () => {
    const p = unitPaths('/h', 'default');
    expect(p).toMatchObject({
      signingKey: homePaths('/h').signingKey,
      auditKey: homePaths('/h').auditKey,
      witnesses: '/h/witnesses.json',
      auditPrefix: 'log/',
      auditOrigin: 'veritrail.local/audit',
    });
  });

  it('gives any other unit its own folder, log prefix and origin', () => {
    expect(unitPaths('/h', 'credit')).toEqual({
      unit: 'credit',
      root: '/h/units/credit',
      signingKey: '/h/units/credit/keys/signing.key',
      auditKey: '/h/units/credit/keys/audit.key',
      witnesses: '/h/units/credit/witnesses.json',
      auditPrefix: 'units/credit/log/',
      auditOrigin: 'veritrail.local/audit/credit',
    });
  });
});

describe('units of one embedded runtime', () => {
  let home: string;
  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), 'veritrail-units-'));
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  const definition = (unit?: string) => {
    const def = JSON.parse(readFileSync(join(EXAMPLE, 'pipeline.json'), 'utf8')) as Record<string, unknown>;
    if (unit !== undefined) def.unit = unit;
    return parsePipelineDefinition(def, 'test definition');
  };

  it('opens a unit’s keys on first use only, once per process, and its view shares everything else', async () => {
    const rt = await openLocalRuntime(home, { reconcile: false });
    try {
      expect(rt.unit).toBe('default');
      expect(existsSync(join(home, 'units'))).toBe(false);
      const credit = await inUnit(rt, 'credit');
      expect(existsSync(unitPaths(home, 'credit').signingKey)).toBe(true);
      expect(credit.unit).toBe('credit');
      expect(credit.signer.keyId).not.toBe(rt.signer.keyId);
      expect(credit.audit).not.toBe(rt.audit);
      expect(credit.runs).toBe(rt.runs);
      expect(credit.objects).toBe(rt.objects);
      expect(credit.owners).toBe(rt.owners);
      // One signer and one log (one appender) per unit in a process.
      const again = await inUnit(rt, 'credit');
      expect(again.signer).toBe(credit.signer);
      expect(again.audit).toBe(credit.audit);
      expect(await inUnit(credit, 'credit')).toBe(credit);
      expect((await inUnit(credit, 'default')).signer).toBe(rt.signer);
    } finally {
      await rt.close();
    }
  });

  it('takes a run’s unit from its stored definition, and from the record only when that cannot be read', async () => {
    const objects = new FsObjectStore(join(home, 'objects'));
    const { digest } = await putJsonCas(objects, definition('medical'));
    expect(await unitOfRun(objects, { pipelineDigest: digest })).toBe('medical');
    // A record edited to another unit does not move the run there.
    expect(await unitOfRun(objects, { pipelineDigest: digest, unit: 'credit' })).toBe('medical');
    const { digest: plain } = await putJsonCas(objects, definition());
    expect(await unitOfRun(objects, { pipelineDigest: plain })).toBe('default');
    const missing = `sha256:${'2'.repeat(64)}` as const;
    expect(await unitOfRun(objects, { pipelineDigest: missing, unit: 'credit' })).toBe('credit');
    expect(await unitOfRun(objects, { pipelineDigest: missing })).toBe('default');
  });

  it('gives a run the view of its unit', async () => {
    const rt = await openLocalRuntime(home, { reconcile: false });
    try {
      const { digest } = await putJsonCas(rt.objects, definition('medical'));
      const view = await forRun(rt, { pipelineDigest: digest });
      expect(view.unit).toBe('medical');
      expect(view.signer.keyId).toBe((await rt.unitPorts('medical')).signer.keyId);
    } finally {
      await rt.close();
    }
  });

  it('refuses a unit the state dir does not hold, naming the ones it does', async () => {
    await expect(assertUnitKnown(home, 'default')).resolves.toBeUndefined();
    await expect(assertUnitKnown(home, 'credit')).rejects.toMatchObject({
      code: 'USAGE',
      message: expect.stringContaining('(units here: default)'),
    });
    const rt = await openLocalRuntime(home, { reconcile: false });
    try {
      await inUnit(rt, 'credit');
    } finally {
      await rt.close();
    }
    await expect(assertUnitKnown(home, 'credit')).resolves.toBeUndefined();
    await expect(assertUnitKnown(home, 'fraud')).rejects.toMatchObject({
      message: expect.stringContaining('(units here: default, credit)'),
    });
  });
});
