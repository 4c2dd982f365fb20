/** The third link: `model.data`, the stored model.tar.gz hashes to the recorded model digest. */
import { hashStream } from '../../cas.js';
import { type Digest, digestsEqual } from '../../core/digest.js';
import { toErrorInfo } from '../../core/errors.js';
import { short, type VerifyContext } from './context.js';
import { CAS_KEY } from './read.js';

/** Where a SageMaker training job writes its model: `training/<pipeline>/<job>/output/model.tar.gz`. */
const TRAINING_MODEL_KEY = /^training\/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*\/)+model\.tar\.gz$/;

/**
 * `model.data`: model.tar.gz, read where the run recorded it (its content address, or the training job output), hashes to the recorded
 * model digest. Returns the digest it has now (the recorded one when it cannot be read).
 */
export async function checkModelData(ctx: VerifyContext, modelDigest: Digest): Promise<Digest> {
  const c = ctx.checks;
  const key = ctx.facts.modelKey;
  // Content-addressed (the embedded trainer), or where SageMaker wrote it (`training/…`): either
  // way the bytes are hashed below and must be the recorded digest.
  if (typeof key !== 'string' || !(CAS_KEY.test(key) || TRAINING_MODEL_KEY.test(key))) {
    c.fail(
      'model.data',
      key === undefined ? 'EVIDENCE_MISSING' : 'RECORD_INVALID',
      'the run record names no model.tar.gz in the artifacts bucket (sha256/… or training/…)',
    );
    return modelDigest;
  }
  try {
    const { hex } = await hashStream(await ctx.deps.objects.open('artifacts', key));
    const actual: Digest = `sha256:${hex}`;
    if (digestsEqual(actual, modelDigest))
      c.pass('model.data', `model.tar.gz hashes to ${short(modelDigest)}`);
    else
      c.fail(
        'model.data',
        'DIGEST_MISMATCH',
        `model.tar.gz hashes to ${short(actual)}, the run recorded ${short(modelDigest)}`,
      );
    return actual;
  } catch (e) {
    c.fail(
      'model.data',
      'EVIDENCE_MISSING',
      `model.tar.gz (${key}) cannot be read: ${toErrorInfo(e).message}`,
    );
    return modelDigest;
  }
}
