import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isVeritrailError } from '../../src/core/errors.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import type { ObjectStore } from '../../src/ports.js';

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return isVeritrailError(e) ? e.code : `not a VeritrailError: ${String(e)}`;
  }
}

async function keys(store: ObjectStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list('audit', prefix)) out.push(o.key);
  return out;
}

const bytes = (s: string) => new TextEncoder().encode(s);

/**
 * The ObjectStore contract every adapter must pass. Kept as a function so the S3 adapter's tests
 * can run the same cases against a mocked client (move it to a shared file for that).
 */
function objectStoreContract(
  name: string,
  make: () => Promise<{ store: ObjectStore; done(): Promise<void> }>,
) {
  describe(`${name}: ObjectStore contract`, () => {
    let store: ObjectStore;
    let done: () => Promise<void>;
    beforeEach(async () => {
      ({ store, done } = await make());
    });
    afterEach(async () => done());

    describe('when an object is put and read back', () => {
      it('returns the same bytes and its size', async () => {
        const info = await store.put('artifacts', 'a/b/c.txt', bytes('hello'));
        expect(info).toEqual({ bucket: 'artifacts', key: 'a/b/c.txt', size: 5 });
        expect((await readAll(await store.open('artifacts', 'a/b/c.txt'))).toString()).toBe('hello');
        expect(await store.head('artifacts', 'a/b/c.txt')).toMatchObject({ size: 5 });
      });

      it('streams a Readable body', async () => {
        const parts = Array.from({ length: 100 }, (_, i) => Buffer.from(`chunk-${i};`));
        const info = await store.put('landing', 'big.bin', Readable.from(parts));
        const expected = Buffer.concat(parts);
        expect(info.size).toBe(expected.length);
        expect(await readAll(await store.open('landing', 'big.bin'))).toEqual(expected);
      });

      it('replaces a plain object on a plain put', async () => {
        await store.put('artifacts', 'k', bytes('one'));
        await store.put('artifacts', 'k', bytes('two'));
        expect((await readAll(await store.open('artifacts', 'k'))).toString()).toBe('two');
      });
    });

    describe('when an object is read from a byte offset', () => {
      it('streams the bytes from that offset to the end, and nothing at or past the end', async () => {
        await store.put('artifacts', 'ranged', bytes('0123456789'));
        expect((await readAll(await store.open('artifacts', 'ranged', { start: 0 }))).toString()).toBe(
          '0123456789',
        );
        expect((await readAll(await store.open('artifacts', 'ranged', { start: 7 }))).toString()).toBe('789');
        expect(await readAll(await store.open('artifacts', 'ranged', { start: 10 }))).toHaveLength(0);
        expect(await readAll(await store.open('artifacts', 'ranged', { start: 11 }))).toHaveLength(0);
      });
    });

    describe('when the object does not exist', () => {
      it('open fails with OBJECT_NOT_FOUND and head is undefined', async () => {
        expect(await codeOf(store.open('audit', 'nope'))).toBe('OBJECT_NOT_FOUND');
        expect(await store.head('audit', 'nope')).toBeUndefined();
        expect(await store.head('audit', 'nope/deeper')).toBeUndefined();
      });

      it('a "directory" is not an object', async () => {
        await store.put('audit', 'dir/file', bytes('x'));
        expect(await codeOf(store.open('audit', 'dir'))).toBe('OBJECT_NOT_FOUND');
        expect(await store.head('audit', 'dir')).toBeUndefined();
      });
    });

    describe('when putting with ifAbsent (compare-and-set)', () => {
      it('creates once and then fails with OBJECT_EXISTS, keeping the first bytes', async () => {
        await store.put('audit', 'seq/0', bytes('first'), { ifAbsent: true });
        expect(await codeOf(store.put('audit', 'seq/0', bytes('second'), { ifAbsent: true }))).toBe(
          'OBJECT_EXISTS',
        );
        expect((await readAll(await store.open('audit', 'seq/0'))).toString()).toBe('first');
      });

      it('lets exactly one of many concurrent writers win', async () => {
        const results = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) =>
            store.put('audit', 'race', bytes(`w${i}`), { ifAbsent: true }),
          ),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect(isVeritrailError(r.reason, 'OBJECT_EXISTS')).toBe(true);
        }
      });
    });

    describe('when putting with retainUntil (WORM)', () => {
      const until = new Date(Date.now() + 86_400_000);
      it('refuses to overwrite the object, with or without ifAbsent', async () => {
        await store.put('audit', 'worm', bytes('kept'), { retainUntil: until });
        expect(await codeOf(store.put('audit', 'worm', bytes('x'), { retainUntil: until }))).toBe(
          'OBJECT_EXISTS',
        );
        expect(await codeOf(store.put('audit', 'worm', bytes('x')))).toBe('OBJECT_EXISTS');
        expect((await readAll(await store.open('audit', 'worm'))).toString()).toBe('kept');
      });
    });

    describe('when listing', () => {
      it('yields keys under a prefix recursively in byte order', async () => {
        for (const k of ['a/c', 'a-b', 'a/b/z', 'a/b/a', 'b', 'ab', 'a/ba'])
          await store.put('audit', k, bytes(k));
        expect(await keys(store, '')).toEqual(['a-b', 'a/b/a', 'a/b/z', 'a/ba', 'a/c', 'ab', 'b']);
        expect(await keys(store, 'a/')).toEqual(['a/b/a', 'a/b/z', 'a/ba', 'a/c']);
        expect(await keys(store, 'a/b')).toEqual(['a/b/a', 'a/b/z', 'a/ba']);
        expect(await keys(store, 'a')).toEqual(['a-b', 'a/b/a', 'a/b/z', 'a/ba', 'a/c', 'ab']);
        expect(await keys(store, 'zzz/')).toEqual([]);
      });
    });

    describe('when a key tries a path trick', () => {
      for (const bad of [
        '../x',
        'a/../../x',
        '/etc/passwd',
        'a//b',
        'a/',
        '',
        'a\0b',
        'a/./b',
        '.',
        'a\\b',
      ]) {
        it(`rejects ${JSON.stringify(bad)} with PATH_REJECTED`, async () => {
          expect(await codeOf(store.put('artifacts', bad, bytes('x')))).toBe('PATH_REJECTED');
          expect(await codeOf(store.open('artifacts', bad))).toBe('PATH_REJECTED');
          expect(await codeOf(store.head('artifacts', bad))).toBe('PATH_REJECTED');
        });
      }
      it('rejects a traversal in a list prefix', async () => {
        expect(await codeOf(keys(store, '../'))).toBe('PATH_REJECTED');
      });
      it('rejects an unknown bucket', async () => {
        expect(await codeOf(store.put('secrets' as 'audit', 'k', bytes('x')))).toBe('PATH_REJECTED');
      });
    });
  });
}

async function makeFs() {
  const root = await mkdtemp(join(tmpdir(), 'vt-store-'));
  return { store: new FsObjectStore(root), root, done: () => rm(root, { recursive: true, force: true }) };
}

objectStoreContract('FsObjectStore', makeFs);

describe('FsObjectStore on disk', () => {
  it('stores bucket b key k at <root>/b/k', async () => {
    const { store, root, done } = await makeFs();
    await store.put('landing', 'x/y.csv', bytes('1,2'));
    expect((await stat(join(root, 'landing', 'x', 'y.csv'))).size).toBe(3);
    await done();
  });

  it('makes a retained object read-only (0444)', async () => {
    const { store, root, done } = await makeFs();
    await store.put('audit', 'e/0', bytes('x'), { ifAbsent: true, retainUntil: new Date(Date.now() + 1000) });
    expect((await stat(join(root, 'audit', 'e', '0'))).mode & 0o777).toBe(0o444);
    await done();
  });

  it('leaves no temporary file behind and never lists one', async () => {
    const { store, root, done } = await makeFs();
    await store.put('audit', 'k', bytes('x'), { ifAbsent: true });
    await codeOf(store.put('audit', 'k', bytes('y'), { ifAbsent: true }));
    await writeFile(join(root, 'audit', '.vt-tmp-stale'), 'left by a crash');
    expect(await keys(store, '')).toEqual(['k']);
    await done();
  });

  it('keeps the old object when a stream fails mid-way', async () => {
    const { store, done } = await makeFs();
    await store.put('artifacts', 'k', bytes('old'));
    const failing = new Readable({
      read() {
        this.push(Buffer.from('partial'));
        this.destroy(new Error('network down'));
      },
    });
    await expect(store.put('artifacts', 'k', failing)).rejects.toThrow('network down');
    expect((await readAll(await store.open('artifacts', 'k'))).toString()).toBe('old');
    await done();
  });
});
