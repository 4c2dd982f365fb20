/**
 * What the states of HashDataset pass each other (state-machines/training-pipeline.asl.json):
 *
 *   ListDataset   → `$.results.hash` = { listing: {key, digest, files} } | { error }
 *   HashBatches   (Distributed Map over the listing, ItemBatcher) → each HashBatch child gets
 *                 { BatchInput: {runId}, Items: [DatasetFile…] } and returns {key, files} | {error, files};
 *                 the Map's ResultWriter writes the children's results to the artifacts bucket under
 *                 map-results/<runId>/, and the Map puts where ({MapRunArn, ResultWriterDetails}) at
 *                 `$.results.hash.batches` (src/steps/map-results.ts reads them back)
 *   HashDataset   folds them and replaces `$.results.hash` with the HashResult Preprocess reads.
 *
 * A refusal (a missing file, a path trick, a file that changed size…) travels as data, not as a
 * thrown error: a Distributed Map reports a failed child only as `States.ExceedToleratedFailureThreshold`
 * (Step Functions Developer Guide, "Tolerated failure threshold for Distributed Map state"), which
 * would hide the reason. HashDataset then fails the step with the first refusal, in listing order,
 * exactly as the one-Lambda HashDataset did. Transient errors are still thrown, for the ASL to retry.
 */
import { z } from 'zod';
import { type Digest, hexOf, isDigest } from '../core/digest.js';
import { ErrorCodes, type ErrorInfo, toErrorInfo } from '../core/errors.js';
import { CONTENT_PREFIX, LISTING_PREFIX } from '../core/layout.js';

/** The key of a listing whose RFC 8785 bytes hash to `digest`. */
export const listingKey = (digest: Digest): string => `${LISTING_PREFIX}${hexOf(digest)}.json`;

const digest = z.string().refine(isDigest, 'must be a sha256:<hex> digest');
const ErrorInfoSchema = z.object({ code: z.enum(ErrorCodes), message: z.string() });

/** One listed file, pinned: the DatasetFile of src/ports.ts, exactly (unknown keys refused). */
export const DatasetFileSchema = z.strictObject({
  uri: z.string().min(1),
  path: z.string().min(1),
  size: z.number().int().nonnegative(),
  versionId: z.string().min(1).optional(),
});

/** A hashed file: the listed file and its digest (hash-dataset.ts PinnedFile). */
export const PinnedFileSchema = z.strictObject({ ...DatasetFileSchema.shape, digest });

const ListingRefSchema = z.strictObject({
  key: z.string().startsWith(LISTING_PREFIX),
  digest,
  files: z.number().int().positive(),
});
export type ListingRef = z.infer<typeof ListingRefSchema>;

export type Refusal = { error: ErrorInfo };

/** ListDataset's result. */
export type ListResult = { listing: ListingRef } | Refusal;

/** One HashBatch child's input, as the Map's ItemBatcher builds it. */
export const BatchInputSchema = z.object({
  BatchInput: z.object({ runId: z.string().min(1) }),
  Items: z.array(DatasetFileSchema).min(1),
});
export type BatchInput = z.infer<typeof BatchInputSchema>;

/** One HashBatch child's result: where its hashed files are stored (content-addressed), or why not. */
export const BatchResultSchema = z.union([
  z.strictObject({ key: z.string().startsWith(CONTENT_PREFIX), files: z.number().int().positive() }),
  z.strictObject({ error: ErrorInfoSchema, files: z.number().int().positive() }),
]);
export type BatchResult = z.infer<typeof BatchResultSchema>;

/** The HashBatches Map's output: its ResultWriter's Map Run and manifest (Step Functions "ResultWriter (Map)"). */
const MapRunOutputSchema = z.strictObject({
  MapRunArn: z.string().min(1),
  ResultWriterDetails: z.strictObject({ Bucket: z.string().min(1), Key: z.string().min(1) }),
});
export type MapRunOutput = z.infer<typeof MapRunOutputSchema>;

/**
 * `$.results.hash` when HashDataset (the fold) starts: ListDataset's refusal, or its listing and
 * the HashBatches Map's output, which names where its ResultWriter wrote the children's results.
 */
export const HashProgressSchema = z.union([
  z.strictObject({ error: ErrorInfoSchema }),
  z.strictObject({
    listing: ListingRefSchema,
    batches: MapRunOutputSchema,
  }),
]);

/**
 * The result a hashing task returns for a failure: the error as data, or the error itself thrown
 * again when it is transient (the ASL's Retry then runs the task again).
 */
export function refusal(e: unknown): Refusal {
  const error = toErrorInfo(e);
  if (error.code === 'TRANSIENT') throw e;
  return { error };
}
