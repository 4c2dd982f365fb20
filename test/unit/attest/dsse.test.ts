import { createPublicKey, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeBase64 } from '../../../src/core/attest/base64.js';
import { decodeEnvelope, pae, signEnvelope, verifyPae } from '../../../src/core/attest/dsse.js';
import { isAttestationError } from '../../../src/core/attest/errors.js';
import { parsePublicKey } from '../../../src/core/attest/keys.js';
import { localSigner } from './helpers.js';

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

/** Decimal big integer → base64url of its 32-byte big-endian encoding (JWK coordinates). */
function b64u32(decimal: string): string {
  return Buffer.from(BigInt(decimal).toString(16).padStart(64, '0'), 'hex').toString('base64url');
}

describe('PAE', () => {
  it('matches the published example of DSSE protocol.md "Test Vectors"', () => {
    // secure-systems-lab/dsse protocol.md v1.0.2, Test Vectors.
    expect(text(pae('http://example.com/HelloWorld', bytes('hello world')))).toBe(
      'DSSEv1 29 http://example.com/HelloWorld 11 hello world',
    );
  });

  it('counts bytes, not characters, for both lengths', () => {
    // "é" is two UTF-8 bytes; "€" three.
    expect(text(pae('é', bytes('€')))).toBe('DSSEv1 2 é 3 €');
  });

  it('encodes an empty type and body with zero lengths', () => {
    expect(text(pae('', new Uint8Array()))).toBe('DSSEv1 0  0 ');
  });

  it('keeps a binary body byte for byte', () => {
    const body = new Uint8Array([0, 255, 32, 10]);
    const out = pae('t', body);
    expect(Array.from(out.slice(-4))).toEqual([0, 255, 32, 10]);
    expect(text(out.slice(0, -4))).toBe('DSSEv1 1 t 4 ');
  });
});

describe('the published DSSE envelope example', () => {
  // protocol.md: ECDSA P-256/SHA-256, signature = raw r||s, key given as decimal X, Y.
  const jwk = {
    kty: 'EC',
    crv: 'P-256',
    x: b64u32('46950820868899156662930047687818585632848591499744589407958293238635476079160'),
    y: b64u32('5640078356564379163099075877009565129882514886557779369047442380624545832820'),
  };
  const envelope = {
    payload: 'aGVsbG8gd29ybGQ=',
    payloadType: 'http://example.com/HelloWorld',
    signatures: [
      { sig: 'A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA==' },
    ],
  };

  it('verifies over our PAE with the spec key', () => {
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    const env = decodeEnvelope(envelope);
    const sig = env.signatures[0]?.sig ?? new Uint8Array();
    expect(env.signatures[0]?.keyid).toBe('');
    expect(verify('sha256', pae(env.payloadType, env.payload), { key, dsaEncoding: 'ieee-p1363' }, sig)).toBe(
      true,
    );
  });

  it('does not verify once the payload type changes', () => {
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    const env = decodeEnvelope(envelope);
    const sig = env.signatures[0]?.sig ?? new Uint8Array();
    expect(
      verify(
        'sha256',
        pae('http://example.com/HelloWorlD', env.payload),
        { key, dsaEncoding: 'ieee-p1363' },
        sig,
      ),
    ).toBe(false);
  });
});

describe('signEnvelope', () => {
  it('signs PAE with the signer and records base64 payload, type and keyid', async () => {
    const signer = localSigner('kms-key-1');
    const env = await signEnvelope('application/x-test', bytes('payload'), signer);
    expect(env.payloadType).toBe('application/x-test');
    expect(text(decodeBase64(env.payload, 'payload'))).toBe('payload');
    expect(env.signatures).toHaveLength(1);
    expect(env.signatures[0]?.keyid).toBe('kms-key-1');
    const key = parsePublicKey(signer.pem);
    const sig = decodeBase64(env.signatures[0]?.sig, 'sig');
    expect(verifyPae(key, 'application/x-test', bytes('payload'), sig)).toBe(true);
    expect(verifyPae(key, 'application/x-test', bytes('payloae'), sig)).toBe(false);
  });

  it('uses the keyid it is given', async () => {
    const env = await signEnvelope('t', bytes('p'), localSigner(), { keyid: 'abc' });
    expect(env.signatures[0]?.keyid).toBe('abc');
  });
});

describe('when the envelope is malformed', () => {
  const cases: [string, unknown][] = [
    ['not an object', 'x'],
    ['no payloadType', { payload: '', signatures: [] }],
    ['signatures not an array', { payload: '', payloadType: 't', signatures: {} }],
    ['payload not base64', { payload: 'a$b', payloadType: 't', signatures: [] }],
    ['signature without sig', { payload: '', payloadType: 't', signatures: [{ keyid: 'k' }] }],
    ['keyid a number', { payload: '', payloadType: 't', signatures: [{ sig: 'AA==', keyid: 1 }] }],
  ];
  it.each(cases)('refuses %s with BUNDLE_MALFORMED', (_, value) => {
    let caught: unknown;
    try {
      decodeEnvelope(value);
    } catch (e) {
      caught = e;
    }
    expect(isAttestationError(caught, 'BUNDLE_MALFORMED')).toBe(true);
  });

  it('accepts URL-safe base64 as DSSE requires, and an unset keyid as empty', () => {
    const env = decodeEnvelope({ payload: '-_8', payloadType: 't', signatures: [{ sig: '_w' }] });
    expect(Array.from(env.payload)).toEqual([0xfb, 0xff]);
    expect(env.signatures[0]?.keyid).toBe('');
  });
});

describe('strict base64', () => {
  it.each(['A', 'AB=', 'AB===', 'AR==', 'A B=', 'AAAA='])('refuses %j', (s) => {
    expect(() => decodeBase64(s, 'x')).toThrow(expect.objectContaining({ code: 'BUNDLE_MALFORMED' }));
  });
  it.each([
    ['', []],
    ['AA==', [0]],
    ['AA', [0]],
    ['AAA=', [0, 0]],
  ])('decodes %j', (s, expected) => {
    expect(Array.from(decodeBase64(s, 'x'))).toEqual(expected);
  });
});
