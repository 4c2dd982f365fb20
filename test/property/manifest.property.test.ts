import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Digest, digestFromHex } from '../../src/core/digest.js';
import { buildManifest, type ManifestEntry, manifestDigest } from '../../src/core/manifest.js';

const segment = fc
  .string({ unit: 'grapheme', minLength: 1, maxLength: 8 })
  .filter(
    (s) =>
      !s.includes('/') &&
      !s.includes('\\') &&
      !s.includes('\0') &&
      s !== '.' &&
      s !== '..' &&
      !/^[A-Za-z]:/.test(s),
  );
const path = fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => parts.join('/'));
const hex = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));
const entry = fc.record({ path, size: fc.nat(), digest: hex.map((h) => digestFromHex(h)) });

/** Entries with distinct paths, none of which is a parent of another. */
const entries = fc.uniqueArray(entry, { minLength: 1, maxLength: 12, selector: (e) => e.path }).map((es) => {
  const paths = new Set(es.map((e) => e.path));
  return es.filter(
    (e) => !e.path.split('/').some((_, i, parts) => i > 0 && paths.has(parts.slice(0, i).join('/'))),
  );
});

function flipHexDigit(d: Digest, i: number): Digest {
  const h = d.slice(7);
  const pos = i % 64;
  const c = h[pos] === '0' ? '1' : '0';
  return digestFromHex(h.slice(0, pos) + c + h.slice(pos + 1));
}

describe('the dataset digest', () => {
  it('does not depend on the order files are enumerated in', () => {
    fc.assert(
      fc.property(
        entries.chain((es) =>
          fc.tuple(fc.constant(es), fc.shuffledSubarray(es, { minLength: es.length, maxLength: es.length })),
        ),
        ([es, shuffled]) => {
          expect(manifestDigest(buildManifest(shuffled))).toBe(manifestDigest(buildManifest(es)));
        },
      ),
    );
  });

  it('changes when any one file digest changes in any one hex digit', () => {
    fc.assert(
      fc.property(entries, fc.nat(), fc.nat(), (es, which, digit) => {
        const i = which % es.length;
        const changed = es.map(
          (e, j): ManifestEntry => (j === i ? { ...e, digest: flipHexDigit(e.digest, digit) } : e),
        );
        expect(manifestDigest(buildManifest(changed))).not.toBe(manifestDigest(buildManifest(es)));
      }),
    );
  });

  it('changes when any one size changes', () => {
    fc.assert(
      fc.property(entries, fc.nat(), fc.integer({ min: 1, max: 255 }), (es, which, delta) => {
        const i = which % es.length;
        const changed = es.map((e, j): ManifestEntry => (j === i ? { ...e, size: e.size + delta } : e));
        expect(manifestDigest(buildManifest(changed))).not.toBe(manifestDigest(buildManifest(es)));
      }),
    );
  });

  it('changes when one byte of any one path changes', () => {
    fc.assert(
      fc.property(entries, fc.nat(), fc.nat(), (es, which, at) => {
        const i = which % es.length;
        const target = es[i] as ManifestEntry;
        const bytes = Buffer.from(target.path, 'utf8');
        const pos = at % bytes.length;
        // Replace one byte by an ASCII letter different from it: still a valid path.
        bytes[pos] = bytes[pos] === 0x78 ? 0x79 : 0x78;
        const newPath = bytes.toString('utf8');
        fc.pre(!newPath.includes('\uFFFD') && !es.some((e) => e.path === newPath));
        let changed: ManifestEntry[];
        try {
          changed = es.map((e, j) => (j === i ? { ...e, path: newPath } : e));
          buildManifest(changed);
        } catch {
          fc.pre(false);
          return;
        }
        expect(manifestDigest(buildManifest(changed))).not.toBe(manifestDigest(buildManifest(es)));
      }),
    );
  });
});
