/**
 * Reading evidence back defensively: a record fact that is not a content address, an object that
 * is gone, bytes that are not JSON or not a manifest all become a check's code, never a throw.
 */
import { readObject } from '../../cas.js';
import { digestOf, digestsEqual } from '../../core/digest.js';
import { isVeritrailError, toErrorInfo } from '../../core/errors.js';
import { type Manifest, parseManifest } from '../../core/manifest.js';
import { type FailCode, missing, type VerifyContext } from './context.js';

/** A content address in the artifacts bucket: `sha256/<64 hex>`, nothing else (no `..`, no prefix). */
export const CAS_KEY = /^sha256\/[0-9a-f]{64}$/;

/** An artifacts object read by its content address, and whether its bytes still hash to that address. */
export type Read =
  | { ok: true; bytes: Uint8Array; addressed: boolean }
  | { ok: false; code: FailCode; detail: string };

/** Reads the content-addressed artifacts object a run record fact names. */
export async function readCas(ctx: VerifyContext, key: unknown, what: string): Promise<Read> {
  if (key === undefined) return { ok: false, code: 'EVIDENCE_MISSING', detail: missing(ctx, what) };
  if (typeof key !== 'string' || !CAS_KEY.test(key)) {
    return {
      ok: false,
      code: 'RECORD_INVALID',
      detail: `the ${what} key in the run record is not a content address`,
    };
  }
  try {
    const bytes = await readObject(ctx.deps.objects, 'artifacts', key);
    return { ok: true, bytes, addressed: digestsEqual(digestOf(bytes), `sha256:${key.slice(7)}`) };
  } catch (e) {
    if (isVeritrailError(e, 'OBJECT_NOT_FOUND')) {
      return { ok: false, code: 'EVIDENCE_MISSING', detail: `the ${what} (${key}) is not in the store` };
    }
    return {
      ok: false,
      code: 'EVIDENCE_MISSING',
      detail: `the ${what} (${key}) cannot be read: ${toErrorInfo(e).message}`,
    };
  }
}

/** `bytes` as a JSON object, or undefined when they are not one. */
export function jsonOf(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The manifest in `bytes`, or why it is not one. */
export function manifestOf(bytes: Uint8Array): Manifest | string {
  const v = jsonOf(bytes);
  if (v === undefined) return 'the manifest is not JSON';
  try {
    return parseManifest(v);
  } catch (e) {
    return `the manifest is invalid: ${toErrorInfo(e).message}`;
  }
}
