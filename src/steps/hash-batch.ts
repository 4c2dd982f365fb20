import { putJsonCas } from '../cas.js';
import { VeritrailError } from '../core/errors.js';
import { describeIssues } from '../core/pipeline.js';
import type { Runtime } from '../runtime.js';
import { hashBatch } from './hash-dataset.js';
import { type BatchInput, BatchInputSchema, type BatchResult, refusal } from './hashing.js';

/** Reads one child's input, as the HashBatches Map's ItemBatcher builds it. */
function parseBatchInput(event: unknown): BatchInput {
  const parsed = BatchInputSchema.safeParse(event);
  if (!parsed.success) {
    throw new VeritrailError(
      'EVENT_INVALID',
      `HashBatch input is not a batch of listed files: ${describeIssues(parsed.error)}`,
    );
  }
  return parsed.data;
}

/**
 * HashBatch, the task of each HashBatches child execution: streams and hashes its batch of the
 * listing (each file by its pinned version, sizes checked against the listing), stores the hashed
 * files content-addressed and returns only where: `{key, files}`, about 90 bytes however large the
 * batch, which the Map's ResultWriter exports with the child's input to S3 for HashDataset
 * (src/steps/map-results.ts). A refusal is returned as data, a transient error thrown for the
 * ASL's Retry (src/steps/hashing.ts).
 */
export async function hashListedBatch(
  rt: Pick<Runtime, 'datasets' | 'objects'>,
  event: unknown,
): Promise<BatchResult> {
  const { Items } = parseBatchInput(event);
  try {
    const pinned = await hashBatch(rt, Items);
    const stored = await putJsonCas(rt.objects, pinned);
    return { key: stored.key, files: pinned.length };
  } catch (e) {
    return { ...refusal(e), files: Items.length };
  }
}
