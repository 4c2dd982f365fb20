/**
 * The self-contained inclusion proof that `audit prove` emits and a third party checks offline
 * with nothing but the log's public key. Format (docs/audit-log.md):
 *
 *   {
 *     "mediaType": "application/vnd.veritrail.audit-proof.v1+json",
 *     "origin": "<log origin = checkpoint key name>",
 *     "keyId": "<hint naming the signing key>",
 *     "publicKeyPem": "<convenience copy; verifiers must use a key they trust>",
 *     "entry": { ...the audit entry... },
 *     "leafIndex": <seq>, "treeSize": <checkpoint size>,
 *     "inclusionProof": ["<base64 hash>", ...],
 *     "checkpoint": "<C2SP signed note>"
 *   }
 *
 * Verification: leaf = SHA-256(0x00 || JCS(entry)); RFC 9162 §2.1.3.2 with the checkpoint's
 * root, after the checkpoint's signature verifies under the trusted key.
 */

import { parseEntry } from '../../core/audit-entry.js';
import { CheckpointError, openCheckpoint, type SignedCheckpoint } from '../../core/checkpoint.js';
import { VeritrailError } from '../../core/errors.js';
import { canonicalBytes } from '../../core/jcs.js';
import { hashLeaf, ProofError, verifyInclusionProof } from '../../core/merkle.js';
import type { AuditEntry } from '../../ports.js';

export const PROOF_MEDIA_TYPE = 'application/vnd.veritrail.audit-proof.v1+json';

export interface ProofBundle {
  mediaType: typeof PROOF_MEDIA_TYPE;
  origin: string;
  keyId: string;
  publicKeyPem?: string;
  entry: AuditEntry;
  leafIndex: number;
  treeSize: number;
  inclusionProof: string[];
  checkpoint: string;
}

function malformed(why: string, cause?: unknown): VeritrailError {
  return new VeritrailError('AUDIT_CORRUPT', `the proof bundle is malformed: ${why}`, {
    cause,
    details: { reason: 'PROOF_MALFORMED' },
  });
}

function b64(s: unknown, what: string): Uint8Array {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw malformed(`${what} is not base64`);
  return new Uint8Array(Buffer.from(s, 'base64'));
}

/**
 * Checks a proof bundle (JSON text or parsed) against a trusted public key. Returns the proven
 * entry and checkpoint; throws VeritrailError SIGNATURE_INVALID (checkpoint not signed by that
 * key) or AUDIT_CORRUPT (with `details.reason`: a ProofError code, LEAF_INDEX_MISMATCH,
 * TREE_SIZE_MISMATCH or PROOF_MALFORMED). Pure: no I/O.
 */
export function verifyProofBundle(
  json: string | unknown,
  publicKeyPem: string,
): { entry: AuditEntry; checkpoint: SignedCheckpoint } {
  let v: unknown = json;
  if (typeof json === 'string') {
    try {
      v = JSON.parse(json);
    } catch (e) {
      throw malformed('not JSON', e);
    }
  }
  if (typeof v !== 'object' || v === null) throw malformed('not an object');
  const b = v as Record<string, unknown>;
  if (b.mediaType !== PROOF_MEDIA_TYPE) throw malformed(`mediaType is not ${PROOF_MEDIA_TYPE}`);
  if (typeof b.origin !== 'string' || typeof b.checkpoint !== 'string')
    throw malformed('origin and checkpoint are required');
  if (!Number.isSafeInteger(b.leafIndex) || !Number.isSafeInteger(b.treeSize))
    throw malformed('leafIndex and treeSize must be integers');
  if (!Array.isArray(b.inclusionProof)) throw malformed('inclusionProof must be an array');
  const proof = b.inclusionProof.map((h, i) => b64(h, `inclusionProof[${i}]`));
  let entryBytes: Uint8Array;
  try {
    entryBytes = canonicalBytes(b.entry);
  } catch (e) {
    throw malformed('entry is not JSON', e);
  }
  const parsed = parseEntry(entryBytes);
  if (!parsed.ok) throw malformed(`entry: ${parsed.reason}`);

  let checkpoint: SignedCheckpoint;
  try {
    checkpoint = openCheckpoint(b.checkpoint, { name: b.origin, publicKeyPem });
  } catch (e) {
    const code = e instanceof CheckpointError ? e.code : 'CHECKPOINT_MALFORMED';
    throw new VeritrailError(
      'SIGNATURE_INVALID',
      `the checkpoint is not signed by the trusted key (${code})`,
      {
        cause: e,
        details: { reason: code },
      },
    );
  }
  if (checkpoint.origin !== b.origin) throw malformed('the checkpoint origin differs from the bundle origin');
  if (checkpoint.size !== b.treeSize) {
    throw new VeritrailError('AUDIT_CORRUPT', 'treeSize differs from the signed checkpoint size', {
      details: { reason: 'TREE_SIZE_MISMATCH' },
    });
  }
  if (parsed.entry.seq !== b.leafIndex) {
    throw new VeritrailError('AUDIT_CORRUPT', 'leafIndex differs from the entry seq', {
      details: { reason: 'LEAF_INDEX_MISMATCH' },
    });
  }
  try {
    verifyInclusionProof({
      leafHash: hashLeaf(entryBytes),
      index: BigInt(b.leafIndex as number),
      treeSize: BigInt(checkpoint.size),
      proof,
      root: checkpoint.root,
    });
  } catch (e) {
    const reason = e instanceof ProofError ? e.code : 'PROOF_MALFORMED';
    throw new VeritrailError(
      'AUDIT_CORRUPT',
      `the entry is not proven in the signed checkpoint (${reason})`,
      {
        cause: e,
        details: { reason },
      },
    );
  }
  return { entry: parsed.entry, checkpoint };
}
