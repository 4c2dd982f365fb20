import { dirname, join } from 'node:path';
import { type ObjectAuditLog, openAuditLog } from '../audit/log.js';
import { witnessesFromFile } from '../audit/witness/config.js';
import { redactValue } from '../core/redact.js';
import type { AuditEventInput, AuditLog, ObjectStore } from '../ports.js';
import { openFileSigner } from './file-signer.js';

/**
 * The embedded audit log: the same object-store log as on AWS, checkpoints signed with a local
 * key and cosigned by the witnesses named in the `witnesses.json` beside the key's folder (the
 * default unit's key is `<state dir>/keys/audit.key`; a unit's log is at its own prefix with its
 * own origin, src/local/home.ts unitPaths).
 */
export async function openLocalAuditLog(
  objects: ObjectStore,
  keyPath: string,
  identity: { prefix?: string; origin?: string } = {},
): Promise<ObjectAuditLog> {
  const witnesses = await witnessesFromFile(join(dirname(dirname(keyPath)), 'witnesses.json'));
  return openAuditLog({
    store: objects,
    signer: await openFileSigner(keyPath),
    bucket: 'audit',
    witnesses,
    ...(identity.prefix !== undefined ? { prefix: identity.prefix } : {}),
    ...(identity.origin !== undefined ? { origin: identity.origin } : {}),
  });
}

/**
 * The audit log with every appended event redacted first (src/core/redact.ts, invariant 7): the
 * log is write-once, so a secret that reached it could never be removed. Everything else passes.
 */
export function redactingAuditLog<T extends AuditLog>(log: T): T {
  return new Proxy(log, {
    get(target, prop) {
      if (prop === 'append') return (event: AuditEventInput) => target.append(redactValue(event));
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
