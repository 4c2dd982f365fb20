import { putBytesCas } from '../cas.js';
import { type Statement, serializeBundle, signStatement } from '../core/attest/index.js';
import { signingKeyId } from '../core/attest/keys.js';
import { type Digest, digestOf } from '../core/digest.js';
import type { AuditLog, Signer } from '../ports.js';
import type { Runtime } from '../runtime.js';

export interface StoredBundle {
  /** Artifacts key of the bundle (content-addressed by the bundle's bytes). */
  key: string;
  digest: Digest;
  /** sha256 of the signed statement (the DSSE payload). */
  statementDigest: Digest;
}

/** Records the signer's key in the audit log's key history before it signs anything (rotation). */
export async function noteSigningKey(rt: { audit: AuditLog; signer: Signer }): Promise<Digest> {
  const id = await signingKeyId(rt.signer);
  await rt.audit.noteSigningKey?.(id, await rt.signer.publicKeyPem());
  return id;
}

/** Signs an in-toto statement with the runtime's signer and stores the Sigstore bundle content-addressed. */
export async function signAndStore(rt: Runtime, statement: Statement): Promise<StoredBundle> {
  await noteSigningKey(rt);
  const signed = await signStatement(statement, rt.signer);
  const bytes = new TextEncoder().encode(serializeBundle(signed.bundle));
  const stored = await putBytesCas(rt.objects, bytes, digestOf(bytes));
  return { key: stored.key, digest: stored.digest, statementDigest: signed.payloadDigest };
}
