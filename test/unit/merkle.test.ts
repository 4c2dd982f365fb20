/**
 * RFC 6962 test vectors: the 8-leaf reference tree used by certificate-transparency and
 * transparency-dev/merkle (proof/verify_test.go), typed in from the published values.
 */
import { describe, expect, it } from 'vitest';
import {
  consistencyProof,
  EMPTY_ROOT,
  hashChildren,
  hashLeaf,
  inclusionProof,
  memoryNodes,
  type ProofErrorCode,
  rootOf,
  TreeBuilder,
  verifyConsistencyProof,
  verifyInclusionProof,
} from '../../src/core/merkle.js';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const LEAVES = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map(hex);

/** Root of the tree of the first i+1 leaves. */
const ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];

/** Inclusion proofs: 1-based leaf number, tree size, proof. */
const INCLUSION: { leaf: number; size: number; proof: string[] }[] = [
  { leaf: 1, size: 1, proof: [] },
  {
    leaf: 1,
    size: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    leaf: 6,
    size: 8,
    proof: [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  { leaf: 3, size: 3, proof: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'] },
  {
    leaf: 2,
    size: 5,
    proof: [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  },
];

const CONSISTENCY: { size1: number; size2: number; proof: string[] }[] = [
  { size1: 1, size2: 1, proof: [] },
  {
    size1: 1,
    size2: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    size1: 6,
    size2: 8,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  {
    size1: 2,
    size2: 5,
    proof: [
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  },
  {
    size1: 6,
    size2: 7,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
];

const SOME_HASH = hex('abacaba000000000000000000000000000000000000000000060061e00123456');
const leafHashes = LEAVES.map(hashLeaf);
const root = (size: number) => hex(ROOTS[size - 1] as string);

function codeOf(f: () => void): ProofErrorCode | 'NO_ERROR' | 'OTHER_ERROR' {
  try {
    f();
    return 'NO_ERROR';
  } catch (e) {
    if (e instanceof Error && e.name === 'ProofError' && 'code' in e) return e.code as ProofErrorCode;
    return 'OTHER_ERROR';
  }
}

const flip = (h: Uint8Array, mask: number) => {
  const c = new Uint8Array(h);
  c[0] = (c[0] as number) ^ mask;
  return c;
};

describe('RFC 6962 hashing', () => {
  it('hashes the empty tree as SHA-256 of the empty string', () => {
    expect(toHex(EMPTY_ROOT)).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(toHex(rootOf([]))).toBe(toHex(EMPTY_ROOT));
  });

  it('prefixes leaves with 0x00 and nodes with 0x01 (leaf 0 of the reference tree)', () => {
    expect(toHex(hashLeaf(new Uint8Array(0)))).toBe(ROOTS[0]);
    expect(toHex(hashChildren(leafHashes[0] as Uint8Array, leafHashes[1] as Uint8Array))).toBe(ROOTS[1]);
  });

  it('computes the published root of every prefix of the 8-leaf tree', () => {
    const b = new TreeBuilder();
    LEAVES.forEach((_, i) => {
      b.append(leafHashes[i] as Uint8Array);
      expect(toHex(b.root())).toBe(ROOTS[i]);
      expect(toHex(rootOf(leafHashes.slice(0, i + 1)))).toBe(ROOTS[i]);
    });
  });
});

describe('inclusion proofs', () => {
  for (const v of INCLUSION) {
    describe(`for leaf ${v.leaf - 1} in a tree of ${v.size}`, () => {
      const proof = v.proof.map(hex);
      const good = {
        leafHash: leafHashes[v.leaf - 1] as Uint8Array,
        index: BigInt(v.leaf - 1),
        treeSize: BigInt(v.size),
        proof,
        root: root(v.size),
      };

      it('generates the published proof', async () => {
        const made = await inclusionProof(v.leaf - 1, v.size, memoryNodes(leafHashes.slice(0, v.size)));
        expect(made.map(toHex)).toEqual(v.proof);
      });

      it('verifies the published proof', () => {
        expect(codeOf(() => verifyInclusionProof(good))).toBe('NO_ERROR');
      });

      const probes: [string, Partial<typeof good>][] = [
        ['the index is one less', { index: good.index - 1n }],
        ['the index is one more', { index: good.index + 1n }],
        ['the index has bit 1 flipped', { index: good.index ^ 2n }],
        ['the tree size is doubled', { treeSize: good.treeSize * 2n }],
        ['the tree size is halved', { treeSize: good.treeSize / 2n }],
        ['the leaf is wrong', { leafHash: SOME_HASH }],
        ['the root is the empty root', { root: EMPTY_ROOT }],
        ['the root is some other hash', { root: SOME_HASH }],
        ['a root is appended to the proof', { proof: [...proof, good.root] }],
        ['a root is prepended to the proof', { proof: [good.root, ...proof] }],
        ['an empty hash is appended', { proof: [...proof, new Uint8Array(0)] }],
        ['an empty hash is prepended', { proof: [new Uint8Array(0), ...proof] }],
        ...proof.map((_, i): [string, Partial<typeof good>] => [
          `proof[${i}] has one bit flipped`,
          { proof: proof.map((h, j) => (i === j ? flip(h, 8) : h)) },
        ]),
        ...(proof.length > 0
          ? [['the proof is truncated', { proof: proof.slice(0, -1) }] as [string, Partial<typeof good>]]
          : []),
        ...(proof.length > 1
          ? [
              ['a hash is inserted', { proof: [proof[0] as Uint8Array, SOME_HASH, ...proof.slice(1)] }] as [
                string,
                Partial<typeof good>,
              ],
            ]
          : []),
      ];
      for (const [what, change] of probes) {
        it(`rejects the proof when ${what}`, () => {
          const code = codeOf(() => verifyInclusionProof({ ...good, ...change }));
          expect(code).not.toBe('NO_ERROR');
          expect(code).not.toBe('OTHER_ERROR');
        });
      }
    });
  }

  describe('when the index is out of range', () => {
    it('fails with INCLUSION_INDEX_OUT_OF_RANGE', () => {
      for (const [index, size] of [
        [0n, 0n],
        [1n, 0n],
        [2n, 1n],
      ] as const) {
        expect(
          codeOf(() =>
            verifyInclusionProof({ leafHash: SOME_HASH, index, treeSize: size, proof: [], root: EMPTY_ROOT }),
          ),
        ).toBe('INCLUSION_INDEX_OUT_OF_RANGE');
      }
    });
  });

  describe('when the proof is truncated or too long', () => {
    const v = INCLUSION[1] as (typeof INCLUSION)[number];
    const base = { leafHash: leafHashes[0] as Uint8Array, index: 0n, treeSize: 8n, root: root(8) };
    it('fails with INCLUSION_PROOF_WRONG_SIZE', () => {
      expect(codeOf(() => verifyInclusionProof({ ...base, proof: v.proof.slice(0, 2).map(hex) }))).toBe(
        'INCLUSION_PROOF_WRONG_SIZE',
      );
      expect(codeOf(() => verifyInclusionProof({ ...base, proof: [...v.proof.map(hex), SOME_HASH] }))).toBe(
        'INCLUSION_PROOF_WRONG_SIZE',
      );
    });
  });

  describe('when the root does not match', () => {
    it('fails with ROOT_MISMATCH', () => {
      const v = INCLUSION[2] as (typeof INCLUSION)[number];
      expect(
        codeOf(() =>
          verifyInclusionProof({
            leafHash: leafHashes[5] as Uint8Array,
            index: 5n,
            treeSize: 8n,
            proof: v.proof.map(hex),
            root: root(7),
          }),
        ),
      ).toBe('ROOT_MISMATCH');
    });
  });

  describe('when the input is malformed', () => {
    const junk: unknown[] = [
      null,
      42,
      {},
      { leafHash: 'abc', index: 0n, treeSize: 1n, proof: [], root: EMPTY_ROOT },
      { leafHash: SOME_HASH, index: -1n, treeSize: 1n, proof: [], root: EMPTY_ROOT },
      { leafHash: SOME_HASH, index: 0n, treeSize: 1.5, proof: [], root: EMPTY_ROOT },
      { leafHash: SOME_HASH, index: 0n, treeSize: 1n, proof: 'x', root: EMPTY_ROOT },
      { leafHash: SOME_HASH, index: 0n, treeSize: 2n, proof: [null], root: EMPTY_ROOT },
      { leafHash: SOME_HASH, index: 0n, treeSize: 1n, proof: [], root: new Uint8Array(31) },
      new Proxy(
        {},
        {
          get() {
            throw new Error('hostile getter');
          },
        },
      ),
    ];
    junk.forEach((input, i) => {
      it(`fails with PROOF_MALFORMED and nothing else (case ${i})`, () => {
        expect(codeOf(() => verifyInclusionProof(input as Parameters<typeof verifyInclusionProof>[0]))).toBe(
          'PROOF_MALFORMED',
        );
      });
    });
  });
});

describe('consistency proofs', () => {
  for (const v of CONSISTENCY) {
    describe(`from size ${v.size1} to size ${v.size2}`, () => {
      const proof = v.proof.map(hex);
      const good = {
        size1: BigInt(v.size1),
        size2: BigInt(v.size2),
        proof,
        root1: root(v.size1),
        root2: root(v.size2),
      };

      it('generates the published proof', async () => {
        const made = await consistencyProof(v.size1, v.size2, memoryNodes(leafHashes.slice(0, v.size2)));
        expect(made.map(toHex)).toEqual(v.proof);
      });

      it('verifies the published proof', () => {
        expect(codeOf(() => verifyConsistencyProof(good))).toBe('NO_ERROR');
      });

      if (proof.length === 0) return;
      const probes: [string, Partial<typeof good>][] = [
        ['size1 is one less', { size1: good.size1 - 1n }],
        ['size1 is one more', { size1: good.size1 + 1n }],
        ['size1 has bit 1 flipped', { size1: good.size1 ^ 2n }],
        ['size2 is doubled', { size2: good.size2 * 2n }],
        ['size2 is halved', { size2: good.size2 / 2n }],
        ['root1 is wrong', { root1: SOME_HASH }],
        ['root2 is wrong', { root2: SOME_HASH }],
        ['the roots are swapped', { root1: good.root2, root2: good.root1 }],
        ['the proof is empty', { proof: [] }],
        ['an empty hash is appended', { proof: [...proof, new Uint8Array(0)] }],
        ['root1 is appended', { proof: [...proof, good.root1] }],
        ['root2 is appended', { proof: [...proof, good.root2] }],
        ['an empty hash is prepended', { proof: [new Uint8Array(0), ...proof] }],
        ['root1 is prepended', { proof: [good.root1, ...proof] }],
        ['root2 is prepended', { proof: [good.root2, ...proof] }],
        ['proof[0] is repeated', { proof: [proof[0] as Uint8Array, ...proof] }],
        ['the proof is truncated', { proof: proof.slice(0, -1) }],
        ...proof.map((_, i): [string, Partial<typeof good>] => [
          `proof[${i}] has one bit flipped`,
          { proof: proof.map((h, j) => (i === j ? flip(h, 16) : h)) },
        ]),
      ];
      for (const [what, change] of probes) {
        it(`rejects the proof when ${what}`, () => {
          const code = codeOf(() => verifyConsistencyProof({ ...good, ...change }));
          expect(code).not.toBe('NO_ERROR');
          expect(code).not.toBe('OTHER_ERROR');
        });
      }
    });
  }

  describe('at the edges (sizes that are always or never consistent)', () => {
    const r1 = SOME_HASH;
    const r2 = flip(SOME_HASH, 1);
    const cases: [bigint, bigint, Uint8Array, Uint8Array, Uint8Array[], ProofErrorCode | 'NO_ERROR'][] = [
      [0n, 0n, r1, r2, [], 'ROOT_MISMATCH'],
      [1n, 1n, r1, r2, [], 'ROOT_MISMATCH'],
      [0n, 0n, r1, r1, [], 'NO_ERROR'],
      [0n, 1n, r1, r2, [], 'NO_ERROR'],
      [1n, 1n, r2, r2, [], 'NO_ERROR'],
      [1n, 0n, r1, r2, [], 'CONSISTENCY_SIZES_DECREASING'],
      [2n, 1n, r1, r2, [], 'CONSISTENCY_SIZES_DECREASING'],
      [1n, 2n, r1, r2, [], 'CONSISTENCY_PROOF_WRONG_SIZE'],
      [0n, 0n, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], 'CONSISTENCY_PROOF_WRONG_SIZE'],
      [0n, 1n, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], 'CONSISTENCY_PROOF_WRONG_SIZE'],
      [1n, 1n, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], 'CONSISTENCY_PROOF_WRONG_SIZE'],
    ];
    for (const [size1, size2, root1, root2, proof, want] of cases) {
      it(`${size1} → ${size2} with ${proof.length} hashes gives ${want}`, () => {
        expect(codeOf(() => verifyConsistencyProof({ size1, size2, proof, root1, root2 }))).toBe(want);
      });
    }
  });

  describe('when the older root is wrong', () => {
    it('fails with CONSISTENCY_OLD_ROOT_MISMATCH', () => {
      const v = CONSISTENCY[2] as (typeof CONSISTENCY)[number];
      expect(
        codeOf(() =>
          verifyConsistencyProof({
            size1: 6n,
            size2: 8n,
            proof: v.proof.map(hex),
            root1: root(5),
            root2: root(8),
          }),
        ),
      ).toBe('CONSISTENCY_OLD_ROOT_MISMATCH');
    });
  });

  describe('when the input is malformed', () => {
    it('fails with PROOF_MALFORMED', () => {
      expect(
        codeOf(() =>
          verifyConsistencyProof(undefined as unknown as Parameters<typeof verifyConsistencyProof>[0]),
        ),
      ).toBe('PROOF_MALFORMED');
      expect(
        codeOf(() =>
          verifyConsistencyProof({
            size1: 1n,
            size2: 2n,
            proof: [SOME_HASH],
            root1: SOME_HASH,
            root2: 'x' as unknown as Uint8Array,
          }),
        ),
      ).toBe('PROOF_MALFORMED');
    });
  });
});
