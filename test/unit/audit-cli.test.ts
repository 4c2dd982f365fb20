import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ObjectAuditLog } from '../../src/audit/log.js';
import { verifyProofBundle } from '../../src/audit/verify/proof.js';
import { run } from '../../src/cli/commands/audit.js';
import type { CliIo } from '../../src/cli/io.js';
import { openFileSigner } from '../../src/local/file-signer.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import { event } from '../reliability/helpers.js';

let home: string;
let out: string[];
const io = (): CliIo => ({
  out: (t) => out.push(t),
  err: (t) => out.push(t),
  env: {},
  cwd: home,
  tty: false,
});

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'vt-cli-'));
  out = [];
  const signer = await openFileSigner(join(home, 'keys', 'audit.key'));
  const log = new ObjectAuditLog({ store: new FsObjectStore(join(home, 'objects')), signer });
  for (let i = 0; i < 6; i++) await log.append(event(i, i < 3 ? 'run-a' : 'run-b'));
});
afterEach(async () => rm(home, { recursive: true, force: true }));

describe('veritrail audit', () => {
  it('verify --json prints ok, counts and no problems, exit 0', async () => {
    expect(await run(['verify', '--json', '--home', home], io())).toBe(0);
    expect(JSON.parse(out.join(''))).toEqual({ ok: true, entries: 6, checkpoints: 0, problems: [] });
  });

  it('verify exits 1 and names the seq when an entry was edited', async () => {
    const path = join(home, 'objects', 'audit', 'log', 'entries', '000', '000', '000', '000', '002');
    await chmod(path, 0o644);
    await writeFile(path, (await readFile(path, 'utf8')).replace('"success"', '"failure"'));
    expect(await run(['verify', '--json'], { ...io(), env: { VERITRAIL_HOME: home } })).toBe(1);
    const report = JSON.parse(out.join(''));
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([{ seq: 2, code: 'ENTRY_ALTERED', detail: expect.any(String) }]);
  });

  it('show --run lists only that run', async () => {
    expect(await run(['show', '--run', 'run-b', '--json', '--home', home], io())).toBe(0);
    expect(out.map((l) => JSON.parse(l).seq)).toEqual([3, 4, 5]);
  });

  it('checkpoint then prove <seq> --json gives a bundle that verifies with the public key', async () => {
    expect(await run(['checkpoint', '--home', home], io())).toBe(0);
    expect(out[0]?.split('\n')[1]).toBe('6');
    out = [];
    expect(await run(['prove', '4', '--json', '--home', home], io())).toBe(0);
    const pem = await (await openFileSigner(join(home, 'keys', 'audit.key'))).publicKeyPem();
    expect(verifyProofBundle(out.join(''), pem).entry.seq).toBe(4);
  });

  it('rejects an unknown subcommand with USAGE', async () => {
    await expect(run(['frobnicate', '--home', home], io())).rejects.toMatchObject({ code: 'USAGE' });
    await expect(run(['prove', 'x', '--home', home], io())).rejects.toMatchObject({ code: 'USAGE' });
  });
});
