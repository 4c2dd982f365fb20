/**
 * Issue 11 items 5 and 6: the retrain identity covers the gate policy's bytes and the trainer
 * environment, and a retrain-skip is signed only over a run whose signed gate statement agrees with
 * its stored record (an edited run store is STATE_TAMPERED, never "no change since run X").
 */
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { StartOutcome } from '../../src/core/start.js';
import { LocalControlPlane } from '../../src/local/control-plane.js';
import { LOCAL_TABLE } from '../../src/local/dynamo.js';
import { type LocalRuntime, openLocalRuntime } from '../../src/local/runtime.js';
import { schedulePayloadAt } from '../../src/local/scheduler.js';
import { loadPipelineFile } from '../../src/local/start-run.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';

const ROOT = join(import.meta.dirname, '..', '..');

async function eventually(check: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('retrain identity and signed truth', () => {
  let ws: Workspace;
  let rt: LocalRuntime;
  let plane: LocalControlPlane;
  let first: string;
  let tampered = '';
  const at = (day: number) => new Date(`2024-05-${String(day).padStart(2, '0')}T03:00:00Z`);
  const schedule = async (day: number): Promise<StartOutcome> => {
    const def = plane.service.pipelines[0]?.def;
    if (!def) throw new Error('no pipeline');
    const o = await plane.submit(schedulePayloadAt(def, at(day)));
    await plane.idle();
    return o;
  };

  beforeAll(async () => {
    ws = makeWorkspace({
      rows: 1500,
      pipeline: (d) => ((d.gate as Record<string, unknown>).policy = 'policy.cedar'),
    });
    copyFileSync(join(ROOT, 'policies', 'default.cedar'), join(ws.dir, 'policy.cedar'));
    rt = await openLocalRuntime(ws.home);
    plane = new LocalControlPlane({
      rt,
      pipelines: [await loadPipelineFile(ws.pipeline, ws.dir)],
      landingDir: join(ws.dir, 'landing'),
      pollMs: 25,
      schedules: false,
    });
    await plane.start();
    mkdirSync(join(ws.dir, 'landing', 'credit-scoring'), { recursive: true });
    copyFileSync(ws.dataset, join(ws.dir, 'landing', 'credit-scoring', 'applications.csv'));
    await eventually(async () => (await rt.runs.list()).length === 1);
    await plane.idle();
    first = (await rt.runs.list())[0]?.runId ?? '';
  }, 120_000);
  afterAll(async () => {
    await plane.stop();
    await rt.close();
    ws.cleanup();
  });

  it('records the policy and trainer environment digests with the run, and skips when none changed', async () => {
    const run = await rt.runs.get(first);
    expect(run?.status).toBe('SUCCEEDED');
    expect(run?.facts.policyDigest).toMatch(/^sha256:/);
    expect(run?.facts.environmentDigest).toMatch(/^sha256:/);
    const o = await schedule(6);
    expect(o).toMatchObject({ status: 'skipped', sinceRunId: first });
  });

  it('starts a new run when only the gate policy file changed', async () => {
    writeFileSync(
      join(ws.dir, 'policy.cedar'),
      `${readFileSync(join(ws.dir, 'policy.cedar'), 'utf8')}
@id("nothing-ships-this-week")
@reason("the review board froze releases")
forbid (principal, action == Veritrail::Action::"ship", resource);
`,
    );
    const o = await schedule(7);
    expect(o.status).toBe('started');
    if (o.status !== 'started') return;
    expect((await rt.runs.get(o.runId))?.status).toBe('REJECTED');
  });

  it('refuses to sign "no change since" over a REJECTED run edited to SUCCEEDED in the run store (STATE_TAMPERED)', async () => {
    const rejected = (await rt.runs.list()).find((r) => r.status === 'REJECTED');
    expect(rejected).toBeDefined();
    const client = (rt.runs as unknown as { client: DynamoDBClient }).client;
    await client.send(
      new UpdateItemCommand({
        TableName: LOCAL_TABLE,
        Key: { pk: { S: `RUN#${rejected?.runId}` }, sk: { S: 'RUN' } },
        UpdateExpression: 'SET #s = :s',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: { ':s': { S: 'SUCCEEDED' } },
      }),
    );
    const o = await schedule(8).catch((e: unknown) => e);
    const code =
      (o as { error?: { code?: string } }).error?.code ?? (o as { code?: string }).code ?? JSON.stringify(o);
    expect(code).toBe('STATE_TAMPERED');
    tampered = rejected?.runId ?? '';
  });

  it('runs show reports the edited run as STATE_TAMPERED instead of printing SUCCEEDED', async () => {
    const io = captureIo(ws.dir);
    const code = await main(['runs', 'show', tampered, '--home', ws.home], io);
    expect(code).toBe(1);
    expect(io.stderr.join('\n')).toMatch(
      /signed gate decision is "deny" \(REJECTED\): the stored state was altered/,
    );
  });

  it('verify fails when the registry entry is flipped from Rejected to Approved', async () => {
    const key = join(ws.home, 'objects', 'artifacts', 'registry', 'credit-scoring', `${tampered}.json`);
    const entry = JSON.parse(readFileSync(key, 'utf8')) as { approval: string };
    expect(entry.approval).toBe('Rejected');
    chmodSync(key, 0o644);
    writeFileSync(key, JSON.stringify({ ...entry, approval: 'Approved' }));
    const io = captureIo(ws.dir);
    const code = await main(['verify', tampered, '--home', ws.home, '--trust-state-keys', '--json'], io);
    expect(code).not.toBe(0);
    const report = JSON.parse(io.stdout.join('')) as {
      checks: { name: string; ok: boolean; code?: string }[];
    };
    expect(report.checks.find((c) => c.name === 'record.registry')).toMatchObject({
      ok: false,
      code: 'RECORD_MISMATCH',
    });
  });
});
