/**
 * Preprocess above the processing threshold, on the embedded runtime: the same run through a
 * processing job (src/local/process-processor.ts running functions/processing/preprocess.ts under
 * the container contract) must give the very processed digest the in-process Preprocess gives, and
 * the step must refuse whatever the job wrote that does not match what it claims.
 */
import { appendFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { openAuditLog } from '../../src/audit/log.js';
import { readObject } from '../../src/cas.js';
import { main } from '../../src/cli/main.js';
import { FsDatasetSource, toFileUri } from '../../src/local/fs-dataset-source.js';
import { LocalProcessor } from '../../src/local/process-processor.js';
import { type LocalRuntime, openLocalRuntime } from '../../src/local/runtime.js';
import { loadPipelineFile, preflightDataset, runOnce } from '../../src/local/start-run.js';
import type { Processor } from '../../src/ports.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';

async function runWith(
  ws: Workspace,
  processor: (rt: LocalRuntime) => Processor | undefined,
  wrap: (rt: LocalRuntime) => LocalRuntime = (rt) => rt,
) {
  const pipeline = await loadPipelineFile(ws.pipeline, ws.dir);
  const uri = toFileUri(ws.dataset);
  const digest = await preflightDataset(new FsDatasetSource(), uri, pipeline.def);
  const base = await openLocalRuntime(ws.home);
  const p = processor(base);
  const rt: LocalRuntime = wrap({ ...base, ...(p ? { processor: p } : {}) });
  if (!p) delete (rt as { processor?: Processor }).processor;
  try {
    const { execution } = await runOnce(rt, pipeline, { uri, digest });
    if (!execution) throw new Error('the run did not start');
    const run = await rt.runs.get(execution.runId);
    if (!run) throw new Error('no run record');
    return Object.assign(run, {
      preprocessDetail: await preprocessDetail(base, run.runId),
      evaluateDetail: await preprocessDetail(base, run.runId, 'Evaluate'),
      report: run.facts.fairnessReportKey
        ? (JSON.parse(
            new TextDecoder().decode(
              await readObject(base.objects, 'artifacts', String(run.facts.fairnessReportKey)),
            ),
          ) as { counts: unknown; scoring: Record<string, unknown> })
        : undefined,
    });
  } finally {
    await base.close();
  }
}

/**
 * The detail of a step's audit entry (where Preprocess and Evaluate record how they ran): its last,
 * past the entries of attempts that asked to be invoked again (PROCESSING_RUNNING).
 */
async function preprocessDetail(
  rt: LocalRuntime,
  runId: string,
  step = 'Preprocess',
): Promise<Record<string, unknown> | undefined> {
  let detail: Record<string, unknown> | undefined;
  for await (const e of (rt.audit as ReturnType<typeof openAuditLog>).entriesOf(runId))
    if (e.step === step) detail = e.detail as Record<string, unknown>;
  return detail;
}

const local = (threshold: number) => (rt: LocalRuntime) =>
  new LocalProcessor(threshold, rt.objects, rt.datasets);

describe('Preprocess as a processing job (embedded runtime)', () => {
  it('gives the same processed digest and row counts as the in-process Preprocess, and records where it ran', async () => {
    const here = makeWorkspace({ rows: 1500 });
    const job = makeWorkspace({ rows: 1500 });
    try {
      const a = await runWith(here, () => undefined);
      const b = await runWith(job, local(0));
      expect(a.status).toBe('SUCCEEDED');
      expect(b.status).toBe('SUCCEEDED');
      expect(b.facts.processedDigest).toBe(a.facts.processedDigest);
      for (const k of ['trainRows', 'validationRows', 'testRows']) expect(b.facts[k]).toBe(a.facts[k]);
      expect(b.preprocessDetail).toMatchObject({
        executor: { kind: 'local-process', jobName: expect.stringMatching(/^veritrail-pre-/) },
      });
      expect(a.preprocessDetail).toMatchObject({ trainRows: a.facts.trainRows });
      expect(a.preprocessDetail).not.toHaveProperty('executor');
    } finally {
      here.cleanup();
      job.cleanup();
    }
  });

  it('re-hashes the job output across many invocations when the budget is small, with the same result', async () => {
    const here = makeWorkspace({ rows: 1500 });
    const job = makeWorkspace({ rows: 1500 });
    try {
      const a = await runWith(here, () => undefined);
      let invocations = 0;
      const b = await runWith(job, (rt) => {
        // 16 KiB per invocation: the runner plays Preprocess's PROCESSING_RUNNING retrier, as on AWS.
        const real = new LocalProcessor(0, rt.objects, rt.datasets, { verifyBudget: { bytes: 16 * 1024 } });
        return {
          thresholdBytes: 0,
          verifyBudget: real.verifyBudget,
          evaluate: (spec) => real.evaluate(spec),
          preprocess: (spec) => {
            invocations++;
            return real.preprocess(spec);
          },
        };
      });
      expect(b.status).toBe('SUCCEEDED');
      expect(b.facts.processedDigest).toBe(a.facts.processedDigest);
      for (const k of ['trainRows', 'validationRows', 'testRows']) expect(b.facts[k]).toBe(a.facts[k]);
      expect(invocations).toBeGreaterThanOrEqual(4);
    } finally {
      here.cleanup();
      job.cleanup();
    }
  });

  it('only above the threshold: a dataset no larger than it stays in-process', async () => {
    const ws = makeWorkspace({ rows: 300 });
    try {
      const run = await runWith(ws, local(10 * 1024 * 1024));
      expect(run.steps.find((s) => s.name === 'Preprocess')?.status).toBe('SUCCEEDED');
      expect(run.preprocessDetail).toMatchObject({ trainRows: run.facts.trainRows });
      expect(run.preprocessDetail).not.toHaveProperty('executor');
    } finally {
      ws.cleanup();
    }
  });

  it('raw bytes that changed after hashing are refused inside the job, with the message the in-process step gives', async () => {
    const changeAfterHashing = (ws: Workspace) => (rt: LocalRuntime) => ({
      ...rt,
      datasets: {
        list: rt.datasets.list.bind(rt.datasets),
        open: rt.datasets.open.bind(rt.datasets),
        hash: async (f: Parameters<NonNullable<LocalRuntime['datasets']['hash']>>[0]) => {
          const h = await (rt.datasets.hash as NonNullable<LocalRuntime['datasets']['hash']>)(f);
          appendFileSync(ws.dataset, 'A999999,male,25_to_60,1,0.1,1,0,1,1,1\n');
          return h;
        },
      },
    });
    const a = makeWorkspace({ rows: 300 });
    const b = makeWorkspace({ rows: 300 });
    try {
      const here = await runWith(a, () => undefined, changeAfterHashing(a));
      const run = await runWith(b, local(0), changeAfterHashing(b));
      expect(here.error?.code).toBe('DIGEST_MISMATCH');
      expect(run.status).toBe('FAILED');
      expect(run.error?.code).toBe('DIGEST_MISMATCH');
      expect(run.error?.message).toBe(here.error?.message);
      expect(run.steps.find((s) => s.name === 'Preprocess')?.status).toBe('FAILED');
    } finally {
      a.cleanup();
      b.cleanup();
    }
  });

  it('a job whose claims do not match the files it stored is refused before anything is signed', async () => {
    const ws = makeWorkspace({ rows: 300 });
    try {
      const run = await runWith(ws, (rt) => {
        const real = new LocalProcessor(0, rt.objects, rt.datasets);
        return {
          thresholdBytes: 0,
          evaluate: (spec) => real.evaluate(spec),
          async preprocess(spec) {
            const out = await real.preprocess(spec);
            // The job lies about one count: its result.json is replaced before the step reads it.
            const chunks: Buffer[] = [];
            for await (const c of await rt.objects.open('artifacts', out.resultKey)) chunks.push(c as Buffer);
            const claims = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            claims.rows.train += 1;
            claims.files.train.rows += 1;
            await rt.objects.put('artifacts', out.resultKey, Buffer.from(JSON.stringify(claims)));
            return out;
          },
        };
      });
      expect(run.status).toBe('FAILED');
      expect(run.error?.code).toBe('DIGEST_MISMATCH');
      expect(run.error?.message).toMatch(/claimed train\.csv .* rows\); the stored object is/);
      expect(run.facts.transformBundleKey).toBeUndefined();
    } finally {
      ws.cleanup();
    }
  });

  it('`veritrail run` honours VERITRAIL_PROCESSING_THRESHOLD_BYTES, and a bad value is one usage line', async () => {
    const ws = makeWorkspace({ rows: 1500 });
    const before = process.env.VERITRAIL_PROCESSING_THRESHOLD_BYTES;
    const budgetBefore = process.env.VERITRAIL_PROCESSING_VERIFY_BYTES;
    try {
      process.env.VERITRAIL_PROCESSING_THRESHOLD_BYTES = '1';
      // The test hook: the job's output re-hashed 8 KiB per invocation, across the runner's retries.
      process.env.VERITRAIL_PROCESSING_VERIFY_BYTES = '8192';
      const io = captureIo(ws.dir);
      const code = await main(
        ['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json'],
        io,
      );
      expect(code).toBe(0);
      // Preprocess was invoked again past each budget, as its ASL retrier does on AWS.
      expect(io.stderr.join('\n')).toMatch(/Preprocess\s+retry 2/);
      const runId = (JSON.parse(io.stdout[0] as string) as { runId: string }).runId;
      // The evidence of a run preprocessed by a job verifies offline like any other.
      const verified = captureIo(ws.dir);
      expect(await main(['verify', runId, '--home', ws.home, '--trust-state-keys'], verified)).toBe(0);
      const rt = await openLocalRuntime(ws.home);
      try {
        expect(await preprocessDetail(rt, runId)).toMatchObject({ executor: { kind: 'local-process' } });
      } finally {
        await rt.close();
      }

      delete process.env.VERITRAIL_PROCESSING_VERIFY_BYTES;
      process.env.VERITRAIL_PROCESSING_THRESHOLD_BYTES = 'ten';
      const bad = captureIo(ws.dir);
      expect(await main(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home], bad)).toBe(2);
      expect(bad.stderr.join('\n')).toMatch(/VERITRAIL_PROCESSING_THRESHOLD_BYTES must be a whole number/);
      expect(bad.stderr.join('\n').trim().split('\n')).toHaveLength(1);
    } finally {
      if (before === undefined) delete process.env.VERITRAIL_PROCESSING_THRESHOLD_BYTES;
      else process.env.VERITRAIL_PROCESSING_THRESHOLD_BYTES = before;
      if (budgetBefore === undefined) delete process.env.VERITRAIL_PROCESSING_VERIFY_BYTES;
      else process.env.VERITRAIL_PROCESSING_VERIFY_BYTES = budgetBefore;
      ws.cleanup();
    }
  });
});

/** The runtime with a scorer that takes at most `bytes` of features per request (as Batch Transform's 100 MB). */
const shardsOf = (bytes: number) => (rt: LocalRuntime) => ({
  ...rt,
  trainer: Object.assign(Object.create(rt.trainer) as LocalRuntime['trainer'], { scoreShardBytes: bytes }),
});

describe('Evaluate above the processing threshold (embedded runtime)', () => {
  it('the shard and count jobs give the counts, metrics and predictions Evaluate gives in-process, with one shard or many', async () => {
    const ws = [0, 1, 2, 3].map(() => makeWorkspace({ rows: 1500 }));
    try {
      const [here, jobs, hereShards, jobShards] = [
        await runWith(ws[0] as Workspace, () => undefined),
        await runWith(ws[1] as Workspace, local(0)),
        await runWith(ws[2] as Workspace, () => undefined, shardsOf(2048)),
        await runWith(ws[3] as Workspace, local(0), shardsOf(2048)),
      ];
      for (const r of [here, jobs, hereShards, jobShards])
        expect(r.status, JSON.stringify(r.error)).toBe('SUCCEEDED');
      for (const r of [jobs, hereShards, jobShards]) {
        expect(r.facts.fairness).toEqual(here.facts.fairness);
        expect(r.report?.counts).toEqual(here.report?.counts);
      }
      // One shard: the predictions are the file the predict command wrote, wherever they were counted.
      expect(jobs.facts.predictionsDigest).toBe(here.facts.predictionsDigest);
      // Many: the joined predictions, the same whether the Lambda or the count job joined them.
      expect(jobShards.facts.predictionsDigest).toBe(hereShards.facts.predictionsDigest);
      expect(hereShards.evaluateDetail?.shards).toBeGreaterThan(3);
      expect(jobShards.evaluateDetail?.shards).toBe(hereShards.evaluateDetail?.shards);
      expect(hereShards.report?.scoring.shards).toEqual(jobShards.report?.scoring.shards);
      expect(jobs.evaluateDetail).toMatchObject({
        executor: { kind: 'local-process', jobName: expect.stringMatching(/^veritrail-evc-/) },
      });
      expect(here.evaluateDetail).not.toHaveProperty('executor');
    } finally {
      for (const w of ws) w.cleanup();
    }
  });

  it('a count job whose result does not add up is refused before anything is signed', async () => {
    const ws = makeWorkspace({ rows: 300 });
    try {
      const run = await runWith(ws, (rt) => {
        const real = new LocalProcessor(0, rt.objects, rt.datasets);
        return {
          thresholdBytes: 0,
          preprocess: (spec) => real.preprocess(spec),
          async evaluate(spec) {
            const out = await real.evaluate(spec);
            if (!spec.jobName.startsWith('veritrail-evc-')) return out;
            const claims = JSON.parse(
              new TextDecoder().decode(await readObject(rt.objects, 'artifacts', out.resultKey)),
            );
            claims.counts.cells[0].tp += 1;
            await rt.objects.put('artifacts', out.resultKey, Buffer.from(JSON.stringify(claims)));
            return out;
          },
        };
      });
      expect(run.status).toBe('FAILED');
      expect(run.error?.code).toBe('PROCESSING_FAILED');
      expect(run.error?.message).toMatch(/^processing job veritrail-evc-\S+ counted \d+ rows of /);
      expect(run.facts.fairnessReportKey).toBeUndefined();
    } finally {
      ws.cleanup();
    }
  });
});
