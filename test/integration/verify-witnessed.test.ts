/**
 * `veritrail verify <runId> --witness <vkey>` (issue 14): whether the run's audit entries are under
 * a checkpoint an independent witness cosigned. The local runtime asks the witnesses of
 * `<home>/witnesses.json` at the end of every run (a real `veritrail witness serve` over HTTP here).
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run as witness } from '../../src/cli/commands/witness.js';
import { main } from '../../src/cli/main.js';
import { openLocalAuditLog } from '../../src/local/audit.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import { homePaths } from '../../src/local/home.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';

interface Verified {
  ok: boolean;
  runId: string;
  checks: { name: string; ok: boolean; code: string; detail: string }[];
}

describe('verify <runId> --witness', () => {
  let ws: Workspace;
  beforeEach(() => {
    ws = makeWorkspace({ rows: 300 });
  });
  afterEach(() => ws.cleanup());

  async function runPipeline(dataset: string): Promise<string> {
    const io = captureIo(ws.dir);
    const code = await main(['run', dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json'], io);
    // SUCCEEDED or REJECTED (a small sample may fail the gate): either way a finished, audited run.
    expect([0, 3], io.stderr.join('\n')).toContain(code);
    return (JSON.parse(io.stdout.join('')) as { runId: string }).runId;
  }

  async function verify(runId: string, vkey: string): Promise<{ code: number; report: Verified }> {
    const io = captureIo(ws.dir);
    const code = await main(
      ['verify', runId, '--home', ws.home, '--trust-state-keys', '--witness', vkey, '--json'],
      io,
    );
    return { code, report: JSON.parse(io.stdout.join('')) as Verified };
  }

  async function newWitnessKey(name: string): Promise<{ file: string; vkey: string }> {
    const file = join(ws.dir, `${name}.key`);
    const io = captureIo(ws.dir);
    expect(await witness(['key', '--key', file], io)).toBe(0);
    return { file, vkey: (io.stdout.at(-1) as string).trim() };
  }

  it('reports the witness that cosigned a checkpoint covering the run, and refuses one that did not', async () => {
    // A first run creates the state dir and its audit key; the witness is told that log's public key.
    await runPipeline(ws.dataset);
    const auditPub = join(ws.dir, 'audit.pub');
    const pem = readFileSync(homePaths(ws.home).auditKey, 'utf8');
    writeFileSync(auditPub, createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'pem' }));

    const w = await newWitnessKey('witness-a.example');
    const stop = new AbortController();
    const lines: string[] = [];
    const serving = witness(
      [
        'serve',
        '--key',
        w.file,
        '--state',
        join(ws.dir, 'wstate'),
        '--log-key',
        auditPub,
        '--listen',
        '127.0.0.1:0',
      ],
      { ...captureIo(ws.dir), out: (t) => lines.push(t), err: (t) => lines.push(t) },
      stop.signal,
    );
    try {
      for (let i = 0; i < 100 && !lines.some((l) => l.includes('listening on')); i++)
        await new Promise((r) => setTimeout(r, 50));
      const url = /listening on (\S+)/.exec(lines.join('\n'))?.[1] as string;
      writeFileSync(join(ws.home, 'witnesses.json'), JSON.stringify({ witnesses: [{ vkey: w.vkey, url }] }));

      // Other content: a new run, checkpointed and cosigned as it ends.
      const data = readFileSync(ws.dataset, 'utf8').trim().split('\n');
      const second = join(ws.dir, 'second.csv');
      writeFileSync(second, `${data.slice(0, -1).join('\n')}\n`);
      const runId = await runPipeline(second);
      const log = await openLocalAuditLog(
        new FsObjectStore(homePaths(ws.home).objects),
        homePaths(ws.home).auditKey,
      );
      // The checkpoint the run ended with is already cosigned by the witness.
      const ended = await log.latestCheckpoint();
      const cosignatureOf = (note: string | undefined) =>
        note?.split('\n').filter((l) => l.startsWith(`\u2014 ${w.vkey.slice(0, w.vkey.indexOf('+'))} `));
      expect(cosignatureOf(ended?.note)).toHaveLength(1);
      // The log goes on; its next checkpoint is asked of the witnesses in witnesses.json.
      await log.append({
        eventId: 'after-the-run',
        pipeline: 'credit-scoring',
        runId,
        step: 'Operator',
        type: 'operator.note',
        outcome: 'info',
        actor: 'test@host',
      });
      const cp = await log.checkpoint();
      expect(cp.witnessed, JSON.stringify(cp.witnessed)).toEqual([expect.objectContaining({ ok: true })]);

      const witnessed = await verify(runId, w.vkey);
      const check = witnessed.report.checks.find((c) => c.name === 'audit.witnessed');
      expect(check, JSON.stringify(check)).toMatchObject({ ok: true, code: 'OK' });
      expect(check?.detail).toContain(w.vkey.slice(0, w.vkey.indexOf('+')));
      expect(witnessed.code).toBe(0);

      // A witness that never saw this log: the run is not under a checkpoint it cosigned.
      const other = await newWitnessKey('witness-b.example');
      const unwitnessed = await verify(runId, other.vkey);
      expect(unwitnessed.report.checks.find((c) => c.name === 'audit.witnessed')).toMatchObject({
        ok: false,
        code: 'AUDIT_NOT_WITNESSED',
      });
      expect(unwitnessed.code).toBe(1);
    } finally {
      stop.abort();
      await serving;
    }
  }, 120_000);
});
