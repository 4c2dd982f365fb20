import { type ObjectAuditLog, openAuditLog } from '../audit/log.js';
import type { ObjectStore } from '../ports.js';
import { openFileSigner } from './file-signer.js';

/** The embedded audit log: the same object-store log as on AWS, checkpoints signed with a local key. */
export async function openLocalAuditLog(objects: ObjectStore, keyPath: string): Promise<ObjectAuditLog> {
  return openAuditLog({ store: objects, signer: await openFileSigner(keyPath), bucket: 'audit' });
}
