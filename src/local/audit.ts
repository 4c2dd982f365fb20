import { createHash } from 'node:crypto';
import { isVeritrailError } from '../core/errors.js';
import { canonicalBytes } from '../core/jcs.js';
import type { AuditEntry, AuditEventInput, AuditLog, ObjectStore } from '../ports.js';
import { openFileSigner } from './file-signer.js';

// TEMPORARY until src/audit lands: a hash chain with compare-and-set sequencing, no tiles or proofs.
export async function openLocalAuditLog(objects: ObjectStore, keyPath: string): Promise<AuditLog> {
  await openFileSigner(keyPath);
  const key = (seq: number) => `log/entries/${String(seq).padStart(12, '0')}.json`;
  const log: AuditLog = {
    async append(event: AuditEventInput): Promise<AuditEntry> {
      let seq = 0;
      let prev = '0'.repeat(64);
      for (;;) {
        const existing = await objects.head('audit', key(seq));
        if (!existing) break;
        const chunks: Buffer[] = [];
        for await (const c of await objects.open('audit', key(seq))) chunks.push(c as Buffer);
        const bytes = Buffer.concat(chunks);
        const entry = JSON.parse(bytes.toString('utf8')) as AuditEntry;
        if (entry.eventId === event.eventId) return entry;
        prev = createHash('sha256').update(Buffer.from([0])).update(bytes).digest('hex');
        seq++;
      }
      const entry: AuditEntry = { ...event, seq, time: new Date().toISOString(), prev };
      try {
        await objects.put('audit', key(seq), canonicalBytes(entry), { ifAbsent: true, retainUntil: new Date(Date.now() + 1000) });
      } catch (e) {
        if (isVeritrailError(e, 'OBJECT_EXISTS')) return log.append(event);
        throw e;
      }
      return entry;
    },
  };
  return log;
}
