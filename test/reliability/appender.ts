/**
 * Child process for the reliability tests: appends `count` events named `<id>-<i>` to the log
 * under `root`, printing `ack <eventId> <seq>` after each append has resolved (is durable).
 * With `inflight` > 1, that many appends are outstanding at once, so they travel in batches.
 */
import { ObjectAuditLog } from '../../src/audit/log.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import { event } from './helpers.js';

const [root, id, countText, startText, inflightText] = process.argv.slice(2);
if (root === undefined || id === undefined) {
  process.stderr.write('usage: appender <root> <id> <count> [start] [inflight]\n');
  process.exit(2);
}
const log = new ObjectAuditLog({ store: new FsObjectStore(root) });
const start = Number(startText ?? 0);
const end = start + Number(countText ?? 1);
const inflight = Number(inflightText ?? 1);
let next = start;
await Promise.all(
  Array.from({ length: inflight }, async () => {
    for (let i = next++; i < end; i = next++) {
      const e = await log.append(event(`${id}-${i}`));
      process.stdout.write(`ack ${e.eventId} ${e.seq}\n`);
    }
  }),
);
