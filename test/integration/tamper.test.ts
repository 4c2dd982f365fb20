/**
 * Invariant 3 (docs/design.md): any change to any byte of data, model, attestation, signature, manifest,
 * log entry or checkpoint is detected by `veritrail verify`, which names the broken link.
 * One pipeline run; each case changes one byte, verifies, and puts the byte back.
 */
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { openLocalRuntime } from '../../src/local/runtime.js';
import type { RunRecord } from '../../src/ports.js';
import type { VerifyCheck } from '../../src/verify/codes.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';

interface Verified {
  exit: number;
  ok: boolean;
  checks: VerifyCheck[];
}

let ws: Workspace;
let runId: string;
let run: RunRecord;

async function verify(): Promise<Verified> {
  const io = captureIo(ws.dir);
  const exit = await main(['verify', runId, '--home', ws.home, '--trust-state-keys', '--json'], io);
  const parsed = JSON.parse(io.stdout.join('')) as { ok: boolean; checks: VerifyCheck[] };
  return { exit, ...parsed };
}

function firstFailure(v: Verified): { name: string; code: string } | undefined {
  const f = v.checks.find((c) => !c.ok);
  return f && { name: f.name, code: f.code };
}

/** Changes the byte at `at(bytes)` (WORM objects are read-only: write access is lent, then taken back), runs `fn`, restores. */
async function withByteChanged<T>(
  path: string,
  at: (bytes: Buffer) => number,
  fn: () => Promise<T>,
): Promise<T> {
  const mode = statSync(path).mode & 0o777;
  const original = readFileSync(path);
  const changed = Buffer.from(original);
  const i = at(changed);
  const old = changed[i] as number;
  // Stay in the same character class, so the file still parses and the deeper check is reached.
  changed[i] = old === 0x41 ? 0x42 : old >= 0x30 && old <= 0x38 ? old + 1 : old === 0x39 ? 0x30 : 0x41;
  chmodSync(path, 0o600);
  writeFileSync(path, changed);
  try {
    return await fn();
  } finally {
    writeFileSync(path, original);
    chmodSync(path, mode);
  }
}

const artifact = (key: unknown) => join(ws.home, 'objects', 'artifacts', ...String(key).split('/'));
const bundle = (name: string) => artifact((run.facts.bundles as Record<string, string>)[name]);
const middleOf = (field: string) => (b: Buffer) => {
  const text = b.toString('latin1');
  const start = text.indexOf(`"${field}": "`) + field.length + 5;
  const end = text.indexOf('"', start);
  return Math.floor((start + end) / 2);
};
const digitAfter = (marker: string) => (b: Buffer) => {
  const i = b.toString('latin1').indexOf(marker) + marker.length;
  const c = b[i] as number;
  if (c < 0x30 || c > 0x39) throw new Error(`no digit after ${marker}`);
  return i;
};

beforeAll(async () => {
  ws = makeWorkspace({ rows: 400 });
  const io = captureIo(ws.dir);
  const exit = await main(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json'], io);
  expect([0, 3]).toContain(exit);
  runId = (JSON.parse(io.stdout.join('')) as { runId: string }).runId;
  const rt = await openLocalRuntime(ws.home);
  try {
    run = (await rt.runs.get(runId)) as RunRecord;
  } finally {
    await rt.close();
  }
});

afterAll(() => ws?.cleanup());

describe('when nothing was changed', () => {
  it('every check holds and verify exits 0', async () => {
    const v = await verify();
    expect(firstFailure(v)).toBeUndefined();
    expect(v.ok).toBe(true);
    expect(v.exit).toBe(0);
    expect(v.checks.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        'raw.data',
        'processed.data',
        'model.data',
        'gate.signature',
        'link.processed',
        'audit.inclusion',
      ]),
    );
  });
});

describe('when one byte of an artifact changes', () => {
  const cases: [string, () => string, (b: Buffer) => number, string, string][] = [
    ['the raw data', () => ws.dataset, (b) => b.length - 3, 'raw.data', 'DIGEST_MISMATCH'],
    [
      'a processed file',
      () => artifact(`sha256/${processedFile('train.csv')}`),
      (b) => b.length - 2,
      'processed.data',
      'DIGEST_MISMATCH',
    ],
    ['the model', () => artifact(run.facts.modelKey), (b) => b.length - 5, 'model.data', 'DIGEST_MISMATCH'],
    [
      'the raw data manifest',
      () => artifact(run.facts.rawManifestKey),
      digitAfter('"size":'),
      'raw.manifest',
      'DIGEST_MISMATCH',
    ],
    [
      'the processed data manifest',
      () => artifact(run.facts.processedManifestKey),
      digitAfter('"size":'),
      'processed.manifest',
      'DIGEST_MISMATCH',
    ],
    [
      'the fairness report',
      () => artifact(run.facts.fairnessReportKey),
      digitAfter('"tp":'),
      'fairness.report',
      'DIGEST_MISMATCH',
    ],
    [
      'the gate decision document',
      () => artifact(run.facts.gateDecisionKey),
      (b) => b.indexOf('"decision"') + 3,
      'gate.decision',
      'DIGEST_MISMATCH',
    ],
  ];
  for (const [what, path, at, name, code] of cases) {
    it(`${what}: verify fails at ${name} with ${code}`, async () => {
      const v = await withByteChanged(path(), at, verify);
      expect(firstFailure(v)).toEqual({ name, code });
      expect(v.exit).toBe(1);
    });
  }
});

function processedFile(path: string): string {
  const m = JSON.parse(readFileSync(artifact(run.facts.processedManifestKey), 'utf8')) as {
    files: { path: string; digest: string }[];
  };
  return (m.files.find((f) => f.path === path)?.digest ?? '').slice(7);
}

describe('when one byte of an attestation changes', () => {
  const slots = [
    ['transform', 'transform'],
    ['provenance', 'provenance'],
    ['modelSignature', 'model-signing'],
    ['fairness', 'fairness'],
    ['gate', 'gate'],
  ] as const;
  for (const [fact, slot] of slots) {
    it(`the ${slot} statement (DSSE payload): ${slot}.signature fails with SIGNATURE_INVALID`, async () => {
      const v = await withByteChanged(bundle(fact), middleOf('payload'), verify);
      expect(firstFailure(v)).toEqual({ name: `${slot}.signature`, code: 'SIGNATURE_INVALID' });
    });
    it(`the ${slot} signature: ${slot}.signature fails with SIGNATURE_INVALID`, async () => {
      const v = await withByteChanged(bundle(fact), middleOf('sig'), verify);
      expect(firstFailure(v)).toEqual({ name: `${slot}.signature`, code: 'SIGNATURE_INVALID' });
    });
  }
  it('the key hint (outside the signed payload): the bundle no longer matches its address', async () => {
    const v = await withByteChanged(bundle('provenance'), middleOf('hint'), verify);
    expect(firstFailure(v)).toEqual({ name: 'provenance.signature', code: 'DIGEST_MISMATCH' });
  });
});

describe('when one byte of the audit log changes', () => {
  const log = () => join(ws.home, 'objects', 'audit', 'log');
  it('an audit entry of the run: audit.inclusion fails with AUDIT_PROOF_FAILED', async () => {
    const entry = join(log(), 'entries', '000', '000', '000', '000', '004');
    const v = await withByteChanged(entry, digitAfter('"time":"2'), verify);
    expect(firstFailure(v)).toEqual({ name: 'audit.inclusion', code: 'AUDIT_PROOF_FAILED' });
    expect(v.checks.find((c) => c.name === 'audit.inclusion')?.detail).toContain('entry 4');
  });
  it('the checkpoint: audit.checkpoint fails with AUDIT_CHECKPOINT_INVALID', async () => {
    const dir = join(log(), 'checkpoints');
    const [name] = (await import('node:fs')).readdirSync(dir);
    const v = await withByteChanged(
      join(dir, String(name)),
      (b) => b.indexOf('\n', b.indexOf('\n') + 1) + 5,
      verify,
    );
    expect(firstFailure(v)).toEqual({ name: 'audit.checkpoint', code: 'AUDIT_CHECKPOINT_INVALID' });
  });
});

describe('when the auditor brings another key', () => {
  it('every signature fails with SIGNATURE_INVALID', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    writeFileSync(join(ws.dir, 'other.pem'), pem);
    const { openFileSigner } = await import('../../src/local/file-signer.js');
    const audit = await openFileSigner(join(ws.home, 'keys', 'audit.key'));
    writeFileSync(join(ws.dir, 'audit.pem'), await audit.publicKeyPem());
    const io = captureIo(ws.dir);
    const exit = await main(
      ['verify', runId, '--home', ws.home, '--key', 'other.pem', '--audit-key', 'audit.pem', '--json'],
      io,
    );
    const v = JSON.parse(io.stdout.join('')) as { checks: VerifyCheck[] };
    expect(exit).toBe(1);
    expect(v.checks.filter((c) => c.name.endsWith('.signature')).map((c) => c.code)).toEqual(
      Array(5).fill('SIGNATURE_INVALID'),
    );
  });
});
