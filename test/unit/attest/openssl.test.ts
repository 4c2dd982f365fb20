import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { signStatement } from '../../../src/core/attest/bundle.js';
import { pae } from '../../../src/core/attest/dsse.js';
import { runStatements } from './fixtures.js';
import { localSigner } from './helpers.js';

const hasOpenssl = spawnSync('openssl', ['version'], { encoding: 'utf8' }).status === 0;
if (!hasOpenssl) console.warn('openssl is not on PATH: skipping the by-hand signature check');

describe.skipIf(!hasOpenssl)('checking a bundle signature by hand with openssl', () => {
  const dir = mkdtempSync(join(tmpdir(), 'veritrail-openssl-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function writeEvidence() {
    const signer = localSigner();
    const { bundle } = await signStatement(runStatements().provenance, signer);
    // Exactly the steps docs/attestations.md gives: decode payload and sig, build PAE, verify.
    const payload = Buffer.from(bundle.dsseEnvelope.payload, 'base64');
    writeFileSync(join(dir, 'pae.bin'), pae(bundle.dsseEnvelope.payloadType, payload));
    writeFileSync(join(dir, 'sig.der'), Buffer.from(bundle.dsseEnvelope.signatures[0]?.sig ?? '', 'base64'));
    writeFileSync(join(dir, 'key.pem'), signer.pem);
  }

  const verify = () =>
    spawnSync('openssl', ['dgst', '-sha256', '-verify', 'key.pem', '-signature', 'sig.der', 'pae.bin'], {
      cwd: dir,
      encoding: 'utf8',
    });

  it('openssl dgst -sha256 -verify says "Verified OK"', async () => {
    await writeEvidence();
    const r = verify();
    expect(r.stdout.trim()).toBe('Verified OK');
    expect(r.status).toBe(0);
  });

  it('and "Verification failure" once one byte of pae.bin changes', async () => {
    await writeEvidence();
    const { readFileSync } = await import('node:fs');
    const p = readFileSync(join(dir, 'pae.bin'));
    p[p.length - 2] = (p[p.length - 2] as number) ^ 1;
    writeFileSync(join(dir, 'pae.bin'), p);
    const r = verify();
    expect(r.stdout).toContain('Verification failure');
    expect(r.status).not.toBe(0);
  });
});
