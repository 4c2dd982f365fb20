/**
 * `npm run bench -- audit [--entries=N]`: appends/s (batched, locally and on an S3-like latency store, each
 * beside a reference measured in the same run), verification
 * speed and proof make+check time on an N-entry log (default 1,000,000), with the machine's raw
 * SHA-256 throughput beside them as the limit. Goals: verify ≥ 500k entries/s; proof < 5 ms.
 */
import { hash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ObjectAuditLog } from '../src/audit/log.js';
import { verifyLog } from '../src/audit/verify/log-verifier.js';
import { verifyProofBundle } from '../src/audit/verify/proof.js';
import { entryBytes, entryLeafHash, makeEntry, toHex, ZERO_HASH_HEX } from '../src/core/audit-entry.js';
import { rootOf } from '../src/core/merkle.js';
import { encodeEntryBundle, encodeHashTile, entryBundlePath, hashTilePath } from '../src/core/tiles.js';
import { FsObjectStore } from '../src/local/fs-object-store.js';
import { event, MemoryObjectStore, testSigner } from '../test/reliability/helpers.js';
import { CompactAuditStore } from './support/compact-store.js';
import { LatencyStore } from './support/latency-store.js';

/** Runs `appenders` loops of `each` appends (`inflight` outstanding per loop); rate and latency. */
async function appendRun(
  logs: readonly ObjectAuditLog[],
  appenders: number,
  each: number,
  tag: string,
  inflight = 1,
): Promise<{ perSecond: number; p50: number; p99: number }> {
  const lat: number[] = [];
  const t = performance.now();
  await Promise.all(
    Array.from({ length: appenders }, (_, p) =>
      Promise.all(
        Array.from({ length: inflight }, async (_, q) => {
          const log = logs[p % logs.length] as ObjectAuditLog;
          for (let k = 0; k < each / inflight; k++) {
            const s = performance.now();
            await log.append(event(`${tag}-${p}-${q}-${k}`));
            lat.push(performance.now() - s);
          }
        }),
      ),
    ),
  );
  const ms = performance.now() - t;
  lat.sort((x, y) => x - y);
  return {
    perSecond: (lat.length / ms) * 1000,
    p50: lat[Math.floor(lat.length / 2)] ?? 0,
    p99: lat[Math.floor(lat.length * 0.99)] ?? 0,
  };
}

function show(label: string, r: { perSecond: number; p50: number; p99: number }, goal?: number): void {
  const verdict =
    goal === undefined
      ? ''
      : r.perSecond >= goal
        ? ` (goal ≥ ${goal.toLocaleString('en')}/s: met)`
        : ` (goal ≥ ${goal.toLocaleString('en')}/s: NOT met)`;
  console.log(
    `${label}: ${Math.round(r.perSecond).toLocaleString('en')}/s, latency p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms${verdict}`,
  );
}

/**
 * Appends: batched (one conditional write per batch, appenders of a process pooled) against a
 * reference measured in the same run: one durable object per append, the floor of the unbatched
 * design, locally; and on a store with S3-like latency, appenders that each sequence alone (as
 * separate Lambdas with no shared batcher would).
 */
async function appendBench(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'vt-bench-'));
  try {
    const refStore = new FsObjectStore(join(root, 'ref'));
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let k = next++; k < 800; k = next++)
          await refStore.put('audit', `ref/${k}`, Buffer.alloc(300, 1), { ifAbsent: true });
      }),
    );
    console.log(
      `append reference, local: one durable object per append, 8 concurrent writers: ${rate(800, performance.now() - t0)} (the floor of a design that writes an object per entry)`,
    );
    show(
      'append, 1 appender (fs, durable, batched)',
      await appendRun([new ObjectAuditLog({ store: new FsObjectStore(join(root, 'a')) })], 1, 300, 'a'),
    );
    const shared = new ObjectAuditLog({ store: new FsObjectStore(join(root, 'b')) });
    show(
      'append, 8 appenders one append at a time each (fs, durable, batched)',
      await appendRun([shared], 8, 300, 'b'),
    );
    const busy = new ObjectAuditLog({ store: new FsObjectStore(join(root, 'c')) });
    show(
      'append, 8 appenders with 32 appends in flight each (fs, durable, batched)',
      await appendRun([busy], 8, 2560, 'c', 32),
      5000,
    );

    const latency = 30;
    const ref = new LatencyStore(new MemoryObjectStore(), latency);
    const alone = Array.from({ length: 50 }, () => new ObjectAuditLog({ store: ref }));
    show(
      `append reference, S3-like (${latency} ms a request): 50 appenders each sequencing alone (no shared batcher)`,
      await appendRun(alone, 50, 4, 'r'),
    );
    const s3 = new LatencyStore(new MemoryObjectStore(), latency);
    const pooled = new ObjectAuditLog({ store: s3 });
    const r = await appendRun([pooled], 50, 100, 's');
    show(`append, S3-like (${latency} ms a request): 50 appenders, batched`, r, 1000);
    console.log(`  store requests per append: ${(s3.requests / 5000).toFixed(3)}`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

function rate(n: number, ms: number): string {
  return `${Math.round((n / ms) * 1000).toLocaleString('en')}/s`;
}

export async function main(args: string[]): Promise<void> {
  const flag = args.find((a) => a.startsWith('--entries='));
  const N = flag === undefined ? 1_000_000 : Number(flag.slice('--entries='.length));

  // Reference: raw one-shot SHA-256 of an entry-sized input (the leaf) and of a 65-byte interior
  // node. Verifying an entry needs one of each, so 1 / (leaf + node) entries/s is the limit.
  const leafBuf = Buffer.alloc(301, 7);
  const nodeBuf = Buffer.alloc(65, 1);
  let t = performance.now();
  for (let k = 0; k < 1_000_000; k++) hash('sha256', leafBuf, 'buffer');
  const leafMs = performance.now() - t;
  t = performance.now();
  for (let k = 0; k < 1_000_000; k++) hash('sha256', nodeBuf, 'buffer');
  const nodeMs = performance.now() - t;
  console.log(
    `sha256 one-shot: ${rate(1_000_000, leafMs)} of 301 bytes, ${rate(1_000_000, nodeMs)} of 65 bytes → limit ${rate(1_000_000, leafMs + nodeMs)} entries (one leaf + one node hash each)`,
  );
  // The same hashes with the digest returned as a 'binary' string and written into memory, as
  // the verifier's workers hash: a Buffer digest allocates a backing store per call, which costs
  // more than the hash. This is the one-thread limit verification is measured against.
  const into = Buffer.alloc(32 * 1024) as Buffer & { latin1Write(s: string, at: number, n: number): number };
  t = performance.now();
  for (let k = 0; k < 1_000_000; k++)
    into.latin1Write(hash('sha256', leafBuf, 'binary'), (k & 1023) * 32, 32);
  const leafInPlaceMs = performance.now() - t;
  t = performance.now();
  for (let k = 0; k < 1_000_000; k++)
    into.latin1Write(hash('sha256', nodeBuf, 'binary'), (k & 1023) * 32, 32);
  const nodeInPlaceMs = performance.now() - t;
  const shaMs = leafInPlaceMs + nodeInPlaceMs;
  console.log(
    `sha256 one-shot, digest written in place: ${rate(1_000_000, leafInPlaceMs)} of 301 bytes, ${rate(1_000_000, nodeInPlaceMs)} of 65 bytes → limit ${rate(1_000_000, shaMs)} entries a thread`,
  );

  await appendBench();

  t = performance.now();
  const { log, signer } = await buildLog(N);
  console.log(`built a ${N.toLocaleString('en')}-entry log in ${Math.round(performance.now() - t)} ms`);

  t = performance.now();
  const cp = await log.checkpoint();
  console.log(`checkpoint at ${cp.size.toLocaleString('en')}: ${Math.round(performance.now() - t)} ms`);

  for (const entryObjects of [false, true]) {
    t = performance.now();
    const report = await verifyLog(log.reader, { entryObjects });
    const vms = performance.now() - t;
    console.log(
      `verify${entryObjects ? ' + every batch copy cross-checked' : ' (bundles and tiles only)'}: ${rate(report.entries, vms)} (${report.ok ? 'ok' : `${report.problems.length} problems`}${entryObjects ? '' : '; goal ≥ 500,000/s'}; sha256 limit ${rate(1_000_000, shaMs)} a thread)`,
    );
  }

  const pem = await signer.publicKeyPem();
  const seqs = [0, Math.floor(N / 3), N - 1];
  const times: number[] = [];
  for (let r = 0; r < 20; r++) {
    const seq = seqs[r % seqs.length] as number;
    t = performance.now();
    const proof = await log.prove(seq, { checkpointSize: cp.size });
    verifyProofBundle(proof, pem);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  console.log(
    `inclusion proof make+check at ${N.toLocaleString('en')}: median ${(times[10] ?? 0).toFixed(2)} ms (goal < 5 ms)`,
  );
}

/** An N-entry log in memory, laid out as the appenders leave it (bundles, tiles, entry objects). */
export async function buildLog(
  N: number,
): Promise<{ log: ObjectAuditLog; signer: ReturnType<typeof testSigner> }> {
  const store = new CompactAuditStore();
  const signer = testSigner();
  const log = new ObjectAuditLog({ store, signer });
  let prev = ZERO_HASH_HEX;
  let bundle: Uint8Array[] = [];
  let leaves: Uint8Array[] = [];
  const level1: Uint8Array[] = [];
  const now = new Date();
  for (let s = 0; s < N; s++) {
    const bytes = entryBytes(makeEntry(event(s), s, now, prev));
    const leaf = entryLeafHash(bytes);
    prev = toHex(leaf);
    bundle.push(bytes);
    leaves.push(leaf);
    if (bundle.length === 256) {
      const tIdx = (s + 1) / 256 - 1;
      const encoded = encodeEntryBundle(bundle);
      await store.put('audit', `log/${entryBundlePath(tIdx)}`, encoded);
      // Every entry object exists, as the appenders leave them: the sealed ones served from here.
      store.seal(tIdx, encoded);
      await store.put('audit', `log/${hashTilePath(0, tIdx)}`, encodeHashTile(leaves));
      level1.push(rootOf(leaves));
      if (level1.length % 256 === 0) {
        const l1 = level1.length / 256 - 1;
        await store.put('audit', `log/${hashTilePath(1, l1)}`, encodeHashTile(level1.slice(l1 * 256)));
      }
      bundle = [];
      leaves = [];
    }
  }
  // The tail: entry objects only.
  for (let k = 0; k < bundle.length; k++) {
    store.objects.set(`audit/${log.entryKey(N - bundle.length + k)}`, bundle[k] as Uint8Array);
  }
  const l1Full = Math.floor(level1.length / 256);
  if (level1.length % 256 !== 0) {
    await store.put(
      'audit',
      `log/${hashTilePath(1, l1Full, level1.length % 256)}`,
      encodeHashTile(level1.slice(l1Full * 256)),
    );
  }
  // Level 2 partial tile: roots of full level-1 tiles.
  const level2: Uint8Array[] = [];
  for (let k = 0; k < l1Full; k++) level2.push(rootOf(level1.slice(k * 256, k * 256 + 256)));
  if (level2.length > 0 && level2.length < 256) {
    await store.put('audit', `log/${hashTilePath(2, 0, level2.length)}`, encodeHashTile(level2));
  }
  return { log, signer };
}
