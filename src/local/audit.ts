import { dirname, join } from 'node:path';
import { type ObjectAuditLog, openAuditLog } from '../audit/log.js';
import { witnessesFromFile } from '../audit/witness/config.js';
import type { ObjectStore } from '../ports.js';
import { openFileSigner } from './file-signer.js';

/**
 * The embedded audit log: the same object-store log as on AWS, checkpoints signed with a local
 * key and cosigned by the witnesses `<state dir>/witnesses.json` names (the key is at
 * `<state dir>/keys/audit.key`).
 */
export async function openLocalAuditLog(objects: ObjectStore, keyPath: string): Promise<ObjectAuditLog> {
  const witnesses = await witnessesFromFile(join(dirname(dirname(keyPath)), 'witnesses.json'));
  return openAuditLog({ store: objects, signer: await openFileSigner(keyPath), bucket: 'audit', witnesses });
}
