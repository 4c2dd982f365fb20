import { Buffer } from 'node:buffer';
import { z } from 'zod';
import { type Digest, digestFromHex, hexOf, sha256Hex } from '../digest.js';
import { validateRelativePath } from '../manifest.js';
import { buildStatement, type Statement } from './statement.js';

/**
 * OpenSSF Model Signing v1.0 (sigstore/model-transparency). What we match, from that repository
 * (commit e3430730bca924e672b2e59f10524a7ffb5adf79):
 * - src/model_signing/_signing/signing.py `Payload`: one subject {name: model name, digest:
 *   {sha256: H}} where H = sha256 over the concatenated raw digest bytes of the resources, in the
 *   order they appear in `predicate.resources`; predicate = {serialization, resources:
 *   [{name, algorithm, digest(hex)}]}; predicateType `https://model_signing/signature/v1.0`;
 *   payloadType `application/vnd.in-toto+json`.
 * - `dsse_payload_to_manifest`: the verifier requires exactly one subject and recomputes H.
 * - src/model_signing/manifest.py `_FileSerialization.serialization_parameters`:
 *   {method: "files", hash_type: "sha256", allow_symlinks: bool, ignore_paths?: [..]}; resources
 *   are sorted by path (`Manifest.resource_descriptors` sorts PurePosixPath keys, i.e. segment by
 *   segment); a file is named by its POSIX path relative to the model root, and a model that is a
 *   single file is named "." (`path.relative_to(model_path)` of the file itself).
 */
export const MODEL_SIGNING_PREDICATE_TYPE = 'https://model_signing/signature/v1.0';

interface ModelSigningResource {
  name: string;
  algorithm: 'sha256';
  /** lowercase hex, no `sha256:` prefix */
  digest: string;
}

interface ModelSigningSerialization {
  method: 'files';
  hash_type: 'sha256';
  allow_symlinks: boolean;
  ignore_paths?: string[];
}

interface ModelSigningPredicate {
  serialization: ModelSigningSerialization;
  resources: ModelSigningResource[];
}

export type ModelSigningStatement = Statement<ModelSigningPredicate, typeof MODEL_SIGNING_PREDICATE_TYPE>;

/** Name of the only resource of a single-file model (see the module comment). */
export const SINGLE_FILE_RESOURCE_NAME = '.';

/** Segment-wise path order, as Python's PurePosixPath compares (parts, by code point). */
export function comparePathSegments(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  const n = Math.min(pa.length, pb.length);
  for (let i = 0; i < n; i++) {
    const x = pa[i] as string;
    const y = pb[i] as string;
    if (x !== y) return codePointCompare(x, y);
  }
  return pa.length - pb.length;
}

function codePointCompare(x: string, y: string): number {
  const xs = Array.from(x);
  const ys = Array.from(y);
  const n = Math.min(xs.length, ys.length);
  for (let i = 0; i < n; i++) {
    const d = (xs[i] as string).codePointAt(0) ?? 0;
    const e = (ys[i] as string).codePointAt(0) ?? 0;
    if (d !== e) return d - e;
  }
  return xs.length - ys.length;
}

/** The subject digest: sha256 over the raw 32-byte digests of the resources, in order. */
export function modelSigningRootDigest(resources: readonly { digest: string }[]): Digest {
  const buf = Buffer.concat(resources.map((r) => Buffer.from(r.digest, 'hex')));
  return digestFromHex(sha256Hex(new Uint8Array(buf)));
}

export interface ModelSigningInput {
  /** Informative model name (model-transparency uses the last path component of the model). */
  modelName: string;
  /** Files of the model directory, relative POSIX paths; or one `{path: '.'}` for a single-file model. */
  files: readonly { path: string; digest: Digest }[];
  allowSymlinks?: boolean;
  ignorePaths?: string[];
}

/** Builds the model signature statement (sign it with {@link signStatement}). */
export function buildModelSigningStatement(input: ModelSigningInput): ModelSigningStatement {
  const single = input.files.length === 1 && input.files[0]?.path === SINGLE_FILE_RESOURCE_NAME;
  if (!single) for (const f of input.files) validateRelativePath(f.path);
  const resources: ModelSigningResource[] = [...input.files]
    .sort((a, b) => comparePathSegments(a.path, b.path))
    .map((f) => ({ name: f.path, algorithm: 'sha256', digest: hexOf(f.digest) }));
  const serialization: ModelSigningSerialization = {
    method: 'files',
    hash_type: 'sha256',
    allow_symlinks: input.allowSymlinks ?? false,
    ...(input.ignorePaths === undefined || input.ignorePaths.length === 0
      ? {}
      : { ignore_paths: input.ignorePaths }),
  };
  return buildStatement(
    [{ name: input.modelName, digest: { sha256: hexOf(modelSigningRootDigest(resources)) } }],
    MODEL_SIGNING_PREDICATE_TYPE,
    { serialization, resources },
  ) as ModelSigningStatement;
}

/** Shorthand for a model that is one file (model.tar.gz). */
export function buildSingleFileModelSigningStatement(
  modelName: string,
  digest: Digest,
): ModelSigningStatement {
  return buildModelSigningStatement({ modelName, files: [{ path: SINGLE_FILE_RESOURCE_NAME, digest }] });
}

export const ModelSigningPredicateSchema = z.looseObject({
  serialization: z.looseObject({
    method: z.string(),
    hash_type: z.string(),
    allow_symlinks: z.boolean(),
    ignore_paths: z.array(z.string()).optional(),
  }),
  resources: z.array(
    z.looseObject({
      name: z.string().min(1),
      algorithm: z.literal('sha256'),
      digest: z.string().regex(/^[0-9a-f]{64}$/, 'sha256 resource digests are 64 lowercase hex digits'),
    }),
  ),
});
