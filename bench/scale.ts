/**
 * `npm run bench -- scale [--objects=N]`: HashDataset at scale on the local runtime, through the
 * HashBatches Distributed Map of state-machines/training-pipeline.asl.json.
 *
 * A dataset of N small objects (default 100,000: 100 folders of 1,000 files of 64-319 bytes) is
 * listed and hashed twice, measured in the same run:
 *
 * - **Map**: the definition's own ListDataset, Listed, HashBatches and HashDataset states, taken
 *   verbatim from the ASL file (HashDataset's Next and the failure route end the run here), run by
 *   the local runner with the real handlers: the pinned listing written, the ItemReader,
 *   ItemBatcher and ResultWriter emulated (batches of 100, MaxConcurrency 10), one HashBatch per
 *   batch storing its digests content-addressed, the Map Run's results written as Step Functions
 *   exports them, the fold reading those and every batch back, checking them against the listing,
 *   writing the manifest and recording the step in the run store and the audit log.
 * - **reference**: the same files listed and hashed sequentially in this process (read, SHA-256,
 *   one after the other), folded as one batch.
 *
 * It prints both times with their parts, the ratio, objects per second and whether the two dataset
 * digests are identical; it exits 1 when they are not. The Map hashes on the worker pool (every
 * core) but also does more work (a stored listing, N/100 batch results written, read back and
 * checked, an audit entry); its point is that on AWS each batch is a Lambda of its own
 * (docs/scale-cost-model.md).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { digestFromHex } from '../src/core/digest.js';
import type { ExecState, HashResult } from '../src/core/exec-state.js';
import { hashPool } from '../src/hash-pool.js';
import { FsDatasetSource } from '../src/local/fs-dataset-source.js';
import { executeDefinition, localDefinition, type ProgressEvent } from '../src/local/runner.js';
import { openLocalRuntime } from '../src/local/runtime.js';
import { foldBatches, type PinnedFile } from '../src/steps/hash-dataset.js';

function option(args: string[], name: string, fallback: number): number {
  const eq = args.find((a) => a.startsWith(`${name}=`));
  const i = args.indexOf(name);
  const v = eq !== undefined ? Number(eq.slice(name.length + 1)) : i >= 0 ? Number(args[i + 1]) : fallback;
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} needs a positive whole number`);
  return v;
}

/** N files in folders of 1,000, deterministic contents of 64 to 319 bytes. */
function writeDataset(root: string, n: number): number {
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const folder = join(root, `shard-${String(Math.floor(i / 1000)).padStart(4, '0')}`);
    if (i % 1000 === 0) mkdirSync(folder, { recursive: true });
    const body = `object ${i}\n`.padEnd(64 + (i % 256), String.fromCharCode(97 + (i % 26)));
    writeFileSync(join(folder, `obj-${String(i).padStart(7, '0')}.bin`), body);
    bytes += body.length;
  }
  return bytes;
}

/** ListDataset → Listed → HashBatches → HashDataset of the pipeline's definition, and nothing else. */
function hashingDefinition(): Record<string, unknown> {
  const full = localDefinition() as { States: Record<string, Record<string, unknown>> };
  const pick = (name: string) => {
    const state = full.States[name];
    if (!state) throw new Error(`the ASL has no state ${name}`);
    return structuredClone(state);
  };
  return {
    Comment: 'HashDataset of state-machines/training-pipeline.asl.json, as bench/scale.ts runs it',
    StartAt: 'ListDataset',
    States: {
      ListDataset: pick('ListDataset'),
      Listed: pick('Listed'),
      HashBatches: pick('HashBatches'),
      HashDataset: { ...pick('HashDataset'), Next: 'Hashed' },
      Hashed: { Type: 'Succeed' },
      // Every Catch of these states leads here in the pipeline; here the failure ends the run.
      RecordFailure: { Type: 'Fail', Error: 'Bench.HashingFailed', Cause: 'see the run record' },
    },
  };
}

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
const rate = (n: number, s: number) => `${Math.round(n / s).toLocaleString('en-US')} objects/s`;

export async function main(args: string[]): Promise<void> {
  const n = option(args, '--objects', 100_000);
  const dir = mkdtempSync(join(tmpdir(), 'vt-bench-scale-'));
  try {
    const root = join(dir, 'dataset');
    let t0 = process.hrtime.bigint();
    const bytes = writeDataset(root, n);
    console.log(
      `  dataset: ${n.toLocaleString('en-US')} objects, ${(bytes / 1048576).toFixed(1)} MiB, written in ${seconds(t0).toFixed(1)} s`,
    );
    const uri = pathToFileURL(root).href;

    // Reference: list, then hash one file after the other, fold as one batch.
    t0 = process.hrtime.bigint();
    const listing = await new FsDatasetSource().list(uri);
    const tList = seconds(t0);
    const pinned: PinnedFile[] = listing.map((f) => ({
      ...f,
      digest: digestFromHex(
        createHash('sha256')
          .update(readFileSync(fileURLToPath(f.uri)))
          .digest('hex'),
      ),
    }));
    const tHash = seconds(t0) - tList;
    const reference = foldBatches([pinned]);
    const tRef = seconds(t0);

    // The Map: the definition's hashing states on a fresh local runtime, for a run that is RUNNING.
    const rt = await openLocalRuntime(join(dir, 'home'));
    const state: ExecState = {
      runId: 'r-bench-scale',
      pipeline: { name: 'bench-scale', digest: reference.manifestDigest },
      dataset: { uri },
      trigger: { type: 'operator', idempotencyKey: 'bench-scale' },
    };
    const times: Record<string, number> = {};
    let failure: string | undefined;
    let tMap = 0;
    let hash: HashResult | undefined;
    try {
      await rt.runs.create({
        runId: state.runId,
        pipeline: state.pipeline.name,
        pipelineDigest: state.pipeline.digest,
        trigger: 'operator',
        idempotencyKey: state.trigger.idempotencyKey,
        dataset: { uri },
        createdAt: new Date().toISOString(),
      });
      await rt.runs.transition(state.runId, 'RUNNING');
      // From ListDataset entered to HashDataset exited: loading the handler modules and validating
      // the definition happen once per process, before the first state, and are not counted.
      let first: number | undefined;
      const onProgress = (e: ProgressEvent) => {
        first ??= e.at;
        if (e.type === 'exited') times[e.state] = e.ms / 1000;
        if (e.type === 'exited' && e.state === 'HashDataset') tMap = (e.at - first) / 1000;
        if (e.type === 'failed') failure = `${e.state}: ${e.error}`;
      };
      const output = (await executeDefinition(rt, hashingDefinition(), state, onProgress)) as ExecState;
      hash = output.results?.hash as HashResult;
    } catch (e) {
      const run = await rt.runs.get(state.runId);
      throw new Error(
        `the Map run failed (${failure ?? 'unknown state'}): ${run?.error?.message ?? String(e)}`,
      );
    } finally {
      await rt.close();
    }

    const map = hashingDefinition().States as Record<
      string,
      { MaxConcurrency?: number; ItemBatcher?: { MaxItemsPerBatch?: number } }
    >;
    const perBatch = map.HashBatches?.ItemBatcher?.MaxItemsPerBatch ?? 1;
    const batches = Math.ceil(n / perBatch);
    console.log(
      `  reference (list + hash one by one + fold)   ${tRef.toFixed(2).padStart(7)} s  ${rate(n, tRef)}`,
    );
    console.log(
      `    list ${tList.toFixed(2)} s, hash ${tHash.toFixed(2)} s, fold (manifest, dataset digest) ${(tRef - tList - tHash).toFixed(2)} s`,
    );
    console.log(
      `  Map (ListDataset → HashBatches → HashDataset) ${tMap.toFixed(2).padStart(5)} s  ${rate(n, tMap)}`,
    );
    console.log(
      `    ListDataset ${times.ListDataset?.toFixed(2)} s, HashBatches ${times.HashBatches?.toFixed(2)} s (${batches.toLocaleString('en-US')} batches of ≤ ${perBatch}, ${map.HashBatches?.MaxConcurrency} at a time), HashDataset ${times.HashDataset?.toFixed(2)} s`,
    );
    console.log(`  ratio Map / reference: ${(tMap / tRef).toFixed(2)}`);
    const same =
      hash?.digest === reference.digest &&
      hash?.files === n &&
      hash?.manifestDigest === reference.manifestDigest;
    console.log(`  dataset digest, reference: ${reference.digest}`);
    console.log(`  dataset digest, Map:       ${hash?.digest}  ${same ? 'identical' : 'DIFFERENT'}`);
    if (!same) process.exitCode = 1;
  } finally {
    await hashPool().close();
    rmSync(dir, { recursive: true, force: true });
  }
}
