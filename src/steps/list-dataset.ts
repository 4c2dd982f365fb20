import { putJsonCas } from '../cas.js';
import { VeritrailError } from '../core/errors.js';
import type { DatasetFile, DatasetSource } from '../ports.js';
import type { Runtime } from '../runtime.js';
import { type ListResult, listingKey, refusal } from './hashing.js';
import { parseState } from './step.js';

/**
 * ListDataset, the first state of HashDataset: lists the dataset's files, each pinned (its S3
 * VersionId), and stores the listing as an RFC 8785 JSON array under `listings/<sha256>.json`, where
 * the HashBatches Distributed Map reads it (ItemReader, `s3:getObject`, InputType JSON). An
 * ItemReader over the S3 listing itself (`s3:listObjectsV2`) would give keys without VersionIds, so
 * the pin would be lost between listing and hashing; reading our own pinned listing keeps it.
 *
 * It records nothing in the run: HashDataset (the fold) is the step, and fails with this state's
 * refusal when there is one (src/steps/hashing.ts).
 */
export async function listDataset(
  rt: Pick<Runtime, 'datasets' | 'objects'>,
  event: unknown,
): Promise<ListResult> {
  const state = parseState(event);
  try {
    const files = await listPinned(rt.datasets, state.dataset);
    if (files.length === 0) {
      throw new VeritrailError('DATASET_EMPTY', `dataset ${state.dataset.uri} holds no files`);
    }
    const stored = await putJsonCas(rt.objects, files, listingKey);
    return { listing: { key: stored.key, digest: stored.digest, files: files.length } };
  } catch (e) {
    return refusal(e);
  }
}

/**
 * The files of a dataset, each pinned to its version, as ListDataset lists them: the listing the
 * dataset digest is taken over, here and in the start service's retrain decision.
 */
export function listPinned(
  datasets: Pick<DatasetSource, 'list'>,
  dataset: { uri: string; versionId?: string },
): Promise<DatasetFile[]> {
  return datasets.list(dataset.uri, dataset.versionId ? { versionId: dataset.versionId } : {});
}
