/**
 * The witness's DynamoDB state (src/aws/dynamo-witness-store.ts) on dynalite, the DynamoDB the
 * embedded runtime already runs: its set is a compare-and-set, so two witness instances (two Lambda
 * instances of the Witness stack) that check two diverging checkpoints of one log against the same
 * state never both cosign: one is stored and answered 200, the other gets 409 with the size the
 * witness then holds (c2sp.org/tlog-witness), and its fork is refused when offered again.
 */
import { generateKeyPairSync } from 'node:crypto';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ObjectAuditLog } from '../../../src/audit/log.js';
import {
  addCheckpointBody,
  Witness,
  type WitnessRecord,
  type WitnessStore,
} from '../../../src/audit/witness/core.js';
import { DynamoWitnessStore, ensureWitnessTable } from '../../../src/aws/dynamo-witness-store.js';
import { parseCheckpointText, parseSignedNote } from '../../../src/core/checkpoint.js';
import { verifyCosignatures, witnessKeyOf } from '../../../src/core/cosignature.js';
import { type LocalDynamo, startLocalDynamo } from '../../../src/local/dynamo.js';
import type { Signer } from '../../../src/ports.js';
import { event, MemoryObjectStore, testSigner } from '../../reliability/helpers.js';

const TABLE = 'veritrail-witness-test';
let dynamo: LocalDynamo;
let n = 0;
/** A fresh log origin per test: the tests share one table. */
const freshOrigin = () => `veritrail.test/log-${process.pid}-${++n}`;

beforeAll(async () => {
  dynamo = await startLocalDynamo(undefined);
  await ensureWitnessTable(dynamo.client, TABLE);
}, 60_000);
afterAll(async () => {
  await dynamo?.close();
});

const record = (size: number, root: string): WitnessRecord => ({ size, root, note: `note ${size} ${root}` });

describe('DynamoWitnessStore', () => {
  it('stores a log’s first record only where none exists, then only over the record it replaces', async () => {
    const store = new DynamoWitnessStore(dynamo.client, TABLE);
    const origin = freshOrigin();
    expect(await store.get(origin)).toBeUndefined();
    const first = record(10, 'A'.repeat(43).concat('='));
    expect(await store.set(origin, first, undefined)).toBe(true);
    // A second "first" write loses: someone stored a record since this writer read none.
    expect(await store.set(origin, record(10, 'B'.repeat(43).concat('=')), undefined)).toBe(false);
    expect(await store.get(origin)).toEqual(first);
    const next = record(15, 'C'.repeat(43).concat('='));
    // Over a stale view (another size or another root) nothing is stored.
    expect(await store.set(origin, next, record(9, first.root))).toBe(false);
    expect(await store.set(origin, next, record(10, 'D'.repeat(43).concat('=')))).toBe(false);
    expect(await store.get(origin)).toEqual(first);
    expect(await store.set(origin, next, first)).toBe(true);
    expect(await store.get(origin)).toEqual(next);
  });

  it('refuses an unreadable item as AUDIT_CORRUPT rather than starting the log over', async () => {
    const origin = freshOrigin();
    await dynamo.client.send(
      new PutItemCommand({ TableName: TABLE, Item: { origin: { S: origin }, size: { N: '3' } } }),
    );
    await expect(new DynamoWitnessStore(dynamo.client, TABLE).get(origin)).rejects.toMatchObject({
      code: 'AUDIT_CORRUPT',
    });
  });
});

/** Two parties that each wait, after their first read, until the other has read too. */
function barrier(parties: number) {
  let arrived = 0;
  let open: () => void = () => undefined;
  const all = new Promise<void>((resolve) => {
    open = resolve;
  });
  return async () => {
    arrived += 1;
    if (arrived === parties) open();
    await all;
  };
}

/** The store as one Lambda instance sees it, whose first read waits at the barrier. */
function instanceStore(inner: WitnessStore, arrive: () => Promise<void>): WitnessStore {
  let waited = false;
  return {
    get: async (origin) => {
      const r = await inner.get(origin);
      if (!waited) {
        waited = true;
        await arrive();
      }
      return r;
    },
    set: (origin, rec, previous) => inner.set(origin, rec, previous),
    ...(inner.evidence ? { evidence: inner.evidence.bind(inner) } : {}),
  };
}

/**
 * A log cosigned at size 10, then two diverging continuations to size 15 (the owner's fork, both
 * signed with the log key), each with its consistency proof from 10.
 */
async function forkedLog(origin: string, signer: Signer) {
  const now = () => new Date('2026-01-01T00:00:00Z');
  const make = async (branch: string) => {
    const log = new ObjectAuditLog({ store: new MemoryObjectStore(), signer, origin, now });
    for (let i = 0; i < 10; i++) await log.append(event(i));
    const note10 = (await log.checkpoint()).note;
    for (let i = 0; i < 5; i++) await log.append(event(`${branch}-${i}`));
    const note15 = (await log.checkpoint()).note;
    const proof = (await log.proveConsistency(10, 15)).map((h) => new Uint8Array(Buffer.from(h, 'base64')));
    return { note10, note15, proof };
  };
  const a = await make('a');
  const b = await make('b');
  const root = (note: string) => parseCheckpointText(parseSignedNote(note).text).root;
  expect(Buffer.from(root(a.note10))).toEqual(Buffer.from(root(b.note10)));
  expect(Buffer.from(root(a.note15))).not.toEqual(Buffer.from(root(b.note15)));
  return { a, b };
}

describe('two witness instances on one table, offered the two branches of a fork at once', () => {
  const witnessKey = generateKeyPairSync('ed25519')
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString();
  const name = 'witness.test/dynamo';

  async function race(makeStore: () => WitnessStore) {
    const signer = testSigner();
    const origin = freshOrigin();
    const { a, b } = await forkedLog(origin, signer);
    const logs = new Map([[origin, [await signer.publicKeyPem()]]]);
    const setup = new Witness({ name, privateKeyPem: witnessKey, logs, store: makeStore() });
    expect((await setup.addCheckpoint(addCheckpointBody(0, [], a.note10))).status).toBe(200);

    const arrive = barrier(2);
    const w1 = new Witness({
      name,
      privateKeyPem: witnessKey,
      logs,
      store: instanceStore(makeStore(), arrive),
    });
    const w2 = new Witness({
      name,
      privateKeyPem: witnessKey,
      logs,
      store: instanceStore(makeStore(), arrive),
    });
    const [ra, rb] = await Promise.all([
      w1.addCheckpoint(addCheckpointBody(10, a.proof, a.note15)),
      w2.addCheckpoint(addCheckpointBody(10, b.proof, b.note15)),
    ]);
    return { origin, logs, a, b, ra, rb };
  }

  it('cosigns exactly one branch; the other gets 409 with the size the witness then holds', async () => {
    const evidence: string[] = [];
    const store = () => new DynamoWitnessStore(dynamo.client, TABLE, { evidence: (l) => evidence.push(l) });
    const { origin, logs, a, b, ra, rb } = await race(store);
    expect([ra.status, rb.status].sort()).toEqual([200, 409]);
    const [winner, loserResponse, loser] = ra.status === 200 ? [a, rb, b] : [b, ra, a];
    expect(loserResponse).toEqual({ status: 409, contentType: 'text/x.tlog.size', body: '15\n' });

    // The state is the winner's checkpoint, cosigned by the witness.
    const held = await store().get(origin);
    const winnerRoot = parseCheckpointText(parseSignedNote(winner.note15).text).root;
    expect(held?.size).toBe(15);
    expect(held?.root).toBe(Buffer.from(winnerRoot).toString('base64'));
    expect(verifyCosignatures(held?.note ?? '', [witnessKeyOf(name, witnessKey)])).toHaveLength(1);

    // Offered again against the new state, the losing branch is a fork at the cosigned size.
    const again = new Witness({ name, privateKeyPem: witnessKey, logs, store: store() });
    const fork = await again.addCheckpoint(addCheckpointBody(15, [], loser.note15));
    expect(fork.status).toBe(422);
    expect(fork.body).toMatch(/fork/);
    expect(evidence.some((l) => JSON.parse(l).reason.includes('fork'))).toBe(true);
  });

  it('the race is real: with a set that ignores the record it replaces, both branches are cosigned', async () => {
    const lastWriterWins = (): WitnessStore => {
      const inner = new DynamoWitnessStore(dynamo.client, TABLE);
      return {
        get: (o) => inner.get(o),
        // An unconditional put: what a store without a compare-and-set does.
        set: async (o, r) => {
          await dynamo.client.send(
            new PutItemCommand({
              TableName: TABLE,
              Item: {
                origin: { S: o },
                size: { N: String(r.size) },
                root: { S: r.root },
                note: { S: r.note },
              },
            }),
          );
          return true;
        },
      };
    };
    const { ra, rb } = await race(lastWriterWins);
    expect([ra.status, rb.status]).toEqual([200, 200]);
  });
});
