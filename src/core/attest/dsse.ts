import { verify as cryptoVerify } from 'node:crypto';
import { decodeBase64, encodeBase64 } from './base64.js';
import { AttestationError } from './errors.js';
import type { Signer, VerificationKey } from './keys.js';

/**
 * DSSE v1 (https://github.com/secure-systems-lab/dsse, protocol.md v1.0.2 and envelope.md).
 */

/** The JSON envelope of envelope.md: base64 payload, payloadType, signatures [{keyid, sig}]. */
export interface DsseEnvelope {
  payload: string;
  payloadType: string;
  signatures: DsseSignature[];
}

interface DsseSignature {
  /** Unauthenticated hint naming the key (protocol.md: MUST NOT be used for security decisions). */
  keyid?: string;
  /** base64 of the ASN.1 DER ECDSA signature. */
  sig: string;
}

const encoder = new TextEncoder();

/**
 * Pre-Authentication Encoding, protocol.md "Signature Definition":
 * `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, LEN = ASCII decimal byte length, no
 * leading zeros; `type` is UTF8(PAYLOAD_TYPE). Lengths are byte lengths, not string lengths.
 */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = encoder.encode(payloadType);
  const head = encoder.encode(`DSSEv1 ${type.length} `);
  const mid = encoder.encode(` ${payload.length} `);
  const out = new Uint8Array(head.length + type.length + mid.length + payload.length);
  out.set(head, 0);
  out.set(type, head.length);
  out.set(mid, head.length + type.length);
  out.set(payload, head.length + type.length + mid.length);
  return out;
}

/**
 * Signs `payload` as a DSSE envelope with one signature: Signer.sign(PAE) gives a DER ECDSA
 * signature over sha256(PAE). `keyid` defaults to the signer's keyId; when the envelope goes into
 * a Sigstore bundle use {@link signStatement}, which sets it to the bundle's key hint as
 * sigstore_bundle.proto requires.
 */
export async function signEnvelope(
  payloadType: string,
  payload: Uint8Array,
  signer: Signer,
  options?: { keyid?: string },
): Promise<DsseEnvelope> {
  const sig = await signer.sign(pae(payloadType, payload));
  return {
    payload: encodeBase64(payload),
    payloadType,
    signatures: [{ keyid: options?.keyid ?? signer.keyId, sig: encodeBase64(sig) }],
  };
}

/** An envelope whose fields have been decoded, not yet verified. */
export interface DecodedEnvelope {
  payloadType: string;
  payload: Uint8Array;
  signatures: { keyid: string; sig: Uint8Array }[];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Decodes an envelope per envelope.md "Parsing rules": payload, payloadType, signatures and
 * each sig are required; keyid is optional and unset equals empty; unknown fields are ignored.
 * BUNDLE_MALFORMED on anything else.
 */
export function decodeEnvelope(value: unknown): DecodedEnvelope {
  if (!isRecord(value))
    throw new AttestationError('BUNDLE_MALFORMED', 'the DSSE envelope is not a JSON object');
  const { payload, payloadType, signatures } = value;
  if (typeof payloadType !== 'string') {
    throw new AttestationError('BUNDLE_MALFORMED', 'the DSSE envelope has no payloadType string');
  }
  if (!Array.isArray(signatures)) {
    throw new AttestationError('BUNDLE_MALFORMED', 'the DSSE envelope has no signatures array');
  }
  const decoded = signatures.map((s, i) => {
    if (!isRecord(s)) throw new AttestationError('BUNDLE_MALFORMED', `signature ${i} is not a JSON object`);
    const keyid = s.keyid ?? '';
    if (typeof keyid !== 'string')
      throw new AttestationError('BUNDLE_MALFORMED', `signature ${i} keyid is not a string`);
    return { keyid, sig: decodeBase64(s.sig, `signature ${i}`) };
  });
  return { payloadType, payload: decodeBase64(payload, 'the DSSE payload'), signatures: decoded };
}

/**
 * True when `sig` (ASN.1 DER) verifies over PAE(payloadType, payload) with `key`. Never throws:
 * a garbled DER signature is simply not a valid signature.
 */
export function verifyPae(
  key: VerificationKey,
  payloadType: string,
  payload: Uint8Array,
  sig: Uint8Array,
): boolean {
  try {
    return cryptoVerify(key.hash, pae(payloadType, payload), { key: key.key, dsaEncoding: 'der' }, sig);
  } catch {
    return false;
  }
}

/**
 * Verifies the single signature of a decoded envelope (protocol.md "To verify"). The keyid is
 * not consulted: it is unauthenticated. SIGNATURE_INVALID when it does not verify.
 */
export function verifyEnvelopeSignature(key: VerificationKey, env: DecodedEnvelope): void {
  const [first] = env.signatures;
  if (first === undefined || !verifyPae(key, env.payloadType, env.payload, first.sig)) {
    throw new AttestationError(
      'SIGNATURE_INVALID',
      'the DSSE signature does not verify with the given public key: the payload, its type or the signature was altered, or another key signed it',
      { details: { keyHint: key.hint } },
    );
  }
}
