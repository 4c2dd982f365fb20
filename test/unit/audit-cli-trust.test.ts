/**
 * `audit verify` with trust roots from outside the state dir (issue 13 item 3, issue 14 item 3):
 * public keys only, the keys trusted are named, a swapped key is tampering, and witnesses are
 * asked over HTTP (`veritrail witness serve`).
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ObjectAuditLog } from '../../src/audit/log.js';
import { run as audit } from '../../src/cli/commands/audit.js';
import { run as witness } from '../../src/cli/commands/witness.js';
import type { CliIo } from '../../src/cli/io.js';
import { openFileSigner } from '../../src/local/file-signer.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import { event } from '../reliability/helpers.js';

let root: string;
let home: string;
let out: string[];
const io = (): CliIo => ({
  out: (t) => out.push(t),
  err: (t) => out.push(t),
  env: {},
  cwd: root,
  tty: false,
});

async function appendSome(from: number, to: number) {
  const signer = await openFileSigner(join(home, 'keys', 'audit.key'));
  const log = new ObjectAuditLog({ store: new FsObjectStore(join(home, 'objects')), signer });
  for (let i = from; i < to; i++) await log.append(event(i));
  return { log, signer };
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'vt-trust-'));
  home = join(root, 'state');
  out = [];
  const { log, signer } = await appendSome(0, 6);
  await log.checkpoint();
  await writeFile(join(root, 'audit.pub'), await signer.publicKeyPem());
});
afterEach(async () => rm(root, { recursive: true, force: true }));

describe('audit verify --audit-key', () => {
  it('runs with the public key only (no private key in the state dir) and names the key it trusted', async () => {
    await rename(join(home, 'keys', 'audit.key'), join(root, 'moved.key'));
    expect(await audit(['verify', '--home', home, '--audit-key', 'audit.pub'], io())).toBe(0);
    expect(out[0]).toMatch(/^trusted log keys \(key id\): [0-9a-f]{8}$/);
  });

  it('reports a swapped key and a re-checkpointed log as CHECKPOINT_FORGED', async () => {
    // The owner swaps the key and re-signs the log: every checkpoint made again under the new key.
    await rm(join(home, 'keys', 'audit.key'));
    await rm(join(home, 'objects', 'audit', 'log', 'checkpoints'), { recursive: true, force: true });
    const { log } = await appendSome(6, 8);
    await log.checkpoint();
    expect(await audit(['verify', '--home', home], io())).toBe(0);
    out = [];
    expect(await audit(['verify', '--home', home, '--audit-key', 'audit.pub', '--json'], io())).toBe(1);
    const report = JSON.parse(out.join('')) as { problems: { code: string }[] };
    expect(report.problems.map((p) => p.code)).toContain('CHECKPOINT_FORGED');
  });

  it('accepts both keys of a rotation, and the rotation is an entry of the log', async () => {
    await rm(join(home, 'keys', 'audit.key'));
    const { log, signer } = await appendSome(6, 8);
    await log.checkpoint();
    await writeFile(join(root, 'new.pub'), await signer.publicKeyPem());
    const types: string[] = [];
    for await (const e of log.entries()) types.push(e.type);
    expect(types).toContain('audit.key-rotated');
    expect(
      await audit(['verify', '--home', home, '--audit-key', 'audit.pub', '--audit-key', 'new.pub'], io()),
    ).toBe(0);
  });
});

describe('audit checkpoint and verify with a witness served over HTTP', () => {
  it('cosigns through witnesses.json, verify --witness --quorum 1 passes, and a rollback is LOG_ROLLED_BACK', async () => {
    const stop = new AbortController();
    const wkey = join(root, 'witness.key');
    await witness(['key', '--key', wkey], io());
    const vkey = out.pop() as string;
    const serving = witness(
      [
        'serve',
        '--key',
        wkey,
        '--state',
        join(root, 'wstate'),
        '--log-key',
        'audit.pub',
        '--listen',
        '127.0.0.1:0',
      ],
      io(),
      stop.signal,
    );
    try {
      for (let i = 0; i < 50 && !out.some((l) => l.includes('listening on')); i++)
        await new Promise((r) => setTimeout(r, 50));
      const url = /listening on (\S+)/.exec(out.join('\n'))?.[1] as string;
      await writeFile(join(home, 'witnesses.json'), JSON.stringify({ witnesses: [{ vkey, url }] }));
      const { cp } = await import('node:fs/promises');
      await cp(home, join(root, 'saved'), { recursive: true });
      await appendSome(6, 9);
      out = [];
      expect(await audit(['checkpoint', '--home', home], io())).toBe(0);
      const name = vkey.slice(0, vkey.indexOf('+'));
      const flags = [
        '--audit-key',
        'audit.pub',
        '--witness',
        vkey,
        '--witness-url',
        `${name}=${url}`,
        '--quorum',
        '1',
      ];
      out = [];
      expect(await audit(['verify', '--home', home, ...flags], io())).toBe(0);
      expect(out.join('\n')).toContain('cosigned the latest checkpoint; holds size 9');
      await rm(home, { recursive: true });
      await rename(join(root, 'saved'), home);
      out = [];
      expect(await audit(['verify', '--home', home, ...flags, '--json'], io())).toBe(1);
      const codes = (JSON.parse(out.join('')) as { problems: { code: string }[] }).problems.map(
        (p) => p.code,
      );
      expect(codes).toEqual(['WITNESS_QUORUM_MISSING', 'LOG_ROLLED_BACK']);
    } finally {
      stop.abort();
      await serving;
    }
  }, 60_000);
});
