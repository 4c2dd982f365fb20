/**
 * The HashBatches Map Run's results, read back as its ResultWriter exported them (Step Functions
 * Developer Guide, "ResultWriter (Map)"): the Map's output is `{MapRunArn, ResultWriterDetails:
 * {Bucket, Key}}`, Key naming `<Prefix>/<map run id>/manifest.json`; the manifest lists the result
 * files by status (`ResultFiles.SUCCEEDED | FAILED | PENDING`, each `{Key, Size}`); each
 * `SUCCEEDED_<n>.json` is a JSON array of child executions, each with its `Input` and `Output` as
 * JSON text. The same layout is written locally by the emulation (src/local/distributed-map.ts).
 *
 * These objects are not content-addressed, so everything is checked before use: the keys lie under
 * this run's prefix and this Map Run, the sizes are the manifest's, no child failed or is pending,
 * every child ran for this run, and the children's inputs are the listing cut into contiguous
 * batches, each exactly once. The result files keep no order (AWS does not promise one), so the
 * children are put back in listing order by their input. The hashed files the outputs point to are
 * then read by content address and checked against the listing by the fold (hash-dataset.ts).
 */
import { z } from 'zod';
import { readObject } from '../cas.js';
import { VeritrailError } from '../core/errors.js';
import { mapResultsPrefix } from '../core/layout.js';
import { describeIssues } from '../core/pipeline.js';
import type { DatasetFile, ObjectStore } from '../ports.js';
import { BatchInputSchema, type BatchResult, BatchResultSchema, type MapRunOutput } from './hashing.js';

const ResultFileSchema = z.object({ Key: z.string().min(1), Size: z.number().int().nonnegative() });
const ManifestSchema = z.object({
  DestinationBucket: z.string().min(1),
  MapRunArn: z.string().min(1),
  ResultFiles: z.object({
    SUCCEEDED: z.array(ResultFileSchema).default([]),
    FAILED: z.array(ResultFileSchema).default([]),
    PENDING: z.array(ResultFileSchema).default([]),
  }),
});
/** One child execution in a result file; AWS adds more fields (ExecutionArn, dates…), not read here. */
const EntrySchema = z.object({ Status: z.string(), Input: z.string(), Output: z.string().optional() });

/** The manifest's name under the Map Run's folder. */
const MAP_RESULTS_MANIFEST = 'manifest.json';

/** A result that cannot be trusted: the run fails with this one line. */
const broken = (message: string) =>
  new VeritrailError('PROVENANCE_BROKEN', `HashBatches results: ${message}; start the run again`);

/** JSON text, or a PROVENANCE_BROKEN naming `what`. */
function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw broken(`${what} is not JSON`);
  }
}

/** An object of the Map Run's results; a missing one is a broken result, not a user's missing object. */
async function readResultObject(objects: ObjectStore, where: string, key: string): Promise<Uint8Array> {
  try {
    return await readObject(objects, 'artifacts', key);
  } catch (e) {
    if (e instanceof VeritrailError && e.code === 'OBJECT_NOT_FOUND') throw broken(`${where} is missing`);
    throw e;
  }
}

/** The identity of a listed file, for placing a child's items in the listing. */
const fileId = (f: DatasetFile) => JSON.stringify([f.uri, f.path, f.size, f.versionId ?? null]);

/**
 * Reads the Map Run's results for run `runId` over `listed` and returns the children's results in
 * listing order. Any missing, malformed or foreign result fails with PROVENANCE_BROKEN, one line.
 */
export async function readMapResults(
  objects: ObjectStore,
  output: MapRunOutput,
  runId: string,
  listed: readonly DatasetFile[],
): Promise<BatchResult[]> {
  const { Bucket, Key } = output.ResultWriterDetails;
  const url = (key: string) => `s3://${Bucket}/${key}`;
  const runPrefix = `${mapResultsPrefix(runId)}/`;
  if (!Key.startsWith(runPrefix) || !Key.endsWith(`/${MAP_RESULTS_MANIFEST}`)) {
    throw broken(`the manifest ${url(Key)} is not a ${MAP_RESULTS_MANIFEST} under ${runPrefix}`);
  }
  const folder = Key.slice(0, -MAP_RESULTS_MANIFEST.length);
  const manifestBytes = await readResultObject(objects, `the manifest ${url(Key)}`, Key);
  const manifest = ManifestSchema.safeParse(
    parseJson(new TextDecoder().decode(manifestBytes), `the manifest ${url(Key)}`),
  );
  if (!manifest.success) {
    throw broken(`the manifest ${url(Key)} is malformed: ${describeIssues(manifest.error)}`);
  }
  const m = manifest.data;
  if (m.MapRunArn !== output.MapRunArn || m.DestinationBucket !== Bucket) {
    throw broken(
      `the manifest ${url(Key)} is of ${m.MapRunArn} in ${m.DestinationBucket}, not of this Map Run`,
    );
  }
  const unfinished = m.ResultFiles.FAILED.length + m.ResultFiles.PENDING.length;
  if (unfinished > 0)
    throw broken(`the manifest ${url(Key)} lists ${unfinished} failed or pending result files`);
  if (m.ResultFiles.SUCCEEDED.length === 0) throw broken(`the manifest ${url(Key)} lists no result file`);

  const position = new Map(listed.map((f, i) => [fileId(f), i]));
  const children: { at: number; result: BatchResult }[] = [];
  for (const file of m.ResultFiles.SUCCEEDED) {
    const where = `the result file ${url(file.Key)}`;
    if (!file.Key.startsWith(folder) || file.Key.slice(folder.length).includes('/')) {
      throw broken(`${where} is not in the Map Run's folder ${url(folder)}`);
    }
    const bytes = await readResultObject(objects, where, file.Key);
    if (bytes.byteLength !== file.Size) {
      throw broken(`${where} holds ${bytes.byteLength} bytes, the manifest says ${file.Size}`);
    }
    const entries = z.array(EntrySchema).safeParse(parseJson(new TextDecoder().decode(bytes), where));
    if (!entries.success) throw broken(`${where} is malformed: ${describeIssues(entries.error)}`);
    entries.data.forEach((entry, n) => {
      const child = `${where}, entry ${n}`;
      if (entry.Status !== 'SUCCEEDED' || entry.Output === undefined) {
        throw broken(`${child} is a ${entry.Status} execution without an output`);
      }
      const input = BatchInputSchema.safeParse(parseJson(entry.Input, `${child}: Input`));
      if (!input.success || input.data.BatchInput.runId !== runId) {
        throw broken(`${child}: Input is not a batch of run ${runId}`);
      }
      const result = BatchResultSchema.safeParse(parseJson(entry.Output, `${child}: Output`));
      if (!result.success || result.data.files !== input.data.Items.length) {
        throw broken(`${child}: Output is not HashBatch's result for its ${input.data.Items.length} files`);
      }
      const items = input.data.Items;
      const at = position.get(fileId(items[0] as DatasetFile));
      const inListing =
        at !== undefined &&
        at + items.length <= listed.length &&
        items.every((f, i) => fileId(f) === fileId(listed[at + i] as DatasetFile));
      if (!inListing) throw broken(`${child}: Input is not a run of files of the pinned listing`);
      children.push({ at, result: result.data });
    });
  }
  // The inputs, in listing order, must cut the listing into contiguous batches, each once.
  children.sort((a, b) => a.at - b.at);
  let next = 0;
  for (const c of children) {
    if (c.at !== next) throw broken(`the children's inputs do not cover the listing once (at file ${next})`);
    next += c.result.files;
  }
  if (next !== listed.length) {
    throw broken(`the children's inputs cover ${next} of the ${listed.length} listed files`);
  }
  return children.map((c) => c.result);
}
