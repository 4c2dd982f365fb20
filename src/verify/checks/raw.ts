/**
 * The first link: the raw data the run was started on. `raw.manifest` (the stored manifest
 * describes the recorded raw digest) and `raw.data` (the data still hashes to it: a local file or
 * folder, or on a deployed stage the S3 objects at the versions the run pinned).
 */
import { fileURLToPath } from 'node:url';
import { hashStream } from '../../cas.js';
import { type Digest, digestFromHex, digestsEqual } from '../../core/digest.js';
import { toErrorInfo } from '../../core/errors.js';
import { buildManifest, datasetDigest, type Manifest, manifestDigest } from '../../core/manifest.js';
import type { DatasetFile, DatasetSource } from '../../ports.js';
import { hashPath } from '../hash-path.js';
import { altered, short, type VerifyContext } from './context.js';
import { manifestOf, readCas } from './read.js';

/** `raw.manifest`: the stored raw manifest is intact and describes the recorded raw digest. */
export async function checkRawManifest(ctx: VerifyContext, rawDigest: Digest): Promise<void> {
  const c = ctx.checks;
  const r = await readCas(ctx, ctx.facts.rawManifestKey, 'raw data manifest');
  if (!r.ok) {
    c.fail('raw.manifest', r.code, r.detail);
    return;
  }
  ctx.evidence.rawManifest = r.bytes;
  const m = manifestOf(r.bytes);
  if (!r.addressed) c.fail('raw.manifest', 'DIGEST_MISMATCH', altered('raw data manifest'));
  else if (typeof m === 'string') c.fail('raw.manifest', 'MANIFEST_INVALID', m);
  else if (!namesDataset(m, rawDigest)) {
    c.fail(
      'raw.manifest',
      'DIGEST_MISMATCH',
      `the raw data manifest does not describe the recorded raw data ${short(rawDigest)}`,
    );
  } else c.pass('raw.manifest', `${m.files.length} file(s), raw data ${short(rawDigest)}`);
}

/** The raw data pins (raw.pins.json: each file's URI, size and VersionId), kept as evidence when readable. */
export async function readRawPins(ctx: VerifyContext): Promise<void> {
  const pins = await readCas(ctx, ctx.facts.rawPinsKey, 'raw data pins');
  if (pins.ok) ctx.evidence.rawPins = pins.bytes;
}

/**
 * `raw.data`: the data at the run's dataset URI still hashes to the recorded digest. Returns the
 * digest the data has now (the recorded one when it cannot be read), for the checks after it.
 */
export async function checkRawData(ctx: VerifyContext, rawDigest: Digest): Promise<Digest> {
  const c = ctx.checks;
  const uri = ctx.run.dataset.uri;
  const datasets = ctx.deps.datasets;
  if (!uri.startsWith('file://') && datasets === undefined) {
    c.fail(
      'raw.data',
      'EVIDENCE_MISSING',
      `the raw data is at ${uri}; verify a deployed run with --stage <stage> to read it`,
    );
    return rawDigest;
  }
  if (!uri.startsWith('file://') && datasets !== undefined) {
    const pinned = ctx.evidence.rawPins === undefined ? undefined : pinnedFilesOf(ctx.evidence.rawPins);
    if (pinned === undefined) {
      c.fail('raw.data', 'EVIDENCE_MISSING', `the raw data at ${uri} has no readable pinned file list`);
      return rawDigest;
    }
    try {
      const actual = await rehashPinned(datasets, pinned);
      if (digestsEqual(actual, rawDigest))
        c.pass('raw.data', `${uri} (${pinned.length} pinned version(s)) hashes to ${short(rawDigest)}`);
      else
        c.fail(
          'raw.data',
          'DIGEST_MISMATCH',
          `the raw data at ${uri}, read at its pinned versions, hashes to ${short(actual)}, the run recorded ${short(rawDigest)}`,
        );
      return actual;
    } catch (e) {
      c.fail(
        'raw.data',
        'EVIDENCE_MISSING',
        `the raw data at ${uri} cannot be read: ${toErrorInfo(e).message}`,
      );
      return rawDigest;
    }
  }
  try {
    const actual = await hashPath(fileURLToPath(uri));
    if (digestsEqual(actual.digest, rawDigest)) c.pass('raw.data', `${uri} hashes to ${short(rawDigest)}`);
    else {
      c.fail(
        'raw.data',
        'DIGEST_MISMATCH',
        `the raw data at ${uri} hashes to ${short(actual.digest)}, the run recorded ${short(rawDigest)}: the data changed after the run`,
      );
    }
    return actual.digest;
  } catch (e) {
    c.fail(
      'raw.data',
      'EVIDENCE_MISSING',
      `the raw data at ${uri} cannot be read: ${toErrorInfo(e).message}`,
    );
    return rawDigest;
  }
}

/** A dataset digest is a single file's own digest or a folder's manifest digest (HashDataset). */
function namesDataset(m: Manifest, digest: Digest): boolean {
  const [only, ...more] = m.files;
  if (only !== undefined && more.length === 0 && digestsEqual(only.digest, digest)) return true;
  return digestsEqual(manifestDigest(m), digest);
}

/** The pinned files of raw.pins.json (path, size, VersionId), or undefined when it is not that. */
function pinnedFilesOf(bytes: Uint8Array): DatasetFile[] | undefined {
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (!Array.isArray(v)) return undefined;
    const out: DatasetFile[] = [];
    for (const f of v as Record<string, unknown>[]) {
      if (typeof f?.uri !== 'string' || typeof f.path !== 'string' || typeof f.size !== 'number')
        return undefined;
      out.push({
        uri: f.uri,
        path: f.path,
        size: f.size,
        ...(typeof f.versionId === 'string' ? { versionId: f.versionId } : {}),
      });
    }
    return out.length > 0 ? out : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The dataset digest of `files` as HashDataset computes it (a single file's own SHA-256, else its
 * manifest's), each file streamed at its pinned version and its size checked.
 */
async function rehashPinned(datasets: Pick<DatasetSource, 'open'>, files: DatasetFile[]): Promise<Digest> {
  const hashed: { path: string; size: number; digest: Digest }[] = [];
  for (const f of files) {
    const { hex, size } = await hashStream(await datasets.open(f));
    if (size !== f.size)
      throw new Error(`${f.path} is ${size} bytes at its pinned version, the pins say ${f.size}`);
    hashed.push({ path: f.path, size, digest: digestFromHex(hex) });
  }
  return datasetDigest(buildManifest(hashed));
}
