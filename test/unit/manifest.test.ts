import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { digestOf } from '../../src/core/digest.js';
import { isVeritrailError } from '../../src/core/errors.js';
import {
  buildManifest,
  compareUtf8,
  MANIFEST_MEDIA_TYPE,
  type ManifestEntry,
  manifestDigest,
  parseManifest,
  validateRelativePath,
} from '../../src/core/manifest.js';

const e = (path: string, content = path): ManifestEntry => ({
  path,
  size: Buffer.byteLength(content),
  digest: digestOf(content),
});

describe('validateRelativePath', () => {
  it.each(['a', 'a/b.csv', 'dir/sub/file', '.hidden', 'a..b', '...', 'é/ü.csv', '😀'])('accepts %j', (p) => {
    expect(validateRelativePath(p)).toBe(p);
  });

  it.each([
    ['empty', ''],
    ['parent segment', '../etc/passwd'],
    ['inner parent segment', 'a/../b'],
    ['trailing parent segment', 'a/..'],
    ['current segment', './a'],
    ['absolute', '/etc/passwd'],
    ['drive letter', 'C:/x'],
    ['NUL', 'a\0b'],
    ['backslash', 'a\\b'],
    ['empty segment', 'a//b'],
    ['trailing slash', 'a/'],
    ['lone surrogate', 'a\uD800'],
  ])('rejects %s (%j) with PATH_REJECTED', (_, p) => {
    let caught: unknown;
    try {
      validateRelativePath(p);
    } catch (err) {
      caught = err;
    }
    expect(isVeritrailError(caught, 'PATH_REJECTED')).toBe(true);
  });
});

describe('buildManifest', () => {
  it('sorts by UTF-8 bytes, not UTF-16 code units', () => {
    // U+FF5E is one UTF-16 unit 0xFF5E; U+1F600 is the pair 0xD83D 0xDE00. UTF-16 order puts the
    // emoji first; UTF-8 (EF BD 9E vs F0 9F 98 80) puts U+FF5E first.
    const m = buildManifest([e('\u{1F600}'), e('\uFF5E'), e('b'), e('B'), e('a/b'), e('a.b')]);
    expect(m.files.map((f) => f.path)).toEqual(['B', 'a.b', 'a/b', 'b', '\uFF5E', '\u{1F600}']);
    expect(compareUtf8('\uFF5E', '\u{1F600}')).toBeLessThan(0);
  });

  it('has the documented shape and digest: sha256 of the RFC 8785 text', () => {
    const m = buildManifest([
      { path: 'b.csv', size: 3, digest: digestOf('b,c') },
      { path: 'a.csv', size: 1, digest: digestOf('a') },
    ]);
    // Typed in by hand: keys sorted, no whitespace (RFC 8785 §3.2).
    const text =
      `{"files":[{"digest":"${digestOf('a')}","path":"a.csv","size":1},` +
      `{"digest":"${digestOf('b,c')}","path":"b.csv","size":3}],` +
      `"mediaType":"application/vnd.veritrail.manifest.v1+json"}`;
    expect(manifestDigest(m)).toBe(`sha256:${createHash('sha256').update(text).digest('hex')}`);
    expect(m.mediaType).toBe(MANIFEST_MEDIA_TYPE);
  });

  it('refuses a duplicate path', () => {
    expect(() => buildManifest([e('a'), e('a', 'other')])).toThrow(
      expect.objectContaining({ code: 'PATH_REJECTED' }),
    );
  });

  it('refuses a path that is both a file and a directory', () => {
    expect(() => buildManifest([e('a'), e('a/b')])).toThrow(
      expect.objectContaining({ code: 'PATH_REJECTED' }),
    );
  });

  it('refuses a bad size or digest', () => {
    expect(() => buildManifest([{ path: 'a', size: -1, digest: digestOf('a') }])).toThrow(
      expect.objectContaining({ code: 'DATASET_VALUE' }),
    );
    expect(() => buildManifest([{ path: 'a', size: 1, digest: 'sha256:ABC' as `sha256:${string}` }])).toThrow(
      expect.objectContaining({ code: 'DIGEST_MISMATCH' }),
    );
  });

  it('takes an empty dataset (the caller decides whether that is an error)', () => {
    expect(buildManifest([]).files).toEqual([]);
  });
});

describe('parseManifest', () => {
  it('reads back what buildManifest wrote, with the same digest', () => {
    const m = buildManifest([e('z'), e('y/x')]);
    const back = parseManifest(JSON.parse(JSON.stringify(m)));
    expect(manifestDigest(back)).toBe(manifestDigest(m));
  });

  it('refuses an unsorted manifest instead of re-sorting it', () => {
    const m = buildManifest([e('a'), e('b')]);
    expect(() => parseManifest({ ...m, files: [...m.files].reverse() })).toThrow(
      expect.objectContaining({ code: 'DATASET_VALUE' }),
    );
  });

  it('refuses unknown keys and path tricks', () => {
    expect(() => parseManifest({ mediaType: MANIFEST_MEDIA_TYPE, files: [], extra: 1 })).toThrow(
      expect.objectContaining({ code: 'DATASET_VALUE' }),
    );
    expect(() =>
      parseManifest({ mediaType: MANIFEST_MEDIA_TYPE, files: [{ ...e('x'), path: '../x' }] }),
    ).toThrow(expect.objectContaining({ code: 'PATH_REJECTED' }));
  });
});
