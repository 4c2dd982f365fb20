import { appendFileSync, chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { openAuditLog } from '../../src/audit/log.js';
import { verifyLog } from '../../src/audit/verify/log-verifier.js';
import { main } from '../../src/cli/main.js';
import { hexOf } from '../../src/core/digest.js';
import { VeritrailError } from '../../src/core/errors.js';
import { FsDatasetSource, toFileUri } from '../../src/local/fs-dataset-source.js';
import { type LocalRuntime, openLocalRuntime } from '../../src/local/runtime.js';
import { loadPipelineFile, preflightDataset, runOnce } from '../../src/local/start-run.js';
import type { AuditEntry } from '../../src/ports.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';

const STEPS = [
  'RegisterRun',
  'HashDataset',
  'Preprocess',
  'CheckCode',
  'Train',
  'Evaluate',
  'Gate',
  'Sign',
  'Register',
];

async function entriesOf(rt: LocalRuntime, runId: string): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for await (const e of (rt.audit as ReturnType<typeof openAuditLog>).entriesOf(runId)) out.push(e);
  return out;
}

/** Starts a run the way `veritrail run` does, on a runtime a test may have wrapped. */
async function runWith(ws: Workspace, wrap: (rt: LocalRuntime) => LocalRuntime = (rt) => rt) {
  const pipeline = await loadPipelineFile(ws.pipeline, ws.dir);
  const uri = toFileUri(ws.dataset);
  const digest = await preflightDataset(new FsDatasetSource(), uri, pipeline.def);
  const base = await openLocalRuntime(ws.home);
  const rt = wrap(base);
  try {
    const { execution } = await runOnce(rt, pipeline, { uri, digest });
    if (!execution) throw new Error('the run did not start');
    const exec = execution;
    const run = await rt.runs.get(exec.runId);
    const entries = await entriesOf(base, exec.runId);
    const verify = await verifyLog((base.audit as ReturnType<typeof openAuditLog>).reader, {});
    return { exec, run, entries, verify };
  } finally {
    await base.close();
  }
}

describe('veritrail run on a small dataset', () => {
  let ws: Workspace;
  let result: { code: number; json: Record<string, unknown>; stderr: string };

  beforeAll(async () => {
    ws = makeWorkspace({ rows: 1500 });
    const io = captureIo(ws.dir);
    const code = await main(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json'], io);
    expect(io.stdout).toHaveLength(1);
    result = {
      code,
      json: JSON.parse(io.stdout[0] as string) as Record<string, unknown>,
      stderr: io.stderr.join('\n'),
    };
  });
  afterAll(() => ws.cleanup());

  it('succeeds and prints exactly one JSON object with the summary fields', () => {
    expect(result.code).toBe(0);
    const j = result.json;
    expect(j.status).toBe('SUCCEEDED');
    expect(j.pipeline).toBe('credit-scoring');
    expect((j.dataset as { digest: string }).digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect((j.processed as { digest: string }).digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect((j.model as { digest: string }).digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect((j.gate as { decision: string }).decision).toBe('allow');
    expect(Object.keys(j.attestations as object).sort()).toEqual([
      'fairness',
      'gate',
      'modelSignature',
      'provenance',
      'transform',
    ]);
    expect(j.fairness).toHaveProperty('sex.disparateImpact');
  });

  it('reports the raw digest as sha256sum would print it for a single file', () => {
    const { createHash } = require('node:crypto') as typeof import('node:crypto');
    const hex = createHash('sha256').update(readFileSync(ws.dataset)).digest('hex');
    expect((result.json.dataset as { digest: string }).digest).toBe(`sha256:${hex}`);
  });

  it('prints progress for every state on stderr', () => {
    for (const s of [...STEPS, 'Finish']) expect(result.stderr).toContain(s);
  });

  it('records the run with every step, and `runs show` prints it', async () => {
    const io = captureIo(ws.dir);
    expect(await main(['runs', 'show', result.json.runId as string, '--home', ws.home, '--json'], io)).toBe(
      0,
    );
    const run = JSON.parse(io.stdout[0] as string) as {
      status: string;
      steps: { name: string; status: string }[];
    };
    expect(run.status).toBe('SUCCEEDED');
    expect(run.steps.map((s) => s.name)).toEqual(STEPS);
    expect(run.steps.every((s) => s.status === 'SUCCEEDED')).toBe(true);
    const list = captureIo(ws.dir);
    expect(await main(['runs', 'list', '--home', ws.home, '--json'], list)).toBe(0);
    expect(JSON.parse(list.stdout[0] as string)).toHaveLength(1);
  });

  it('emits OpenLineage START and COMPLETE events carrying the content digests', () => {
    const dir = join(ws.home, 'lineage');
    const runId = result.json.runId as string;
    const start = JSON.parse(readFileSync(join(dir, `${runId}.START.json`), 'utf8')) as { eventType: string };
    const complete = readFileSync(join(dir, `${runId}.COMPLETE.json`), 'utf8');
    expect(start.eventType).toBe('START');
    expect(complete).toContain((result.json.model as { digest: string }).digest.slice(7));
    expect(complete).toContain((result.json.dataset as { digest: string }).digest.slice(7));
  });

  it('is deterministic: the same data and definition give the same processed and model digests', async () => {
    const io = captureIo(ws.dir);
    expect(await main(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json'], io)).toBe(
      0,
    );
    const again = JSON.parse(io.stdout[0] as string) as typeof result.json;
    expect(again.runId).not.toBe(result.json.runId);
    expect(again.processed).toEqual(result.json.processed);
    expect(again.model).toEqual(result.json.model);
  });
});

describe('invariant 1: no step reports success before its audit entry is durable', () => {
  it('every recorded step has its audit entry, appended before the step record', async () => {
    const ws = makeWorkspace({ rows: 1500 });
    const order: string[] = [];
    try {
      const { run, entries, verify } = await runWith(ws, (rt) => ({
        ...rt,
        audit: {
          append: async (e) => {
            const entry = await rt.audit.append(e);
            order.push(`audit:${e.step}:${e.type}`);
            return entry;
          },
          checkpoint: () => (rt.audit.checkpoint ? rt.audit.checkpoint() : Promise.resolve({ treeSize: 0 })),
        },
        // The same store (its claims and task tokens too, through the prototype), recordStep observed.
        runs: Object.assign(Object.create(rt.runs) as typeof rt.runs, {
          recordStep: async (...[id, step, facts]: Parameters<typeof rt.runs.recordStep>) => {
            order.push(`record:${step.name}:${step.status}`);
            return rt.runs.recordStep(id, step, facts);
          },
        }),
      }));
      expect(run?.status, JSON.stringify(run?.facts.gate)).toBe('SUCCEEDED');
      for (const step of STEPS) {
        const audited = order.indexOf(`audit:${step}:step.succeeded`);
        const recorded = order.indexOf(`record:${step}:SUCCEEDED`);
        expect(audited, step).toBeGreaterThanOrEqual(0);
        expect(audited, step).toBeLessThan(recorded);
        expect(entries.some((e) => e.step === step && e.type === 'step.succeeded')).toBe(true);
      }
      // The run ends, then the log names the report signed as it ended.
      expect(entries.slice(-2).map((e) => e.type)).toEqual(['run.finished', 'report.signed']);
      expect(entries.at(-1)?.subjects?.report).toBe(run?.facts.reportDigest);
      expect(verify.ok).toBe(true);
    } finally {
      ws.cleanup();
    }
  });
});

describe('when the gate denies', () => {
  it('the run is REJECTED with exit code 3 and still leaves signed evidence of why', async () => {
    const ws = makeWorkspace({
      rows: 800,
      pipeline: (d) => {
        (d.gate as { thresholds: Record<string, unknown> }).thresholds.minAccuracy = 0.99;
      },
    });
    try {
      const io = captureIo(ws.dir);
      const code = await main(
        ['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json'],
        io,
      );
      const j = JSON.parse(io.stdout[0] as string) as {
        status: string;
        gate: { decision: string; reasons: string[] };
        attestations: Record<string, string>;
      };
      expect(code).toBe(3);
      expect(j.status).toBe('REJECTED');
      expect(j.gate.decision).toBe('deny');
      expect(j.gate.reasons.join(' ')).toMatch(/accuracy/);
      expect(Object.keys(j.attestations)).toContain('gate');
    } finally {
      ws.cleanup();
    }
  });
});

describe('bad input before a run starts', () => {
  let ws: Workspace;
  beforeAll(() => {
    ws = makeWorkspace({ rows: 50 });
  });
  afterAll(() => ws.cleanup());

  async function runCli(args: string[]) {
    const io = captureIo(ws.dir);
    const code = await main(['run', ...args, '--home', ws.home], io);
    return { code, err: io.stderr.join('\n'), out: io.stdout.join('\n') };
  }

  it('a missing dataset is a usage error naming the path', async () => {
    const r = await runCli([join(ws.dir, 'nope.csv'), '--pipeline', ws.pipeline]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/nope\.csv does not exist/);
  });

  it('an empty dataset is a usage error', async () => {
    const empty = join(ws.dir, 'empty.csv');
    writeFileSync(empty, '');
    const r = await runCli([empty, '--pipeline', ws.pipeline]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/empty/);
  });

  it('a CSV without a protected column names the column and the fix', async () => {
    const bad = join(ws.dir, 'nosex.csv');
    const text = readFileSync(ws.dataset, 'utf8').replace(/^applicant_id,sex,/, 'applicant_id,gender,');
    writeFileSync(bad, text);
    const r = await runCli([bad, '--pipeline', ws.pipeline]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/protected column "sex" is missing/);
  });

  it('a non-numeric feature value names the line and the column', async () => {
    const bad = join(ws.dir, 'text.csv');
    const lines = readFileSync(ws.dataset, 'utf8').split('\n');
    lines[5] = (lines[5] as string).replace(/^(A\d+,\w+,\w+,)[^,]+/, '$1lots');
    writeFileSync(bad, lines.join('\n'));
    const r = await runCli([bad, '--pipeline', ws.pipeline]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/line 6: feature column income holds "lots"/);
  });

  it('a malformed pipeline definition names the bad field', async () => {
    const bad = join(ws.dir, 'bad-pipeline.json');
    const def = JSON.parse(readFileSync(ws.pipeline, 'utf8')) as Record<string, unknown>;
    (def.dataset as Record<string, unknown>).validationFraction = 2;
    writeFileSync(bad, JSON.stringify(def));
    const r = await runCli([ws.dataset, '--pipeline', bad]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/dataset\.validationFraction/);
  });

  it('no run is recorded for any of them: the state dir was never even created', async () => {
    expect(existsSync(ws.home)).toBe(false);
    const io = captureIo(ws.dir);
    // Reading runs does not create it either: a missing state dir is a usage error.
    expect(await main(['runs', 'list', '--home', ws.home, '--json'], io)).toBe(2);
    expect(io.stderr.join('\n')).toMatch(/no state dir at/);
  });
});

describe('failures once a run has started', () => {
  it('data changed between hashing and preprocessing: FAILED with DIGEST_MISMATCH, audit entries intact', async () => {
    const ws = makeWorkspace({ rows: 400 });
    try {
      const { run, entries, verify } = await runWith(ws, (rt) => ({
        ...rt,
        datasets: {
          list: (u, o) => rt.datasets.list(u, o),
          open: (f) => rt.datasets.open(f),
          hash: async (f) => {
            const h = await (rt.datasets.hash ? rt.datasets.hash(f) : Promise.reject(new Error('no hash')));
            appendFileSync(ws.dataset, 'A999999,male,25_to_60,1,0.1,1,0,1,1,1\n');
            return h;
          },
        },
      }));
      expect(run?.status).toBe('FAILED');
      expect(run?.error?.code).toBe('DIGEST_MISMATCH');
      expect(run?.steps.find((s) => s.name === 'Preprocess')?.status).toBe('FAILED');
      expect(entries.map((e) => e.type)).toEqual([
        'run.requested',
        'step.succeeded',
        'step.succeeded',
        'step.failed',
        'run.failed',
        'report.signed',
      ]);
      expect(entries[4]?.detail).toMatchObject({ error: { code: 'DIGEST_MISMATCH' } });
      expect(verify.ok).toBe(true);
    } finally {
      ws.cleanup();
    }
  });

  it('invariant 2: training never starts on bytes whose digest differs from the recorded one', async () => {
    const ws = makeWorkspace({ rows: 400 });
    try {
      let tampered = '';
      const { run, entries } = await runWith(ws, (rt) => {
        const start = rt.trainer.start.bind(rt.trainer);
        rt.trainer.start = async (spec) => {
          const ch = spec.channels.train;
          if (ch) {
            tampered = join(ws.home, 'objects', 'artifacts', 'sha256', hexOf(ch.digest));
            chmodSync(tampered, 0o644);
            appendFileSync(tampered, '1,1,1,1,1,1,1\n');
          }
          return start(spec);
        };
        return rt;
      });
      expect(tampered).not.toBe('');
      expect(run?.status).toBe('FAILED');
      expect(run?.error?.code).toBe('TRAINING_FAILED');
      expect(run?.error?.message).toMatch(/digest mismatch/);
      expect(run?.facts.modelDigest).toBeUndefined();
      expect(entries.slice(-2).map((e) => e.type)).toEqual(['run.failed', 'report.signed']);
    } finally {
      ws.cleanup();
    }
  });

  it('a trainer that crashes ends the run FAILED with its reason', async () => {
    const ws = makeWorkspace({
      rows: 400,
      pipeline: (d) => {
        (d.trainer as { command: string[] }).command = [
          'node',
          '-e',
          'process.stderr.write("boom: out of memory\\n"); process.exit(3)',
        ];
      },
    });
    try {
      const { run } = await runWith(ws);
      expect(run?.status).toBe('FAILED');
      expect(run?.error?.code).toBe('TRAINING_FAILED');
      expect(run?.error?.message).toMatch(/boom: out of memory/);
    } finally {
      ws.cleanup();
    }
  });

  it('a hard-coded credential in the training code is refused with file and line, never echoed', async () => {
    const ws = makeWorkspace({ rows: 400 });
    const secret = ['AKIA', 'Z7QW4RTY2UIO3PAS'].join('');
    writeFileSync(
      join(ws.dir, 'trainer', 'config.mjs'),
      `export const region = 'eu-west-1';\nexport const key = '${secret}';\n`,
    );
    try {
      const { run, entries } = await runWith(ws);
      expect(run?.status).toBe('FAILED');
      expect(run?.error?.code).toBe('CODE_SECRET_FOUND');
      expect(run?.error?.message).toMatch(/config\.mjs:2 \(aws-access-key-id\)/);
      expect(JSON.stringify(run)).not.toContain(secret);
      expect(JSON.stringify(entries)).not.toContain(secret);
      expect(run?.steps.some((st) => st.name === 'Train')).toBe(false);
      expect(entries.find((e) => e.type === 'step.failed')?.outcome).toBe('refused');
    } finally {
      ws.cleanup();
    }
  });

  it('a vulnerability report with findings at or above the threshold fails CheckCode', async () => {
    const ws = makeWorkspace({
      rows: 400,
      pipeline: (d) => {
        (d.trainer as Record<string, unknown>).vulnerabilityReport = { path: 'trivy.json', failOn: 'HIGH' };
      },
    });
    writeFileSync(
      join(ws.dir, 'trivy.json'),
      JSON.stringify({
        SchemaVersion: 2,
        ArtifactName: 'trainer',
        ArtifactType: 'filesystem',
        Results: [
          {
            Target: 'package-lock.json',
            Class: 'lang-pkgs',
            Type: 'npm',
            Vulnerabilities: [
              {
                VulnerabilityID: 'CVE-2024-0001',
                PkgName: 'lodash',
                InstalledVersion: '4.17.0',
                Severity: 'CRITICAL',
              },
              {
                VulnerabilityID: 'CVE-2024-0002',
                PkgName: 'minimist',
                InstalledVersion: '1.2.0',
                Severity: 'LOW',
              },
            ],
          },
        ],
      }),
    );
    try {
      const { run } = await runWith(ws);
      expect(run?.status).toBe('FAILED');
      expect(run?.error?.code).toBe('CODE_VULNERABLE');
      expect(run?.error?.message).toMatch(/CVE-2024-0001 \(CRITICAL, lodash\)/);
      expect(run?.error?.message).not.toMatch(/CVE-2024-0002/);
    } finally {
      ws.cleanup();
    }
  });

  it('a transient error is retried by the state machine and the run still succeeds', async () => {
    const ws = makeWorkspace({ rows: 1500 });
    let calls = 0;
    try {
      const { run, entries } = await runWith(ws, (rt) => ({
        ...rt,
        registry: {
          register: async (entry) => {
            calls++;
            if (calls === 1) throw new VeritrailError('TRANSIENT', 'registry briefly unavailable');
            return rt.registry.register(entry);
          },
        },
      }));
      expect(calls).toBe(2);
      expect(run?.status).toBe('SUCCEEDED');
      expect(entries.filter((e) => e.step === 'Register').map((e) => e.type)).toEqual([
        'step.failed',
        'step.succeeded',
      ]);
    } finally {
      ws.cleanup();
    }
  });
});
