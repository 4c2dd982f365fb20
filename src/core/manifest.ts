import { z } from 'zod';
import { type Digest, isDigest } from './digest.js';
import { VeritrailError } from './errors.js';
import { canonicalDigest } from './jcs.js';

/**
 * Dataset manifest: what a directory (or an S3 prefix) *is*, byte for byte.
 *
 * Shape (docs/attestations.md, "Dataset manifest"):
 *
 * ```json
 * {"mediaType":"application/vnd.veritrail.manifest.v1+json",
 *  "files":[{"path":"a/b.csv","size":12,"digest":"sha256:<hex>"}, …]}
 * ```
 *
 * `files` is sorted by the UTF-8 bytes of `path` (not by UTF-16 code units, which is what
 * `Array.prototype.sort` would do: the two orders differ above U+FFFF). The dataset digest is the
 * sha256 of the RFC 8785 canonical form of this object, so it depends on nothing but the paths,
 * sizes and file digests.
 */
export const MANIFEST_MEDIA_TYPE = 'application/vnd.veritrail.manifest.v1+json';

export interface ManifestEntry {
  /** Relative POSIX path, validated by {@link validateRelativePath}. */
  path: string;
  /** Byte length of the file. */
  size: number;
  digest: Digest;
}

export interface Manifest {
  mediaType: typeof MANIFEST_MEDIA_TYPE;
  files: ManifestEntry[];
}

const utf8 = new TextEncoder();
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function rejectPath(p: string, why: string): never {
  throw new VeritrailError(
    'PATH_REJECTED',
    `path ${JSON.stringify(p)} is rejected: ${why}. Use a relative path with "/" separators and no "." or ".." segments.`,
    { details: { path: p } },
  );
}

/**
 * Checks that `p` is a safe relative POSIX path and returns it unchanged (no normalisation: the
 * manifest records bytes, and two spellings of one file must not produce two digests).
 * Throws VeritrailError PATH_REJECTED on: empty path, NUL, backslash, an absolute path (leading
 * `/` or a drive letter), empty segments (`a//b`, trailing `/`), `.` or `..` segments, and text
 * that is not well-formed Unicode (a lone surrogate has no UTF-8 encoding to sort or hash).
 */
export function validateRelativePath(p: string): string {
  if (typeof p !== 'string') rejectPath(String(p), 'it is not a string');
  if (p.length === 0) rejectPath(p, 'it is empty');
  if (p.includes('\0')) rejectPath(p, 'it contains a NUL byte');
  if (p.includes('\\')) rejectPath(p, 'it contains a backslash');
  if (p.startsWith('/')) rejectPath(p, 'it is absolute');
  if (/^[A-Za-z]:/.test(p)) rejectPath(p, 'it starts with a drive letter');
  if (LONE_SURROGATE.test(p)) rejectPath(p, 'it is not well-formed Unicode');
  for (const segment of p.split('/')) {
    if (segment === '') rejectPath(p, 'it has an empty segment');
    if (segment === '..') rejectPath(p, 'it has a ".." segment');
    if (segment === '.') rejectPath(p, 'it has a "." segment');
  }
  return p;
}

/** Orders strings by their UTF-8 bytes (equivalently, by Unicode code points). */
export function compareUtf8(a: string, b: string): number {
  const ab = utf8.encode(a);
  const bb = utf8.encode(b);
  const n = Math.min(ab.length, bb.length);
  for (let i = 0; i < n; i++) {
    const d = (ab[i] as number) - (bb[i] as number);
    if (d !== 0) return d;
  }
  return ab.length - bb.length;
}

/**
 * Builds the manifest from file entries given in any order. Validates every path, size and
 * digest; refuses duplicate paths and a path that is both a file and a directory (`a` and `a/b`),
 * since such a set cannot be laid out as a directory again.
 */
export function buildManifest(entries: Iterable<ManifestEntry>): Manifest {
  const files: ManifestEntry[] = [];
  for (const e of entries) {
    validateRelativePath(e.path);
    if (!Number.isSafeInteger(e.size) || e.size < 0) {
      throw new VeritrailError(
        'DATASET_VALUE',
        `size of ${JSON.stringify(e.path)} must be a non-negative integer`,
        {
          details: { path: e.path, size: e.size },
        },
      );
    }
    if (!isDigest(e.digest)) {
      throw new VeritrailError(
        'DIGEST_MISMATCH',
        `digest of ${JSON.stringify(e.path)} must be sha256:<64 lowercase hex>, got ${JSON.stringify(e.digest)}`,
        { details: { path: e.path } },
      );
    }
    files.push({ path: e.path, size: e.size, digest: e.digest });
  }
  files.sort((a, b) => compareUtf8(a.path, b.path));
  const paths = new Set<string>();
  for (const f of files) {
    if (paths.has(f.path)) rejectPath(f.path, 'it appears twice in the dataset');
    paths.add(f.path);
  }
  for (const f of files) {
    const segments = f.path.split('/');
    for (let i = 1; i < segments.length; i++) {
      const parent = segments.slice(0, i).join('/');
      if (paths.has(parent)) rejectPath(f.path, `its parent ${JSON.stringify(parent)} is also a file`);
    }
  }
  return { mediaType: MANIFEST_MEDIA_TYPE, files };
}

/** The dataset digest: sha256 of the RFC 8785 canonical manifest. */
export function manifestDigest(manifest: Manifest): Digest {
  return canonicalDigest({ mediaType: manifest.mediaType, files: manifest.files });
}

/**
 * The digest that names a dataset (docs/attestations.md, "Dataset manifest"): a single file's own
 * sha256, as sha256sum prints it; several files', their manifest's. The one rule HashDataset, the
 * start service, `veritrail run` and `veritrail verify` apply.
 */
export function datasetDigest(manifest: Manifest): Digest {
  const [only, ...more] = manifest.files;
  return only !== undefined && more.length === 0 ? only.digest : manifestDigest(manifest);
}

const ManifestSchema = z.strictObject({
  mediaType: z.literal(MANIFEST_MEDIA_TYPE),
  files: z.array(
    z.strictObject({
      path: z.string(),
      size: z.number(),
      digest: z.string(),
    }),
  ),
});

/**
 * Reads a manifest back (from a file, an object, an evidence folder) and checks it is exactly
 * what {@link buildManifest} would produce: valid paths, sorted, no duplicates. Anything else is
 * DATASET_VALUE (or PATH_REJECTED / DIGEST_MISMATCH for a bad entry), never a silent re-sort:
 * a re-sorted manifest would hash to a different digest than the one that was signed.
 */
export function parseManifest(value: unknown): Manifest {
  const parsed = ManifestSchema.safeParse(value);
  if (!parsed.success) {
    throw new VeritrailError(
      'DATASET_VALUE',
      `not a veritrail manifest: ${parsed.error.issues[0]?.message ?? ''}`,
      {
        cause: parsed.error,
      },
    );
  }
  const rebuilt = buildManifest(parsed.data.files as ManifestEntry[]);
  rebuilt.files.forEach((f, i) => {
    if (parsed.data.files[i]?.path !== f.path) {
      throw new VeritrailError(
        'DATASET_VALUE',
        'manifest files are not sorted by the UTF-8 bytes of their paths',
        {
          details: { index: i },
        },
      );
    }
  });
  return rebuilt;
}
