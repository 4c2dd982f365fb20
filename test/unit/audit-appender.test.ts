/** The appender front end: pooling into batches, back-pressure, and errors per event or per batch. */
import { describe, expect, it } from 'vitest';
import { BatchAppender, type Sequencer } from '../../src/audit/appender.js';
import { ObjectAuditLog } from '../../src/audit/log.js';
import type { AuditEntry, AuditEventInput } from '../../src/ports.js';
import { event, MemoryObjectStore } from '../reliability/helpers.js';

/** A sequencer that records each batch and resolves when the test releases it. */
function gated() {
  const batches: string[][] = [];
  const gates: (() => void)[] = [];
  let seq = 0;
  const sequencer: Sequencer = {
    async sequence(events: readonly AuditEventInput[]) {
      batches.push(events.map((e) => e.eventId));
      await new Promise<void>((r) => gates.push(r));
      return events.map((e) =>
        e.eventId === 'bad' ? new Error('refused') : ({ ...e, seq: seq++ } as unknown as AuditEntry),
      );
    },
  };
  const release = async () => {
    for (let i = 0; i < 50 && gates.length === 0; i++) await new Promise((r) => setImmediate(r));
    gates.shift()?.();
  };
  return { sequencer, batches, release };
}

describe('the batch appender', () => {
  it('sends the appends that arrive while a batch is being written as the next batch', async () => {
    const g = gated();
    const a = new BatchAppender(g.sequencer);
    const first = a.append(event('a'));
    await new Promise((r) => setImmediate(r));
    const rest = ['b', 'c', 'd'].map((id) => a.append(event(id)));
    await g.release();
    await g.release();
    await Promise.all([first, ...rest]);
    expect(g.batches).toEqual([[event('a').eventId], ['b', 'c', 'd'].map((id) => event(id).eventId)]);
  });

  it('makes callers wait once maxPending appends are waiting (back-pressure)', async () => {
    const g = gated();
    const a = new BatchAppender(g.sequencer, { maxPending: 2, maxBatch: 2 });
    const p = [1, 2, 3].map((i) => a.append(event(i)));
    await new Promise((r) => setImmediate(r));
    expect(a.waiting).toBe(2);
    await g.release();
    await g.release();
    await Promise.all(p);
    expect(g.batches.map((b) => b.length)).toEqual([2, 1]);
  });

  it('rejects only the event the sequencer refuses, and every caller of a batch that failed', async () => {
    const g = gated();
    const a = new BatchAppender(g.sequencer);
    const ok = a.append(event('x'));
    const bad = a.append({ ...event('y'), eventId: 'bad' });
    await g.release();
    await expect(ok).resolves.toMatchObject({ seq: 0 });
    await expect(bad).rejects.toThrow('refused');
    const failing = new BatchAppender({ sequence: async () => Promise.reject(new Error('store down')) });
    await expect(Promise.all([failing.append(event(1)), failing.append(event(2))])).rejects.toThrow(
      'store down',
    );
  });
});

describe('the log', () => {
  it('refuses an event over 64 KiB with EVENT_INVALID and records the others of its batch', async () => {
    const log = new ObjectAuditLog({ store: new MemoryObjectStore() });
    const big = { ...event('big'), detail: { blob: 'x'.repeat(70_000) } };
    const results = await Promise.allSettled([log.append(event(1)), log.append(big), log.append(event(2))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'EVENT_INVALID' });
    expect(await log.size()).toBe(2);
  });
});
