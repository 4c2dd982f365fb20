import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { captureIo } from '../helpers/workspace.js';

// FIPS 180-2, appendix B.1 ("abc") and the digest of the empty message.
const ABC = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'veritrail-hash-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function hash(...args: string[]) {
  const io = captureIo(dir);
  const exit = await main(['hash', ...args], io);
  return { exit, out: io.stdout.join(''), err: io.stderr.join('') };
}

describe('when given one file', () => {
  it('prints its plain SHA-256 the way sha256sum does', async () => {
    writeFileSync(join(dir, 'abc.txt'), 'abc');
    expect(await hash('abc.txt')).toMatchObject({ exit: 0, out: `${ABC}  abc.txt` });
  });
  it('prints digest, size and file count with --json', async () => {
    writeFileSync(join(dir, 'abc.txt'), 'abc');
    const r = await hash('abc.txt', '--json');
    expect(JSON.parse(r.out)).toEqual({ digest: `sha256:${ABC}`, size: 3, files: 1 });
  });
});

describe('when given a folder', () => {
  beforeEach(() => {
    mkdirSync(join(dir, 'data', 'sub'), { recursive: true });
    writeFileSync(join(dir, 'data', 'sub', 'b.txt'), '');
    writeFileSync(join(dir, 'data', 'a.txt'), 'abc');
  });
  // The RFC 8785 form of the manifest, typed in: keys sorted, no whitespace, paths sorted.
  const canonical = `{"files":[{"digest":"sha256:${ABC}","path":"a.txt","size":3},{"digest":"sha256:${EMPTY}","path":"sub/b.txt","size":0}],"mediaType":"application/vnd.veritrail.manifest.v1+json"}`;
  const expected = `sha256:${createHash('sha256').update(canonical).digest('hex')}`;

  it('prints the sha256 of its canonical manifest', async () => {
    expect(await hash('data')).toMatchObject({ exit: 0, out: expected });
  });
  it('counts every file and byte with --json', async () => {
    expect(JSON.parse((await hash('data', '--json')).out)).toEqual({ digest: expected, size: 3, files: 2 });
  });
  it('gives another digest when one byte changes', async () => {
    writeFileSync(join(dir, 'data', 'a.txt'), 'abd');
    expect((await hash('data')).out).not.toBe(expected);
  });
});

describe('when the input is refused', () => {
  it('refuses a symlink inside a folder with exit 2', async () => {
    mkdirSync(join(dir, 'data'));
    writeFileSync(join(dir, 'data', 'a.txt'), 'abc');
    symlinkSync(join(dir, 'data', 'a.txt'), join(dir, 'data', 'link.txt'));
    const r = await hash('data');
    expect(r.exit).toBe(2);
    expect(r.err).toContain('symbolic link');
  });
  it('refuses a symlink given directly with exit 2', async () => {
    writeFileSync(join(dir, 'a.txt'), 'abc');
    symlinkSync(join(dir, 'a.txt'), join(dir, 'link.txt'));
    expect((await hash('link.txt')).exit).toBe(2);
  });
  it('refuses a path that does not exist, an empty folder and a missing argument with exit 2', async () => {
    mkdirSync(join(dir, 'empty'));
    expect((await hash('nope')).exit).toBe(2);
    expect((await hash('empty')).exit).toBe(2);
    expect((await hash()).exit).toBe(2);
  });
});
