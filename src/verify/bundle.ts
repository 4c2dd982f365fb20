import { isAttestationError, verifyBundle } from '../core/attest/index.js';
import type { VerifyCheck } from './codes.js';
import { hashPath } from './hash-path.js';

/**
 * `verify --bundle`: one Sigstore bundle against one public key, and optionally the artifact it must
 * name (a file's SHA-256, or a folder's manifest digest). No state dir. Bad input files are thrown
 * as VeritrailError (DATASET_MISSING, PATH_REJECTED…); verification failures are checks.
 */
export async function verifySingleBundle(
  bundleText: string,
  publicKeyPem: string,
  options: { artifact?: string } = {},
): Promise<{ ok: boolean; checks: VerifyCheck[] }> {
  const checks: VerifyCheck[] = [];
  const artifact = options.artifact === undefined ? undefined : await hashPath(options.artifact);
  let json: unknown;
  try {
    json = JSON.parse(bundleText);
  } catch {
    checks.push({
      name: 'bundle.signature',
      ok: false,
      code: 'BUNDLE_MALFORMED',
      detail: 'the bundle is not JSON',
    });
    return { ok: false, checks };
  }
  try {
    const v = verifyBundle(json, publicKeyPem);
    checks.push({
      name: 'bundle.signature',
      ok: true,
      code: 'OK',
      detail: `${v.statement.predicateType} signed by the given key`,
    });
  } catch (e) {
    if (!isAttestationError(e)) throw e;
    checks.push({ name: 'bundle.signature', ok: false, code: e.code, detail: e.message });
    return { ok: false, checks };
  }
  if (artifact !== undefined) {
    try {
      verifyBundle(json, publicKeyPem, { artifact: artifact.digest });
      checks.push({
        name: 'bundle.subject',
        ok: true,
        code: 'OK',
        detail: `a subject is the artifact ${artifact.digest}`,
      });
    } catch (e) {
      if (!isAttestationError(e)) throw e;
      checks.push({ name: 'bundle.subject', ok: false, code: e.code, detail: e.message });
    }
  }
  return { ok: checks.every((c) => c.ok), checks };
}
