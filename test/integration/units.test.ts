/**
 * Business units in the embedded runtime (docs/units.md, "In the embedded runtime"): one state dir,
 * two pipelines of two units (`credit`, `medical`), run by `veritrail run` and by the control plane.
 * Each unit signs with its own keys, records in its own log, and is verified with its own public
 * keys only; the default unit keeps the layout veritrail had before units.
 */
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { RETRAIN_SKIP_PREDICATE_TYPE, verifyBundle } from '../../src/core/attest/index.js';
import type { StartOutcome } from '../../src/core/start.js';
import { LocalControlPlane } from '../../src/local/control-plane.js';
import { openFileSigner } from '../../src/local/file-signer.js';
import { unitPaths } from '../../src/local/home.js';
import { openLocalRuntime } from '../../src/local/runtime.js';
import { schedulePayloadAt } from '../../src/local/scheduler.js';
import { loadPipelineFile } from '../../src/local/start-run.js';
import type { AuditEntry, RunRecord } from '../../src/ports.js';
import type { VerifyCheck } from '../../src/verify/codes.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';

async function cli(ws: Workspace, ...args: string[]) {
  const io = captureIo(ws.dir);
  const exit = await main([...args, '--home', ws.home], io);
  return { exit, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
}

/** Every entry of a unit's log, read with `veritrail audit show [--unit U] --json`. */
async function logOf(ws: Workspace, unit?: string): Promise<AuditEntry[]> {
  const r = await cli(ws, 'audit', 'show', '--json', ...(unit ? ['--unit', unit] : []));
  expect(r.exit).toBe(0);
  return r.out
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as AuditEntry);
}

/** Polls until `check` passes (landing polls and queued runs are asynchronous). */
async function eventually(check: () => Promise<boolean> | boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

const failing = (out: string) =>
  (JSON.parse(out) as { checks: VerifyCheck[] }).checks
    .filter((c) => !c.ok)
    .map((c) => `${c.name} ${c.code}`);

describe('business units in one state dir', () => {
  let ws: Workspace;
  /** Definition files: `scoring` in unit credit, `diagnosis` in unit medical. */
  let creditDef: string;
  let medicalDef: string;
  let creditRun: string;
  let medicalRun: string;
  /** Public keys, written where an auditor would keep them. */
  const pub = { credit: { signing: '', audit: '' }, medical: { signing: '', audit: '' } };

  beforeAll(async () => {
    ws = makeWorkspace({
      rows: 1500,
      pipeline: (def) => {
        def.name = 'scoring';
        def.unit = 'credit';
      },
    });
    creditDef = ws.pipeline;
    const medical = JSON.parse(readFileSync(creditDef, 'utf8')) as Record<string, unknown>;
    medical.name = 'diagnosis';
    medical.unit = 'medical';
    medicalDef = join(ws.dir, 'diagnosis.json');
    writeFileSync(medicalDef, JSON.stringify(medical, null, 2));

    for (const [def, set] of [
      [creditDef, (id: string) => (creditRun = id)],
      [medicalDef, (id: string) => (medicalRun = id)],
    ] as const) {
      const r = await cli(ws, 'run', ws.dataset, '--pipeline', def, '--json');
      expect(r.exit, r.err).toBe(0);
      set((JSON.parse(r.out) as { runId: string }).runId);
    }
    for (const unit of ['credit', 'medical'] as const) {
      const p = unitPaths(ws.home, unit);
      pub[unit].signing = join(ws.dir, `${unit}-signing.pub.pem`);
      pub[unit].audit = join(ws.dir, `${unit}-audit.pub.pem`);
      writeFileSync(pub[unit].signing, await (await openFileSigner(p.signingKey)).publicKeyPem());
      writeFileSync(pub[unit].audit, await (await openFileSigner(p.auditKey)).publicKeyPem());
    }
  }, 240_000);
  afterAll(() => ws.cleanup());

  describe('layout', () => {
    it('gives each unit its own signing and audit key under units/<unit>/keys, mode 0600', () => {
      for (const unit of ['credit', 'medical']) {
        for (const key of ['signing.key', 'audit.key']) {
          const path = join(ws.home, 'units', unit, 'keys', key);
          expect(statSync(path).mode & 0o777).toBe(0o600);
        }
      }
      // The default unit's keys are where they always were.
      expect(existsSync(join(ws.home, 'keys', 'signing.key'))).toBe(true);
      expect(existsSync(join(ws.home, 'keys', 'audit.key'))).toBe(true);
    });

    it('the units’ keys all differ from each other and from the default unit’s', async () => {
      const pems = [
        readFileSync(pub.credit.signing, 'utf8'),
        readFileSync(pub.credit.audit, 'utf8'),
        readFileSync(pub.medical.signing, 'utf8'),
        readFileSync(pub.medical.audit, 'utf8'),
        await (await openFileSigner(join(ws.home, 'keys', 'signing.key'))).publicKeyPem(),
        await (await openFileSigner(join(ws.home, 'keys', 'audit.key'))).publicKeyPem(),
      ];
      expect(new Set(pems).size).toBe(6);
    });

    it('keeps each unit’s log under its own prefix, with its own origin', () => {
      const audit = join(ws.home, 'objects', 'audit');
      for (const unit of ['credit', 'medical']) {
        const note = readFileSync(join(audit, 'units', unit, 'log', 'checkpoint'), 'utf8');
        expect(note.split('\n')[0]).toBe(`veritrail.local/audit/${unit}`);
      }
    });

    it('records the unit in the run record; runs show prints it', async () => {
      const shown = await cli(ws, 'runs', 'show', creditRun, '--json');
      expect((JSON.parse(shown.out) as RunRecord).unit).toBe('credit');
      const text = await cli(ws, 'runs', 'show', medicalRun);
      expect(text.out).toMatch(/^ {2}unit {9}medical$/m);
    });
  });

  describe('each unit’s log holds only that unit’s entries', () => {
    it('credit’s log names only the credit run, medical’s only the medical run, the default log neither', async () => {
      const credit = await logOf(ws, 'credit');
      const medical = await logOf(ws, 'medical');
      const fallback = await logOf(ws);
      // Besides the run's entries, each log records the one signing key its unit signs with.
      const ofRuns = (log: AuditEntry[]) => new Set(log.filter((e) => e.runId !== '-').map((e) => e.runId));
      expect(ofRuns(credit)).toEqual(new Set([creditRun]));
      expect(ofRuns(medical)).toEqual(new Set([medicalRun]));
      const keyOf = async (unit: string) => (await openFileSigner(unitPaths(ws.home, unit).signingKey)).keyId;
      const rotations = (log: AuditEntry[]) =>
        log.filter((e) => e.type === 'signing.key-rotated').map((e) => e.detail?.toKeyId);
      expect(rotations(credit)).toEqual([await keyOf('credit')]);
      expect(rotations(medical)).toEqual([await keyOf('medical')]);
      expect(credit.map((e) => e.type)).toContain('run.requested');
      expect(credit.map((e) => e.type)).toContain('report.signed');
      expect(fallback.filter((e) => e.runId === creditRun || e.runId === medicalRun)).toEqual([]);
    });

    it('the report the log names was signed with the unit’s own key', async () => {
      const key = await (await openFileSigner(unitPaths(ws.home, 'medical').signingKey)).keyId;
      const report = (await logOf(ws, 'medical')).find((e) => e.type === 'report.signed');
      expect(report?.detail?.key).toBe(key);
    });
  });

  describe('verify <runId> with one unit’s public keys', () => {
    it('passes with credit’s keys', async () => {
      const r = await cli(
        ws,
        'verify',
        creditRun,
        '--key',
        pub.credit.signing,
        '--audit-key',
        pub.credit.audit,
        '--json',
      );
      expect(failing(r.out)).toEqual([]);
      expect(r.exit).toBe(0);
    });

    it('fails with medical’s keys: no bundle signature and no checkpoint verifies', async () => {
      const r = await cli(
        ws,
        'verify',
        creditRun,
        '--key',
        pub.medical.signing,
        '--audit-key',
        pub.medical.audit,
        '--json',
      );
      expect(r.exit).toBe(1);
      const broken = failing(r.out);
      for (const slot of ['transform', 'provenance', 'model-signing', 'fairness', 'gate'])
        expect(broken).toContain(`${slot}.signature SIGNATURE_INVALID`);
      expect(broken).toContain('audit.checkpoint AUDIT_CHECKPOINT_INVALID');
    });

    it('fails with credit’s signing key and medical’s audit key: the checkpoint is not medical’s', async () => {
      const r = await cli(
        ws,
        'verify',
        creditRun,
        '--key',
        pub.credit.signing,
        '--audit-key',
        pub.medical.audit,
        '--json',
      );
      expect(r.exit).toBe(1);
      expect(failing(r.out)).toContain('audit.checkpoint AUDIT_CHECKPOINT_INVALID');
      expect(failing(r.out).filter((c) => c.includes('.signature'))).toEqual([]);
    });

    it('with --trust-state-keys trusts the run’s unit’s keys only', async () => {
      const r = await cli(ws, 'verify', medicalRun, '--trust-state-keys', '--json');
      expect(r.exit).toBe(0);
      const trusted = (JSON.parse(r.out) as { trusted: string[] }).trusted;
      expect(trusted).toHaveLength(2);
      for (const t of trusted) expect(t).toContain(join('units', 'medical', 'keys'));
    });
  });

  describe('audit verify --unit', () => {
    it('is intact with the unit’s audit key', async () => {
      const r = await cli(ws, 'audit', 'verify', '--unit', 'credit', '--audit-key', pub.credit.audit);
      expect(r.exit).toBe(0);
      expect(r.out).toMatch(/entries, \d+ checkpoints: intact/);
    });

    it('is refused with another unit’s audit key (CHECKPOINT_FORGED)', async () => {
      const r = await cli(
        ws,
        'audit',
        'verify',
        '--unit',
        'credit',
        '--audit-key',
        pub.medical.audit,
        '--json',
      );
      expect(r.exit).toBe(1);
      const report = JSON.parse(r.out) as { ok: boolean; problems: { code: string }[] };
      expect(report.ok).toBe(false);
      expect(report.problems.map((p) => p.code)).toContain('CHECKPOINT_FORGED');
    });

    it('falls back to the unit’s own state key, and says which', async () => {
      const r = await cli(ws, 'audit', 'verify', '--unit', 'medical');
      expect(r.exit).toBe(0);
      expect(r.out).toContain(`(${join('units', 'medical', 'keys', 'audit.key')})`);
    });

    it('proves an entry of the unit’s log under the unit’s origin', async () => {
      const r = await cli(ws, 'audit', 'prove', '0', '--unit', 'medical', '--json');
      expect(r.exit).toBe(0);
      const proof = JSON.parse(r.out) as { origin: string; entry: AuditEntry };
      expect(proof.origin).toBe('veritrail.local/audit/medical');
      expect(proof.entry.runId).toBe(medicalRun);
    });
  });

  describe('runs list --unit', () => {
    it('lists only the unit’s runs, each with its unit', async () => {
      const r = await cli(ws, 'runs', 'list', '--unit', 'medical', '--json');
      expect(r.exit).toBe(0);
      const listed = JSON.parse(r.out) as { runId: string; unit: string }[];
      expect(listed).toEqual([expect.objectContaining({ runId: medicalRun, unit: 'medical' })]);
      const all = JSON.parse((await cli(ws, 'runs', 'list', '--json')).out) as { unit: string }[];
      expect(all.map((x) => x.unit).sort()).toEqual(['credit', 'medical']);
      const text = await cli(ws, 'runs', 'list');
      expect(text.out.split('\n')[0]).toMatch(/GATE +UNIT +CREATED/);
      expect(text.out).toMatch(new RegExp(`^${medicalRun} .* medical +\\d{4}-`, 'm'));
    });

    it('counts a run recorded before units (no unit) as the default unit’s', async () => {
      const rt = await openLocalRuntime(ws.home);
      try {
        await rt.runs.create({
          runId: 'r-before-units',
          pipeline: 'credit-scoring',
          pipelineDigest: `sha256:${'1'.repeat(64)}`,
          trigger: 'operator',
          idempotencyKey: 'before-units',
          dataset: { uri: 'file:///data.csv' },
          createdAt: new Date().toISOString(),
        });
        await rt.runs.transition('r-before-units', 'RUNNING');
        await rt.runs.transition('r-before-units', 'FAILED');
      } finally {
        await rt.close();
      }
      const r = await cli(ws, 'runs', 'list', '--unit', 'default', '--json');
      expect((JSON.parse(r.out) as { runId: string; unit: string }[]).map((x) => [x.runId, x.unit])).toEqual([
        ['r-before-units', 'default'],
      ]);
    });

    it('filters a pipeline’s runs by unit', async () => {
      const list = async (...args: string[]) =>
        (JSON.parse((await cli(ws, 'runs', 'list', '--json', ...args)).out) as { runId: string }[]).map(
          (r) => r.runId,
        );
      expect(await list('--pipeline', 'diagnosis', '--unit', 'medical')).toEqual([medicalRun]);
      expect(await list('--pipeline', 'diagnosis', '--unit', 'credit')).toEqual([]);
    });

    it('refuses a unit the state dir does not hold, in one line naming the units there', async () => {
      const r = await cli(ws, 'runs', 'list', '--unit', 'fraud');
      expect(r.exit).toBe(2);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).toContain('unit "fraud" has nothing in state dir');
      expect(r.err).toContain('units here: default, credit, medical');
      const bad = await cli(ws, 'audit', 'verify', '--unit', 'Credit!');
      expect(bad.exit).toBe(2);
      expect(bad.err).toMatch(/--unit "Credit!" must be 3-24 lowercase letters/);
      expect((await cli(ws, 'audit', 'show', '--unit', 'fraud')).exit).toBe(2);
    });
  });

  describe('the control plane serving both units at once', () => {
    let landed: Record<'credit' | 'medical', string>;
    let skip: StartOutcome;
    let refused: StartOutcome[];

    beforeAll(async () => {
      const rt = await openLocalRuntime(ws.home);
      const plane = new LocalControlPlane({
        rt,
        pipelines: [await loadPipelineFile(creditDef, ws.dir), await loadPipelineFile(medicalDef, ws.dir)],
        landingDir: join(ws.dir, 'landing'),
        pollMs: 25,
        schedules: false,
      });
      try {
        await plane.start();
        const before = new Set((await rt.runs.list({ limit: 1000 })).map((r) => r.runId));
        for (const name of ['scoring', 'diagnosis']) {
          mkdirSync(join(ws.dir, 'landing', name), { recursive: true });
          copyFileSync(ws.dataset, join(ws.dir, 'landing', name, 'batch.csv'));
          // New content: the landed file is a new trigger, not the CLI run's.
          appendFileSync(join(ws.dir, 'landing', name, 'batch.csv'), '\n');
        }
        await eventually(async () => (await rt.runs.list({ limit: 1000 })).length === before.size + 2);
        await plane.idle();
        const fresh = (await rt.runs.list({ limit: 1000 })).filter((r) => !before.has(r.runId));
        const of = (p: string) => fresh.find((r) => r.pipeline === p)?.runId ?? '';
        landed = { credit: of('scoring'), medical: of('diagnosis') };

        // Scheduled retraining of the medical pipeline on unchanged inputs: skipped, signed as medical.
        const def = plane.service.pipelines.find((p) => p.def.name === 'diagnosis')?.def;
        if (!def) throw new Error('no diagnosis pipeline');
        skip = await plane.submit(schedulePayloadAt(def, new Date('2024-05-06T03:00:00Z')));
        // A bad start of a medical pipeline, and one naming no loaded pipeline (no unit at all).
        refused = [
          await plane.submit({ pipeline: 'diagnosis', dataset: { uri: 'file://relative/path' } }),
          await plane.submit({ pipeline: 'nosuch', dataset: { uri: 'file:///data.csv' } }),
        ];
      } finally {
        await plane.stop();
        await rt.close();
      }
    }, 240_000);

    it('ran both landed files, each recorded in its own unit', async () => {
      const r = JSON.parse((await cli(ws, 'runs', 'list', '--json')).out) as RunRecord[];
      const byId = new Map(r.map((x) => [x.runId, x]));
      expect(byId.get(landed.credit)).toMatchObject({ unit: 'credit', status: 'SUCCEEDED' });
      expect(byId.get(landed.medical)).toMatchObject({ unit: 'medical', status: 'SUCCEEDED' });
    });

    it('signed each run with its own unit’s key: each verifies with that unit’s keys only', async () => {
      for (const [unit, other] of [
        ['credit', 'medical'],
        ['medical', 'credit'],
      ] as const) {
        const own = await cli(
          ws,
          'verify',
          landed[unit],
          '--key',
          pub[unit].signing,
          '--audit-key',
          pub[unit].audit,
        );
        expect(own.exit, own.out).toBe(0);
        const wrong = await cli(
          ws,
          'verify',
          landed[unit],
          '--key',
          pub[other].signing,
          '--audit-key',
          pub[other].audit,
          '--json',
        );
        expect(wrong.exit).toBe(1);
        expect(failing(wrong.out)).toContain('provenance.signature SIGNATURE_INVALID');
      }
    });

    it('recorded each start in its own unit’s log', async () => {
      const credit = await logOf(ws, 'credit');
      const medical = await logOf(ws, 'medical');
      const requested = (log: AuditEntry[], runId: string) =>
        log.some((e) => e.runId === runId && e.type === 'run.requested');
      expect(requested(credit, landed.credit)).toBe(true);
      expect(requested(medical, landed.medical)).toBe(true);
      expect(credit.some((e) => e.runId === landed.medical)).toBe(false);
      expect(medical.some((e) => e.runId === landed.credit)).toBe(false);
    });

    it('signed the scheduled retrain skip of the medical pipeline with medical’s key, in medical’s log', async () => {
      expect(skip).toMatchObject({ status: 'skipped', sinceRunId: landed.medical });
      if (skip.status !== 'skipped') return;
      const bundle = JSON.parse(
        readFileSync(join(ws.home, 'objects', 'artifacts', skip.bundleKey), 'utf8'),
      ) as unknown;
      const options = { predicateType: RETRAIN_SKIP_PREDICATE_TYPE };
      expect(() => verifyBundle(bundle, readFileSync(pub.medical.signing, 'utf8'), options)).not.toThrow();
      expect(() => verifyBundle(bundle, readFileSync(pub.credit.signing, 'utf8'), options)).toThrow();
      const entry = (await logOf(ws, 'medical')).find((e) => e.type === 'retrain.skipped');
      expect(entry?.runId).toBe(skip.runId);
      expect((await logOf(ws)).some((e) => e.type === 'retrain.skipped')).toBe(false);
    });

    it('records a refused start in the log of the pipeline it names, or the default log when it names none loaded', async () => {
      expect(refused.map((o) => o.status)).toEqual(['rejected', 'rejected']);
      const rejected = async (unit?: string) =>
        (await logOf(ws, unit)).filter((e) => e.type === 'trigger.rejected').map((e) => e.pipeline);
      expect(await rejected('medical')).toEqual(['diagnosis']);
      expect(await rejected()).toEqual(['nosuch']);
      expect(await rejected('credit')).toEqual([]);
    });
  });

  describe('a lost run of unit medical', () => {
    const lost = 'r-lost-medical';

    beforeAll(async () => {
      const rt = await openLocalRuntime(ws.home);
      try {
        const medical = await rt.runs.get(medicalRun);
        if (!medical) throw new Error('no medical run');
        await rt.runs.create({
          runId: lost,
          pipeline: 'diagnosis',
          unit: 'medical',
          pipelineDigest: medical.pipelineDigest,
          trigger: 'operator',
          idempotencyKey: 'lost-medical',
          dataset: medical.dataset,
          createdAt: new Date().toISOString(),
        });
        await rt.runs.transition(lost, 'RUNNING');
        await rt.runs.recordStep(lost, {
          name: 'Train',
          status: 'RUNNING',
          startedAt: new Date().toISOString(),
        });
        // Owned by a process that has ended: a pid no process has.
        const client = (rt.runs as unknown as { client: import('@aws-sdk/client-dynamodb').DynamoDBClient })
          .client;
        await client.send(
          new PutItemCommand({
            TableName: 'veritrail-runs',
            Item: marshall({
              pk: `RUN#${lost}`,
              sk: 'OWNER',
              runId: lost,
              state: 'active',
              pid: 2 ** 22 + 17,
              hostname: hostname(),
              leaseUntil: new Date(Date.now() + 60_000).toISOString(),
            }),
          }),
        );
      } finally {
        await rt.close();
      }
      // The next process to open the state dir closes it.
      const next = await openLocalRuntime(ws.home);
      await next.close();
    });

    it('is closed FAILED (ORCHESTRATOR_LOST) into medical’s log, not the default one', async () => {
      const shown = JSON.parse((await cli(ws, 'runs', 'show', lost, '--json')).out) as RunRecord;
      expect(shown).toMatchObject({
        status: 'FAILED',
        unit: 'medical',
        error: { code: 'ORCHESTRATOR_LOST' },
      });
      const medical = (await logOf(ws, 'medical')).filter((e) => e.runId === lost);
      expect(medical.map((e) => e.type)).toEqual(expect.arrayContaining(['run.failed', 'report.signed']));
      expect(medical.find((e) => e.type === 'run.failed')?.detail?.error).toMatchObject({
        code: 'ORCHESTRATOR_LOST',
      });
      expect((await logOf(ws)).some((e) => e.runId === lost)).toBe(false);
      expect((await logOf(ws, 'credit')).some((e) => e.runId === lost)).toBe(false);
      expect(
        (await cli(ws, 'audit', 'verify', '--unit', 'medical', '--audit-key', pub.medical.audit)).exit,
      ).toBe(0);
    });

    it('runs retry drives it again as medical: signed with medical’s key, recorded in medical’s log', async () => {
      const r = await cli(ws, 'runs', 'retry', lost, '--pipeline', medicalDef, '--json');
      expect(r.exit, r.err).toBe(0);
      const attempt = (JSON.parse(r.out) as { runId: string }).runId;
      expect(attempt).toBe(`${lost}-a2`);
      const shown = JSON.parse((await cli(ws, 'runs', 'show', attempt, '--json')).out) as RunRecord;
      expect(shown).toMatchObject({ unit: 'medical', status: 'SUCCEEDED' });
      const medical = (await logOf(ws, 'medical')).filter((e) => e.runId === attempt);
      expect(medical.find((e) => e.type === 'run.requested')?.detail?.retryOf).toBe(lost);
      expect((await logOf(ws)).some((e) => e.runId === attempt)).toBe(false);
      const v = await cli(
        ws,
        'verify',
        attempt,
        '--key',
        pub.medical.signing,
        '--audit-key',
        pub.medical.audit,
      );
      expect(v.exit, v.out).toBe(0);
    }, 120_000);
  });

  describe('the default unit', () => {
    it('keeps its log where it was, intact', async () => {
      const r = await cli(ws, 'audit', 'verify', '--json');
      expect(r.exit).toBe(0);
      expect(existsSync(join(ws.home, 'units', 'default'))).toBe(false);
    });
  });
});
