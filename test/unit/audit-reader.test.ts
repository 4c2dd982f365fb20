/**
 * A reader of the audit log holds the log's public key only (PEM or KeyObject), never a signer:
 * it reads entries and checkpoints, proves entries under a stored checkpoint, names the key ID
 * proof bundles name, and refuses what would need the signer (making a checkpoint).
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ObjectAuditLog } from '../../src/audit/log.js';
import { openLogReader } from '../../src/audit/reader.js';
import { LogVerifier } from '../../src/audit/verify/log-verifier.js';
import { verifyProofBundle } from '../../src/audit/verify/proof.js';
import { event, MemoryObjectStore, testSigner } from '../reliability/helpers.js';

async function signedLog(entries: number) {
  const store = new MemoryObjectStore();
  const signer = testSigner();
  const log = new ObjectAuditLog({ store, signer });
  for (let i = 0; i < entries; i++) await log.append(event(i));
  await log.checkpoint();
  return { store, signer, pem: await signer.publicKeyPem() };
}

describe('a reader opened with the public key (PEM)', () => {
  it('reads, proves and verifies like the log opened with the signer', async () => {
    const { store, signer, pem } = await signedLog(5);
    const reader = openLogReader({ store, publicKey: pem });
    expect((await reader.latestCheckpoint())?.size).toBe(5);
    const seen: number[] = [];
    for await (const e of reader.entriesOf('run-1')) seen.push(e.seq);
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    const proof = await reader.prove(3, { checkpointSize: 5 });
    expect(proof.keyId).toBe(signer.keyId);
    expect(verifyProofBundle(proof, pem).entry.seq).toBe(3);
    const report = await new LogVerifier(reader).verify();
    expect(report.ok).toBe(true);
    expect(report.entries).toBe(5);
  });

  it('cannot make a checkpoint: prove without one covering the entry is refused', async () => {
    const { store, pem } = await signedLog(2);
    const reader = openLogReader({ store, publicKey: pem });
    await expect(reader.prove(7)).rejects.toMatchObject({ code: 'USAGE' });
  });
});

describe('a reader opened with a KeyObject', () => {
  it("takes it (or a private key's public half) and checks checkpoints with it", async () => {
    const { store, signer } = await signedLog(3);
    const reader = openLogReader({ store, publicKey: signer.privateKey });
    expect((await reader.latestCheckpoint())?.size).toBe(3);
    const own = openLogReader({ store, publicKey: createPublicKey(signer.privateKey) });
    expect((await own.latestCheckpoint())?.size).toBe(3);
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const stranger = openLogReader({ store, publicKey: other });
    await expect(stranger.latestCheckpoint()).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
  });
});
