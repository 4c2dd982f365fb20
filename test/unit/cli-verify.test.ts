import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { buildStatement, resource, serializeBundle, signStatement } from '../../src/core/attest/index.js';
import { digestOf } from '../../src/core/digest.js';
import type { Signer } from '../../src/ports.js';
import type { VerifyCheck } from '../../src/verify/codes.js';
import { captureIo, makeWorkspace } from '../helpers/workspace.js';

function keyPair(): { signer: Signer; pem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return {
    pem,
    signer: {
      keyId: 'test',
      publicKeyPem: async () => pem,
      sign: async (m) => new Uint8Array(sign('sha256', m, { key: privateKey, dsaEncoding: 'der' })),
    },
  };
}

async function cli(cwd: string, ...args: string[]) {
  const io = captureIo(cwd);
  const exit = await main(args, io);
  return { exit, out: io.stdout.join(''), err: io.stderr.join('') };
}

describe('verify --bundle', () => {
  let dir: string;
  const key = keyPair();
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'veritrail-verify-'));
    writeFileSync(join(dir, 'model.bin'), 'the model');
    writeFileSync(join(dir, 'other.bin'), 'another model');
    const statement = buildStatement(
      [resource('model.bin', digestOf('the model'))],
      'https://example.com/test/v1',
      { note: 'x' },
    );
    writeFileSync(join(dir, 'b.json'), serializeBundle((await signStatement(statement, key.signer)).bundle));
    writeFileSync(join(dir, 'key.pem'), key.pem);
    writeFileSync(join(dir, 'other.pem'), keyPair().pem);
    writeFileSync(join(dir, 'junk.json'), 'not json');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const codes = (out: string) => (JSON.parse(out) as { checks: VerifyCheck[] }).checks.map((c) => c.code);

  it('holds with the signing key, and for the artifact it names', async () => {
    const r = await cli(
      dir,
      'verify',
      '--bundle',
      'b.json',
      '--key',
      'key.pem',
      '--artifact',
      'model.bin',
      '--json',
    );
    expect(r.exit).toBe(0);
    expect(codes(r.out)).toEqual(['OK', 'OK']);
  });
  it('fails with SUBJECT_MISMATCH for another artifact', async () => {
    const r = await cli(
      dir,
      'verify',
      '--bundle',
      'b.json',
      '--key',
      'key.pem',
      '--artifact',
      'other.bin',
      '--json',
    );
    expect(r.exit).toBe(1);
    expect(codes(r.out)).toEqual(['OK', 'SUBJECT_MISMATCH']);
  });
  it('fails with SIGNATURE_INVALID under another key and names it in text', async () => {
    const r = await cli(dir, 'verify', '--bundle', 'b.json', '--key', 'other.pem');
    expect(r.exit).toBe(1);
    expect(r.out).toContain('first broken link bundle.signature [SIGNATURE_INVALID]');
  });
  it('fails with BUNDLE_MALFORMED for a file that is not JSON', async () => {
    expect(
      codes((await cli(dir, 'verify', '--bundle', 'junk.json', '--key', 'key.pem', '--json')).out),
    ).toEqual(['BUNDLE_MALFORMED']);
  });
  it('is a usage error (exit 2) without --key or with both a run id and --bundle', async () => {
    expect((await cli(dir, 'verify', '--bundle', 'b.json')).exit).toBe(2);
    expect((await cli(dir, 'verify', 'r-1', '--bundle', 'b.json', '--key', 'key.pem')).exit).toBe(2);
  });
});

describe('verify <runId>', () => {
  const ws = makeWorkspace({
    rows: 300,
    pipeline: (def) => {
      (def.trainer as { command: string[] }).command = ['node', '-e', 'process.exit(3)'];
    },
  });
  afterAll(() => ws.cleanup());

  it('says KEY_MISSING (exit 2) for a state dir without keys', async () => {
    const r = await cli(
      ws.dir,
      'verify',
      'r-nope',
      '--home',
      join(ws.dir, 'empty-home'),
      '--trust-state-keys',
    );
    expect(r.exit).toBe(2);
    expect(r.err).toContain('KEY_MISSING');
  });

  describe('when the run FAILED in training', () => {
    it('verifies what exists and reports the missing model as EVIDENCE_MISSING', async () => {
      const run = await cli(
        ws.dir,
        'run',
        ws.dataset,
        '--pipeline',
        ws.pipeline,
        '--home',
        ws.home,
        '--json',
      );
      expect(run.exit).toBe(1);
      const runId = (JSON.parse(run.out) as { runId: string }).runId;
      const r = await cli(ws.dir, 'verify', runId, '--home', ws.home, '--trust-state-keys', '--json');
      const report = JSON.parse(r.out) as { ok: boolean; status: string; checks: VerifyCheck[] };
      const byName = Object.fromEntries(report.checks.map((c) => [c.name, c.code]));
      expect(r.exit).toBe(1);
      expect(report.status).toBe('FAILED');
      expect(byName).toMatchObject({
        'raw.data': 'OK',
        'processed.data': 'OK',
        'transform.signature': 'OK',
        'model.data': 'EVIDENCE_MISSING',
        'provenance.signature': 'EVIDENCE_MISSING',
        'record.status': 'OK',
        'audit.inclusion': 'OK',
      });
      expect(report.checks.find((c) => !c.ok)?.code).toBe('EVIDENCE_MISSING');
    });

    it('says RUN_NOT_FOUND (exit 1) for a run the state dir does not know', async () => {
      const r = await cli(ws.dir, 'verify', 'r-nope', '--home', ws.home, '--trust-state-keys');
      expect(r.exit).toBe(1);
      expect(r.err).toContain('RUN_NOT_FOUND');
    });
  });
});
