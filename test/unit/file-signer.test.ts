import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pae } from '../../src/core/attest/index.js';
import { isVeritrailError } from '../../src/core/errors.js';
import { openFileSigner } from '../../src/local/file-signer.js';

const dir = mkdtempSync(join(tmpdir(), 'veritrail-signer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

describe('the local P-256 file signer', () => {
  it('creates its key on first use, readable by the owner only, and reuses it', async () => {
    const path = join(dir, 'keys', 'signing.key');
    const a = await openFileSigner(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const b = await openFileSigner(path);
    expect(b.keyId).toBe(a.keyId);
    expect(await b.publicKeyPem()).toBe(await a.publicKeyPem());
    expect(await a.publicKeyPem()).toMatch(/^-----BEGIN PUBLIC KEY-----/);
  });

  it('refuses a key file others can read', async () => {
    const path = join(dir, 'loose.key');
    await openFileSigner(path);
    chmodSync(path, 0o644);
    await expect(openFileSigner(path)).rejects.toSatisfy((e) => isVeritrailError(e, 'SIGNATURE_INVALID'));
  });

  it.skipIf(!hasOpenssl)(
    'makes DER signatures that `openssl dgst -sha256 -verify` accepts, and rejects after a one-byte change',
    async () => {
      const signer = await openFileSigner(join(dir, 'openssl.key'));
      const message = pae('application/vnd.in-toto+json', new TextEncoder().encode('{"hello":"auditor"}'));
      writeFileSync(join(dir, 'pae.bin'), message);
      writeFileSync(join(dir, 'sig.der'), await signer.sign(message));
      writeFileSync(join(dir, 'key.pem'), await signer.publicKeyPem());
      const args = [
        'dgst',
        '-sha256',
        '-verify',
        join(dir, 'key.pem'),
        '-signature',
        join(dir, 'sig.der'),
        join(dir, 'pae.bin'),
      ];
      expect(execFileSync('openssl', args).toString()).toContain('Verified OK');
      message[message.length - 2] = (message[message.length - 2] ?? 0) ^ 1;
      writeFileSync(join(dir, 'pae.bin'), message);
      expect(spawnSync('openssl', args).status).not.toBe(0);
    },
  );
});
if (!hasOpenssl) console.warn('openssl not on PATH: skipping the openssl verification of local signatures');
