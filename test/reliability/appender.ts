/**
 * Child process for the reliability tests: appends `count` events named `<id>-<i>` to the log
 * under `root`, printing `ack <eventId> <seq>` after each append has resolved (is durable).
 */
import { ObjectAuditLog } from '../../src/audit/log.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import { event } from './helpers.js';

const [root, id, countText, startText] = process.argv.slice(2);
if (root === undefined || id === undefined) {
  process.stderr.write('usage: appender <root> <id> <count> [start]\n');
  process.exit(2);
}
const log = new ObjectAuditLog({ store: new FsObjectStore(root) });
const start = Number(startText ?? 0);
for (let i = start; i < start + Number(countText ?? 1); i++) {
  const e = await log.append(event(`${id}-${i}`));
  process.stdout.write(`ack ${e.eventId} ${e.seq}\n`);
}
