/**
 * The second link: the processed data Preprocess wrote. `processed.manifest` (the stored manifest
 * hashes to the recorded processed digest) and `processed.data` (each file to its entry).
 */
import { hashStream } from '../../cas.js';
import { type Digest, digestsEqual } from '../../core/digest.js';
import { toErrorInfo } from '../../core/errors.js';
import { CONTENT_PREFIX } from '../../core/layout.js';
import { buildManifest, type Manifest, type ManifestEntry, manifestDigest } from '../../core/manifest.js';
import { altered, type FailCode, short, type VerifyContext } from './context.js';
import { manifestOf, readCas } from './read.js';

/**
 * `processed.manifest`: the stored processed manifest is intact and hashes to the recorded
 * processed digest. Returns it when it does.
 */
export async function checkProcessedManifest(
  ctx: VerifyContext,
  processedDigest: Digest,
): Promise<Manifest | undefined> {
  const c = ctx.checks;
  const r = await readCas(ctx, ctx.facts.processedManifestKey, 'processed data manifest');
  if (!r.ok) {
    c.fail('processed.manifest', r.code, r.detail);
    return undefined;
  }
  ctx.evidence.processedManifest = r.bytes;
  const m = manifestOf(r.bytes);
  if (!r.addressed) c.fail('processed.manifest', 'DIGEST_MISMATCH', altered('processed data manifest'));
  else if (typeof m === 'string') c.fail('processed.manifest', 'MANIFEST_INVALID', m);
  else if (!digestsEqual(manifestDigest(m), processedDigest)) {
    c.fail(
      'processed.manifest',
      'DIGEST_MISMATCH',
      `the processed data manifest is not the one recorded (${short(processedDigest)})`,
    );
  } else {
    c.pass('processed.manifest', `${m.files.length} file(s), processed data ${short(processedDigest)}`);
    return m;
  }
  return undefined;
}

/**
 * `processed.data`: every file of the manifest, read by its content address, has the digest and
 * size its entry says. Returns the digest of the manifest of what was read, for the checks after it.
 */
export async function checkProcessedData(ctx: VerifyContext, processed: Manifest): Promise<Digest> {
  const actual: ManifestEntry[] = [];
  const problems: { code: FailCode; detail: string }[] = [];
  for (const f of processed.files) {
    try {
      const { hex, size } = await hashStream(
        await ctx.deps.objects.open('artifacts', `${CONTENT_PREFIX}${f.digest.slice(7)}`),
      );
      actual.push({ path: f.path, size, digest: `sha256:${hex}` });
      if (hex !== f.digest.slice(7) || size !== f.size) {
        problems.push({
          code: 'DIGEST_MISMATCH',
          detail: `processed file ${f.path} hashes to sha256:${hex.slice(0, 16)}…, its manifest says ${short(f.digest)}`,
        });
      }
    } catch (e) {
      actual.push(f);
      problems.push({
        code: 'EVIDENCE_MISSING',
        detail: `processed file ${f.path} cannot be read: ${toErrorInfo(e).message}`,
      });
    }
  }
  const actualDigest = manifestDigest(buildManifest(actual));
  const first = problems[0];
  if (first === undefined) ctx.checks.pass('processed.data', `${actual.length} file(s) match the manifest`);
  else ctx.checks.fail('processed.data', first.code, problems.map((p) => p.detail).join('; '));
  return actualDigest;
}
