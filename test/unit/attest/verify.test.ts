import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeBase64 } from '../../../src/core/attest/base64.js';
import {
  type BUNDLE_MEDIA_TYPE,
  type SigstoreBundle,
  signStatement,
  statementDigest,
} from '../../../src/core/attest/bundle.js';
import { signEnvelope } from '../../../src/core/attest/dsse.js';
import { type AttestationErrorCode, isAttestationError } from '../../../src/core/attest/errors.js';
import { publicKeyHint } from '../../../src/core/attest/keys.js';
import { buildFairnessStatement, FAIRNESS_PREDICATE_TYPE } from '../../../src/core/attest/predicates.js';
import { IN_TOTO_PAYLOAD_TYPE, type Statement } from '../../../src/core/attest/statement.js';
import { verifyBundle } from '../../../src/core/attest/verify.js';
import { digestOf } from '../../../src/core/digest.js';
import { canonicalBytes } from '../../../src/core/jcs.js';
import type { Signer } from '../../../src/ports.js';
import { clone, d, localSigner } from './helpers.js';

const modelBytes = new TextEncoder().encode('model.tar.gz bytes');
const model = { name: 'model.tar.gz', digest: digestOf(modelBytes) };

function fairness(): Statement {
  return buildFairnessStatement({
    model,
    predicate: {
      runId: 'run-1',
      evaluationData: { name: 'validation', digest: { sha256: d('validation').slice(7) } },
      label: { column: 'default', positive: '1' },
      confidenceLevel: 0.95,
      intervalMethod: 'wilson',
      groups: [{ attribute: 'sex', value: 'F', tp: 10, fp: 2, tn: 30, fn: 3 }],
      metrics: [
        { name: 'disparate_impact', attribute: 'sex', value: 0.91, interval: { lower: 0.8, upper: 1.02 } },
      ],
      evaluatedOn: '2026-01-02T03:04:05Z',
    },
  });
}

function codeOf(f: () => unknown): AttestationErrorCode | 'NO_ERROR' | 'FOREIGN_ERROR' {
  try {
    f();
    return 'NO_ERROR';
  } catch (e) {
    return isAttestationError(e) ? e.code : 'FOREIGN_ERROR';
  }
}

const signer = localSigner();
const signed = await signStatement(fairness(), signer);

describe('signStatement', () => {
  it('produces a Sigstore bundle v0.3 with a key hint, no tlog entries and one DSSE signature', () => {
    const b = signed.bundle;
    expect(b.mediaType).toBe('application/vnd.dev.sigstore.bundle.v0.3+json');
    expect(Object.keys(b).sort()).toEqual(['dsseEnvelope', 'mediaType', 'verificationMaterial']);
    expect(b.verificationMaterial).toEqual({
      publicKey: { hint: publicKeyHint(signer.pem) },
      tlogEntries: [],
    });
    expect(b.dsseEnvelope.payloadType).toBe(IN_TOTO_PAYLOAD_TYPE);
    expect(b.dsseEnvelope.signatures).toHaveLength(1);
    // sigstore_bundle.proto: key hints in the material and the envelope MUST be the same.
    expect(b.dsseEnvelope.signatures[0]?.keyid).toBe(b.verificationMaterial.publicKey.hint);
  });

  it('signs the RFC 8785 canonical statement, whose digest it reports', () => {
    const payload = Buffer.from(signed.bundle.dsseEnvelope.payload, 'base64');
    expect(new Uint8Array(payload)).toEqual(canonicalBytes(fairness()));
    expect(signed.payloadDigest).toBe(digestOf(new Uint8Array(payload)));
    expect(signed.payloadDigest).toBe(statementDigest(fairness()));
  });

  it('refuses a signer whose signatures do not verify with its own public key', async () => {
    const other = localSigner();
    const liar: Signer = { keyId: 'liar', publicKeyPem: signer.publicKeyPem, sign: other.sign };
    await expect(signStatement(fairness(), liar)).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
  });

  it('refuses a signer whose public key is not PEM', async () => {
    const broken: Signer = { keyId: 'x', publicKeyPem: async () => 'nope', sign: signer.sign };
    await expect(signStatement(fairness(), broken)).rejects.toMatchObject({ code: 'KEY_INVALID' });
  });
});

describe('verifyBundle round trip', () => {
  it('returns the statement, the verified payload and its digest', () => {
    const v = verifyBundle(signed.bundle, signer.pem, {
      artifact: modelBytes,
      predicateType: FAIRNESS_PREDICATE_TYPE,
    });
    expect(v.statement).toEqual(fairness());
    expect(v.payloadDigest).toBe(signed.payloadDigest);
    expect(v.keyHint).toBe(signed.keyHint);
  });

  it('reads the bundle from JSON text and from UTF-8 bytes', () => {
    const json = JSON.stringify(signed.bundle);
    expect(verifyBundle(json, signer.pem).payloadDigest).toBe(signed.payloadDigest);
    expect(verifyBundle(new TextEncoder().encode(json), signer.pem).payloadDigest).toBe(signed.payloadDigest);
  });

  it('accepts the artifact as a digest', () => {
    expect(() => verifyBundle(signed.bundle, signer.pem, { artifact: model.digest })).not.toThrow();
  });

  it('accepts the older media type spelling of bundle 0.3', () => {
    const b = { ...clone(signed.bundle), mediaType: 'application/vnd.dev.sigstore.bundle+json;version=0.3' };
    expect(() => verifyBundle(b, signer.pem)).not.toThrow();
  });
});

/** Flips one bit of the byte at `i` of a base64 field. */
function flipByte(b64: string, i: number): string {
  const raw = Buffer.from(b64, 'base64');
  raw[i % raw.length] = (raw[i % raw.length] as number) ^ 0x01;
  return raw.toString('base64');
}

async function resign(statement: unknown, payloadType = IN_TOTO_PAYLOAD_TYPE): Promise<SigstoreBundle> {
  const payload =
    typeof statement === 'string' ? new TextEncoder().encode(statement) : canonicalBytes(statement);
  const env = await signEnvelope(payloadType, payload, signer, { keyid: signed.keyHint });
  return { ...clone(signed.bundle), dsseEnvelope: env };
}

describe('tamper matrix: one change → the right code', () => {
  const otherKey = localSigner().pem;
  const cases: [
    string,
    () => SigstoreBundle | Promise<SigstoreBundle>,
    string,
    AttestationErrorCode | 'NO_ERROR',
  ][] = [
    [
      'one byte of the payload',
      () => {
        const b = clone(signed.bundle);
        b.dsseEnvelope.payload = flipByte(b.dsseEnvelope.payload, 40);
        return b;
      },
      signer.pem,
      'SIGNATURE_INVALID',
    ],
    [
      'one byte of the signature',
      () => {
        const b = clone(signed.bundle);
        const s = b.dsseEnvelope.signatures[0];
        if (s) s.sig = flipByte(s.sig, 20);
        return b;
      },
      signer.pem,
      'SIGNATURE_INVALID',
    ],
    [
      'the payloadType (signed through PAE)',
      () => ({
        ...clone(signed.bundle),
        dsseEnvelope: { ...clone(signed.bundle.dsseEnvelope), payloadType: 'application/json' },
      }),
      signer.pem,
      'SIGNATURE_INVALID',
    ],
    ['verification with another key', () => clone(signed.bundle), otherKey, 'SIGNATURE_INVALID'],
    [
      'the DSSE keyid (unauthenticated, irrelevant)',
      () => {
        const b = clone(signed.bundle);
        const s = b.dsseEnvelope.signatures[0];
        if (s) s.keyid = 'something-else';
        return b;
      },
      signer.pem,
      'NO_ERROR',
    ],
    [
      'the key hint (unauthenticated, irrelevant)',
      () => {
        const b = clone(signed.bundle);
        b.verificationMaterial.publicKey.hint = '00';
        return b;
      },
      signer.pem,
      'NO_ERROR',
    ],
    [
      'a second signature',
      () => {
        const b = clone(signed.bundle);
        b.dsseEnvelope.signatures.push(clone(b.dsseEnvelope.signatures[0] ?? { sig: '' }));
        return b;
      },
      signer.pem,
      'BUNDLE_MALFORMED',
    ],
    [
      'no signature',
      () => {
        const b = clone(signed.bundle);
        b.dsseEnvelope.signatures = [];
        return b;
      },
      signer.pem,
      'BUNDLE_MALFORMED',
    ],
    [
      'the mediaType',
      () => ({
        ...clone(signed.bundle),
        mediaType: 'application/vnd.dev.sigstore.bundle.v0.2+json' as typeof BUNDLE_MEDIA_TYPE,
      }),
      signer.pem,
      'BUNDLE_MALFORMED',
    ],
    [
      'a signed non-in-toto payloadType',
      () => resign(fairness(), 'application/json'),
      signer.pem,
      'PAYLOAD_TYPE',
    ],
    ['a signed payload that is not JSON', () => resign('{"_type":'), signer.pem, 'STATEMENT_MALFORMED'],
    [
      'a signed statement with the wrong _type',
      () => resign({ ...fairness(), _type: 'https://in-toto.io/Statement/v0.1' }),
      signer.pem,
      'STATEMENT_MALFORMED',
    ],
    [
      'a signed statement with no subject',
      () => resign({ ...fairness(), subject: [] }),
      signer.pem,
      'STATEMENT_MALFORMED',
    ],
    [
      'a signed statement with an upper-case sha256',
      () => {
        const s = fairness();
        const sub = s.subject[0];
        if (sub) sub.digest.sha256 = (sub.digest.sha256 ?? '').toUpperCase();
        return resign(s);
      },
      signer.pem,
      'STATEMENT_MALFORMED',
    ],
    [
      'a signed fairness predicate without metrics',
      () => resign({ ...fairness(), predicate: { ...(fairness().predicate as object), metrics: [] } }),
      signer.pem,
      'PREDICATE_MALFORMED',
    ],
    [
      'one hex digit of the (re-signed) subject digest',
      () => {
        const s = fairness();
        const sub = s.subject[0];
        if (sub)
          sub.digest.sha256 = `${(sub.digest.sha256 ?? '').slice(0, 63)}${sub.digest.sha256?.endsWith('0') ? '1' : '0'}`;
        return resign(s);
      },
      signer.pem,
      'SUBJECT_MISMATCH',
    ],
  ];

  it.each(cases)('%s', async (_, make, key, expected) => {
    const bundle = await make();
    expect(codeOf(() => verifyBundle(bundle, key, { artifact: modelBytes }))).toBe(expected);
  });

  it('one byte of the artifact → SUBJECT_MISMATCH', () => {
    const changed = new Uint8Array(modelBytes);
    changed[0] = (changed[0] as number) ^ 1;
    expect(codeOf(() => verifyBundle(signed.bundle, signer.pem, { artifact: changed }))).toBe(
      'SUBJECT_MISMATCH',
    );
  });

  it('another predicate type than expected → PREDICATE_TYPE', () => {
    expect(
      codeOf(() =>
        verifyBundle(signed.bundle, signer.pem, { predicateType: 'https://slsa.dev/provenance/v1' }),
      ),
    ).toBe('PREDICATE_TYPE');
  });
});

describe('when the key is not usable', () => {
  it.each([
    ['garbage', 'not a key'],
    ['a private key', localSigner().privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()],
  ])('%s → KEY_INVALID', (_, pem) => {
    expect(codeOf(() => verifyBundle(signed.bundle, pem))).toBe('KEY_INVALID');
  });

  it('an Ed25519 key → KEY_INVALID', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const pem = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(codeOf(() => verifyBundle(signed.bundle, pem))).toBe('KEY_INVALID');
  });
});

describe('when the input is arbitrary', () => {
  it('never throws anything but an AttestationError', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(codeOf(() => verifyBundle(value, signer.pem))).not.toBe('FOREIGN_ERROR');
      }),
      { numRuns: 300 },
    );
  });

  it('never throws anything but an AttestationError for mutated bundles', () => {
    const base = clone(signed.bundle) as unknown as Record<string, unknown>;
    const paths = [
      'mediaType',
      'verificationMaterial',
      'dsseEnvelope',
      'dsseEnvelope.payload',
      'dsseEnvelope.signatures',
    ];
    fc.assert(
      fc.property(fc.constantFrom(...paths), fc.jsonValue(), (path, replacement) => {
        const b = clone(base);
        const parts = path.split('.');
        let target: Record<string, unknown> = b;
        for (const p of parts.slice(0, -1)) target = target[p] as Record<string, unknown>;
        target[parts.at(-1) ?? ''] = replacement;
        expect(codeOf(() => verifyBundle(b, signer.pem))).not.toBe('FOREIGN_ERROR');
      }),
      { numRuns: 300 },
    );
  });

  it('treats a signed payload of random bytes as a malformed statement', async () => {
    const env = await signEnvelope(IN_TOTO_PAYLOAD_TYPE, new Uint8Array([0xff, 0xfe, 0x00]), signer);
    const b = { ...clone(signed.bundle), dsseEnvelope: env };
    expect(codeOf(() => verifyBundle(b, signer.pem))).toBe('STATEMENT_MALFORMED');
    expect(encodeBase64(new Uint8Array([0xff]))).toBe('/w==');
  });
});
