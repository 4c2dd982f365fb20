import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type CheckpointErrorCode,
  formatCheckpoint,
  keyIdOf,
  openCheckpoint,
  parseCheckpointText,
  parseSignedNote,
  signCheckpoint,
} from '../../src/core/checkpoint.js';

/** The example checkpoint of c2sp.org/tlog-checkpoint (an Ed25519-signed note). */
const C2SP_EXAMPLE = `example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
`;

function keyPair() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return {
    name: 'veritrail.test/audit',
    publicKeyPem,
    sign: async (m: Uint8Array) => new Uint8Array(sign('sha256', m, { key: privateKey, dsaEncoding: 'der' })),
  };
}

function codeOf(f: () => unknown): CheckpointErrorCode | 'NO_ERROR' | 'OTHER' {
  try {
    f();
    return 'NO_ERROR';
  } catch (e) {
    return e instanceof Error && e.name === 'CheckpointError' && 'code' in e
      ? (e.code as CheckpointErrorCode)
      : 'OTHER';
  }
}

const ROOT = new Uint8Array(32).fill(7);

describe('checkpoint text (c2sp.org/tlog-checkpoint)', () => {
  it('parses the published example', () => {
    const { text, signatures } = parseSignedNote(C2SP_EXAMPLE);
    const c = parseCheckpointText(text);
    expect(c.origin).toBe('example.com/behind-the-sofa');
    expect(c.size).toBe(20852163);
    expect(Buffer.from(c.root).toString('base64')).toBe('CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=');
    expect(signatures).toHaveLength(1);
    expect(signatures[0]?.name).toBe('example.com/behind-the-sofa');
    // Ed25519: 4-byte key ID + 64-byte signature.
    expect(signatures[0]?.signature).toHaveLength(64);
  });

  it('formats origin, size, base64 root and extension lines, each ending with a newline', () => {
    expect(formatCheckpoint({ origin: 'o.example/log', size: 12, root: ROOT, extensions: ['ext 1'] })).toBe(
      `o.example/log\n12\n${Buffer.from(ROOT).toString('base64')}\next 1\n`,
    );
  });

  describe('when the text is malformed', () => {
    const good = `o\n1\n${Buffer.from(ROOT).toString('base64')}\n`;
    const bad: [string, string][] = [
      ['no final newline', good.slice(0, -1)],
      ['a leading zero in the size', good.replace('\n1\n', '\n01\n')],
      ['a negative size', good.replace('\n1\n', '\n-1\n')],
      ['a size beyond 2^53', good.replace('\n1\n', '\n99999999999999999\n')],
      ['a short root', `o\n1\n${Buffer.from(ROOT.subarray(1)).toString('base64')}\n`],
      ['a root that is not base64', 'o\n1\n!!!!\n'],
      ['an empty origin', good.replace(/^o/, '')],
      ['an empty extension line', `${good}\n`],
      ['only two lines', 'o\n1\n'],
    ];
    for (const [what, text] of bad) {
      it(`rejects ${what} with CHECKPOINT_MALFORMED`, () => {
        expect(codeOf(() => parseCheckpointText(text))).toBe('CHECKPOINT_MALFORMED');
      });
    }
  });
});

describe('signed checkpoints (c2sp.org/signed-note, ECDSA type 0x02)', () => {
  it('round-trips: signed by the key, opened with its public key', async () => {
    const key = keyPair();
    const signed = await signCheckpoint({ origin: key.name, size: 5, root: ROOT, extensions: [] }, key);
    expect(signed.note.startsWith(`${key.name}\n5\n`)).toBe(true);
    const sigLine = signed.note.trimEnd().split('\n').pop() ?? '';
    expect(sigLine.startsWith(`— ${key.name} `)).toBe(true);
    const blob = Buffer.from(sigLine.split(' ')[2] ?? '', 'base64');
    expect(Buffer.from(blob.subarray(0, 4))).toEqual(Buffer.from(keyIdOf(key.publicKeyPem)));
    const opened = openCheckpoint(signed.note, key);
    expect(opened.size).toBe(5);
    expect(Buffer.from(opened.root)).toEqual(Buffer.from(ROOT));
  });

  it('derives the key ID as the first 4 bytes of SHA-256 of the DER SPKI', async () => {
    const key = keyPair();
    const { createHash, createPublicKey } = await import('node:crypto');
    const der = createPublicKey(key.publicKeyPem).export({ type: 'spki', format: 'der' });
    expect(Buffer.from(keyIdOf(key.publicKeyPem))).toEqual(
      createHash('sha256').update(der).digest().subarray(0, 4),
    );
  });

  describe('when the checkpoint is altered after signing', () => {
    it('fails with CHECKPOINT_SIGNATURE_INVALID', async () => {
      const key = keyPair();
      const signed = await signCheckpoint({ origin: key.name, size: 5, root: ROOT, extensions: [] }, key);
      expect(codeOf(() => openCheckpoint(signed.note.replace('\n5\n', '\n6\n'), key))).toBe(
        'CHECKPOINT_SIGNATURE_INVALID',
      );
    });
  });

  describe('when the checkpoint is signed by another key', () => {
    it('fails with CHECKPOINT_UNSIGNED (unknown signatures are ignored)', async () => {
      const key = keyPair();
      const other = keyPair();
      const signed = await signCheckpoint({ origin: key.name, size: 5, root: ROOT, extensions: [] }, other);
      expect(codeOf(() => openCheckpoint(signed.note, key))).toBe('CHECKPOINT_UNSIGNED');
    });
  });

  describe('when a forger keeps our key ID but signs with another key', () => {
    it('fails with CHECKPOINT_SIGNATURE_INVALID', async () => {
      const key = keyPair();
      const forger = keyPair();
      const signed = await signCheckpoint(
        { origin: key.name, size: 9, root: ROOT, extensions: [] },
        {
          ...forger,
          publicKeyPem: key.publicKeyPem,
        },
      );
      expect(codeOf(() => openCheckpoint(signed.note, key))).toBe('CHECKPOINT_SIGNATURE_INVALID');
    });
  });

  describe('when the note is garbage', () => {
    const key = keyPair();
    for (const [what, note] of [
      ['empty', ''],
      ['no signature block', 'o\n1\nAAAA\n'],
      ['a control character', `o\n1\n\u0007\n\n— k AAAAAAAA\n`],
      ['a bad signature line', 'o\n1\nAAAA\n\n-- k AAAAAAAA\n'],
      ['a short signature', 'o\n1\nAAAA\n\n— k AAAA\n'],
      ['not a string', 42],
    ] as const) {
      it(`rejects ${what} with CHECKPOINT_MALFORMED`, () => {
        expect(codeOf(() => openCheckpoint(note as string, key))).toBe('CHECKPOINT_MALFORMED');
      });
    }
  });
});
