/**
 * Several appender processes, and appenders killed with SIGKILL at random moments (DESIGN
 * invariant 5: a crash loses no acknowledged entry and leaves no gap).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ObjectAuditLog } from '../../src/audit/log.js';
import { verifyLog } from '../../src/audit/verify/log-verifier.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import { testSigner } from './helpers.js';

const script = fileURLToPath(new URL('./appender.ts', import.meta.url));
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'vt-procs-'));
});
afterAll(async () => rm(root, { recursive: true, force: true }));

function appender(
  dir: string,
  id: string,
  count: number,
  start = 0,
  inflight = 1,
): { child: ChildProcess; acks: Map<string, number>; done: Promise<number | null> } {
  const args = [script, dir, id, String(count), String(start), String(inflight)];
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const acks = new Map<string, number>();
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) {
      const [, eventId, seq] = l.split(' ');
      if (eventId !== undefined) acks.set(eventId, Number(seq));
    }
  });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const done = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      if (code !== 0 && code !== null) process.stderr.write(err);
      resolve(code);
    }),
  );
  return { child, acks, done };
}

async function readAll(dir: string) {
  const log = new ObjectAuditLog({ store: new FsObjectStore(dir), signer: testSigner() });
  const entries = [];
  for await (const e of log.entries()) entries.push(e);
  return { log, entries };
}

describe('when 4 processes append 500 events each', () => {
  it('records 2,000 entries in one chain with no gap and no duplicate', async () => {
    const dir = join(root, 'concurrent');
    const procs = [0, 1, 2, 3].map((p) => appender(dir, `p${p}`, 500));
    expect(await Promise.all(procs.map((p) => p.done))).toEqual([0, 0, 0, 0]);
    const { log, entries } = await readAll(dir);
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    expect(new Set(entries.map((e) => e.eventId)).size).toBe(2000);
    for (const p of procs) {
      for (const [eventId, seq] of p.acks) expect(entries[seq]?.eventId).toBe(eventId);
    }
    await log.checkpoint();
    const report = await verifyLog(log.reader);
    expect(report.problems).toEqual([]);
    expect(report.entries).toBe(2000);
  }, 120_000);
});

describe('when appenders are killed with SIGKILL at random moments', () => {
  it('keeps every acknowledged entry, leaves no gap, and records a retried event once', async () => {
    const dir = join(root, 'crash');
    const acked = new Map<string, number>();
    const trials = 12;
    for (let t = 0; t < trials; t++) {
      // Two appenders race; one is killed mid-stream.
      const victim = appender(dir, `t${t}`, 1000);
      const other = appender(dir, `o${t}`, 5);
      await new Promise((r) => setTimeout(r, 150 + Math.floor(Math.random() * 250)));
      victim.child.kill('SIGKILL');
      await Promise.all([victim.done, other.done]);
      for (const [k, v] of [...victim.acks, ...other.acks]) acked.set(k, v);
      // The retry of the step whose append was cut off: the same events again.
      const next = victim.acks.size;
      const retry = appender(dir, `t${t}`, 2, Math.max(0, next - 1));
      expect(await retry.done).toBe(0);
      for (const [k, v] of retry.acks) {
        if (acked.has(k)) expect(v).toBe(acked.get(k));
        acked.set(k, v);
      }
    }
    const { log, entries } = await readAll(dir);
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: entries.length }, (_, i) => i));
    expect(new Set(entries.map((e) => e.eventId)).size).toBe(entries.length);
    for (const [eventId, seq] of acked) expect(entries[seq]?.eventId).toBe(eventId);
    await log.checkpoint();
    expect((await verifyLog(log.reader)).problems).toEqual([]);
  }, 120_000);
});

describe('when appenders are killed with SIGKILL in the middle of batches', () => {
  it('keeps every acknowledged entry of every batch, leaves no gap, and records each retried event once', async () => {
    const dir = join(root, 'crash-batches');
    const acked = new Map<string, number>();
    for (let t = 0; t < 8; t++) {
      // Two appenders with 32 appends in flight each: batches of many entries race and one dies.
      const victim = appender(dir, `bt${t}`, 5000, 0, 32);
      const other = appender(dir, `bo${t}`, 300, 0, 32);
      await new Promise((r) => setTimeout(r, 300 + Math.floor(Math.random() * 400)));
      victim.child.kill('SIGKILL');
      await Promise.all([victim.done, other.done]);
      for (const [k, v] of [...victim.acks, ...other.acks]) acked.set(k, v);
      // Every event the victim may have had in flight is retried (acknowledged or not).
      const retry = appender(dir, `bt${t}`, victim.acks.size + 64, 0, 32);
      expect(await retry.done).toBe(0);
      for (const [k, v] of retry.acks) {
        if (acked.has(k)) expect(v).toBe(acked.get(k));
        acked.set(k, v);
      }
    }
    const { log, entries } = await readAll(dir);
    expect(entries.length).toBeGreaterThan(1000);
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: entries.length }, (_, i) => i));
    expect(new Set(entries.map((e) => e.eventId)).size).toBe(entries.length);
    for (const [eventId, seq] of acked) expect(entries[seq]?.eventId).toBe(eventId);
    await log.checkpoint();
    expect((await verifyLog(log.reader)).problems).toEqual([]);
  }, 240_000);
});
