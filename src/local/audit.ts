import { dirname, join } from 'node:path';
import { type ObjectAuditLog, openAuditLog } from '../audit/log.js';
import { witnessesFromFile } from '../audit/witness/config.js';
import type { ObjectStore } from '../ports.js';
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
