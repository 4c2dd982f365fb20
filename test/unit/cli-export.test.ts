import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

let ws: Workspace;
let runId: string;
let status: string;
let out: string;

async function cli(...args: string[]) {
  const io = captureIo(ws.dir);
  const exit = await main(args, io);
  return { exit, out: io.stdout.join(''), err: io.stderr.join('') };
}

beforeAll(async () => {
  ws = makeWorkspace({ rows: 300 });
  const run = await cli('run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json');
  ({ runId, status } = JSON.parse(run.out) as { runId: string; status: string });
  // SUCCEEDED or REJECTED on so small a sample: either must export and verify.
  expect(['SUCCEEDED', 'REJECTED']).toContain(status);
  out = join(ws.dir, 'evidence');
  expect(
    (await cli('export', runId, '--home', ws.home, '--trust-state-keys', '--out', 'evidence')).exit,
  ).toBe(0);
});
afterAll(() => ws?.cleanup());

describe('the evidence folder', () => {
  it('holds every bundle, both keys, manifests, documents, audit proofs and instructions', () => {
    for (const f of [
      'transform.sigstore.json',
      'provenance.sigstore.json',
      'model-signature.sigstore.json',
      'fairness.sigstore.json',
      'gate.sigstore.json',
      'signing.pub.pem',
      'audit.pub.pem',
      'manifests/raw.manifest.json',
      'manifests/processed.manifest.json',
      'fairness-report.json',
      'gate-decision.json',
      'audit/checkpoint.txt',
      'audit/proofs/0.proof.json',
      'audit/entries/0.json',
      'VERIFY.md',
      'verify.sh',
      'SHA256SUMS',
    ]) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    expect(readFileSync(join(out, 'VERIFY.md'), 'utf8')).toContain(
      'openssl dgst -sha256 -verify signing.pub.pem -signature sig.der pae.bin',
    );
  });

  it('keeps internal state and tokens out of run.json', () => {
    const text = readFileSync(join(out, 'run.json'), 'utf8');
    expect(text).not.toContain('taskToken');
    expect(JSON.parse(text)).toMatchObject({ runId, status });
  });

  it('is never written over an existing folder', async () => {
    const r = await cli('export', runId, '--home', ws.home, '--trust-state-keys', '--out', 'evidence');
    expect(r.exit).toBe(2);
    expect(r.err).toContain('EXPORT_TARGET');
  });

  it('checks out with veritrail verify --bundle and the exported key', async () => {
    const r = await cli(
      'verify',
      '--bundle',
      join(out, 'gate.sigstore.json'),
      '--key',
      join(out, 'signing.pub.pem'),
    );
    expect(r.exit).toBe(0);
  });
});

describe.skipIf(!hasOpenssl)('verify.sh, with openssl only', () => {
  const sh = () => spawnSync('sh', [join(out, 'verify.sh')], { encoding: 'utf8' });

  it('verifies every signature, the checkpoint and every inclusion proof', () => {
    const r = sh();
    expect(r.stdout).toContain('verified: every check holds');
    expect(r.stdout).toMatch(/ok {4}provenance\.sigstore\.json: signature verifies/);
    expect(r.stdout).toMatch(/ok {4}audit\/checkpoint\.txt/);
    expect(r.stdout).toMatch(/ok {4}audit\/entries\/0\.json: included/);
    expect(r.status).toBe(0);
  });

  /** Edits a file and re-seals SHA256SUMS, as a forger would, so the deeper checks must catch it. */
  function forge(name: string, edit: (text: string) => string, fn: () => void): void {
    const path = join(out, name);
    const original = readFileSync(path, 'utf8');
    const sums = readFileSync(join(out, 'SHA256SUMS'), 'utf8');
    writeFileSync(path, edit(original));
    const hex = execFileSync('openssl', ['dgst', '-sha256', '-r', path], { encoding: 'utf8' }).split(' ')[0];
    writeFileSync(
      join(out, 'SHA256SUMS'),
      sums.replace(new RegExp(`^[0-9a-f]{64}  ${name}$`, 'm'), `${hex}  ${name}`),
    );
    try {
      fn();
    } finally {
      writeFileSync(path, original);
      writeFileSync(join(out, 'SHA256SUMS'), sums);
    }
  }

  it('fails on a changed statement even when SHA256SUMS was re-sealed', () => {
    forge(
      'provenance.sigstore.json',
      (t) =>
        t.replace(
          /("payload": "[A-Za-z0-9+/]{40})([A-Za-z0-9])/,
          (_m, a: string, c: string) => `${a}${c === 'A' ? 'B' : 'A'}`,
        ),
      () => {
        const r = sh();
        expect(r.stdout).toContain('FAIL  provenance.sigstore.json: signature does NOT verify');
        expect(r.status).toBe(1);
      },
    );
  });

  it('fails on a changed audit entry even when SHA256SUMS was re-sealed', () => {
    forge(
      'audit/entries/2.json',
      (t) => t.replace('"outcome":"success"', '"outcome":"failure"'),
      () => {
        const r = sh();
        expect(r.stdout).toContain('FAIL  audit/entries/2.json: NOT included');
        expect(r.status).toBe(1);
      },
    );
  });

  it('fails when SHA256SUMS does not match', () => {
    const path = join(out, 'gate-decision.json');
    const original = readFileSync(path);
    writeFileSync(path, Buffer.concat([original, Buffer.from(' ')]));
    try {
      expect(sh().stdout).toContain('FAIL  gate-decision.json does not match SHA256SUMS');
    } finally {
      writeFileSync(path, original);
    }
  });
});
