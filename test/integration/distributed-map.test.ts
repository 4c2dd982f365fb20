/**
 * The whole local pipeline on a dataset of 250 files: HashDataset runs as the HashBatches
 * Distributed Map of the ASL (batches of 100, ItemReader and ItemBatcher emulated locally), and the
 * dataset digest it records is the digest of hashing the whole listing in one batch. A file that
 * vanishes while its batch hashes fails the run at HashDataset with that file's reason.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { openAuditLog } from '../../src/audit/log.js';
import { main } from '../../src/cli/main.js';
import { VeritrailError } from '../../src/core/errors.js';
import { FsDatasetSource, toFileUri } from '../../src/local/fs-dataset-source.js';
import { openLocalRuntime } from '../../src/local/runtime.js';
import { loadPipelineFile, preflightDataset, runOnce } from '../../src/local/start-run.js';
import type { AuditEntry } from '../../src/ports.js';
import { foldBatches, hashBatch } from '../../src/steps/hash-dataset.js';
import { hashPath } from '../../src/verify/hash-path.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';

const FILES = 250;

/** The workspace's rows cut into FILES files of 10 rows, each with the header, under 5 folders. */
function splitDataset(ws: Workspace): string {
  const [header, ...rows] = readFileSync(ws.dataset, 'utf8').trimEnd().split('\n');
  const folder = join(ws.dir, 'applications');
  for (let i = 0; i < FILES; i++) {
    const sub = join(folder, `region-${i % 5}`);
    mkdirSync(sub, { recursive: true });
    const part = rows.slice(i * 10, i * 10 + 10);
    writeFileSync(join(sub, `part-${String(i).padStart(3, '0')}.csv`), `${[header, ...part].join('\n')}\n`);
  }
  return folder;
}

/** The batch results HashBatch stored: content-addressed lists of hashed files, as the Map cut them. */
function storedBatchSizes(home: string): number[] {
  const dir = join(home, 'objects', 'artifacts', 'sha256');
  const sizes: number[] = [];
  for (const name of readdirSync(dir)) {
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(join(dir, name), 'utf8'));
    } catch {
      continue;
    }
    if (!Array.isArray(value)) continue;
    const list: unknown[] = value;
    if (list.every((f) => typeof f === 'object' && f !== null && 'digest' in f && 'uri' in f && 'size' in f))
      sizes.push(list.length);
  }
  return sizes.sort((a, b) => a - b);
}

describe('a 250-file dataset through the HashBatches Distributed Map', () => {
  let ws: Workspace;
  let folder: string;
  let json: Record<string, unknown>;
  let code: number;

  beforeAll(async () => {
    ws = makeWorkspace({ rows: FILES * 10 });
    folder = splitDataset(ws);
    const io = captureIo(ws.dir);
    code = await main(['run', folder, '--pipeline', ws.pipeline, '--home', ws.home, '--json'], io);
    json = JSON.parse(io.stdout[0] ?? '{}') as Record<string, unknown>;
  });
  afterAll(() => ws.cleanup());

  it('records the digest of hashing the whole listing in one batch', async () => {
    expect(code).toBe(0);
    expect(json.status).toBe('SUCCEEDED');
    const datasets = new FsDatasetSource();
    const listing = await datasets.list(toFileUri(folder));
    expect(listing).toHaveLength(FILES);
    const oneBatch = foldBatches([await hashBatch({ datasets }, listing)]);
    const recorded = (json.dataset as { digest: string }).digest;
    expect(recorded).toBe(oneBatch.digest);
    // …which is also what `veritrail hash <dir>` and the offline verifier compute.
    expect(recorded).toBe((await hashPath(folder)).digest);
  });

  it('hashed it in the batches of 100 the definition asks for (ItemBatcher), not in one', () => {
    // The pins file (all 250) is stored too; the three batch results are the Map's children's.
    expect(storedBatchSizes(ws.home)).toEqual([50, 100, 100, FILES]);
  });

  it('leaves a run that verifies, downstream of HashDataset unchanged', async () => {
    const io = captureIo(ws.dir);
    const verified = await main(
      ['verify', String(json.runId), '--home', ws.home, '--trust-state-keys', '--json'],
      io,
    );
    expect(verified, io.stdout.join('\n')).toBe(0);
  });
});

describe('a file that vanishes while its batch hashes', () => {
  let ws: Workspace;
  afterAll(() => ws.cleanup());

  it('fails the run at HashDataset with that file’s reason, recorded once, as the step’s failure', async () => {
    ws = makeWorkspace({ rows: FILES * 10 });
    const folder = splitDataset(ws);
    const pipeline = await loadPipelineFile(ws.pipeline, ws.dir);
    const uri = toFileUri(folder);
    const digest = await preflightDataset(new FsDatasetSource(), uri, pipeline.def);
    const rt = await openLocalRuntime(ws.home);
    try {
      // Listed in path order, region-0 and region-1 fill the first batch: the second batch's first
      // file is region-2/part-002.csv, gone by the time its child hashes it.
      const gone = 'region-2/part-002.csv';
      const vanishing: typeof rt = {
        ...rt,
        datasets: {
          list: (u, o) => rt.datasets.list(u, o),
          open: (f) => rt.datasets.open(f),
          hash: async (f) => {
            if (f.path === gone)
              throw new VeritrailError('DATASET_MISSING', `dataset file ${f.path} is gone`);
            return rt.datasets.hash ? rt.datasets.hash(f) : Promise.reject(new Error('no hash'));
          },
        },
      };
      const { execution: exec } = await runOnce(vanishing, pipeline, { uri, digest });
      expect(exec?.status).toBe('FAILED');
      expect(exec?.error).toMatchObject({ code: 'DATASET_MISSING', message: expect.stringContaining(gone) });
      const run = await rt.runs.get(exec?.runId ?? '');
      expect(run?.steps.map((s) => [s.name, s.status])).toEqual([
        ['RegisterRun', 'SUCCEEDED'],
        ['HashDataset', 'FAILED'],
      ]);
      const entries: AuditEntry[] = [];
      for await (const e of (rt.audit as ReturnType<typeof openAuditLog>).entriesOf(exec?.runId ?? ''))
        entries.push(e);
      const failed = entries.filter((e) => e.type === 'step.failed');
      expect(failed.map((e) => [e.step, (e.detail as { error: { code: string } }).error.code])).toEqual([
        ['HashDataset', 'DATASET_MISSING'],
      ]);
    } finally {
      await rt.close();
    }
  });
});
