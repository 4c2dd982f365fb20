import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  consistencyProof,
  hashLeaf,
  inclusionProof,
  memoryNodes,
  rootOf,
  verifyConsistencyProof,
  verifyInclusionProof,
} from '../../src/core/merkle.js';

const leavesOf = (n: number) =>
  Array.from({ length: n }, (_, i) => hashLeaf(new TextEncoder().encode(`leaf ${i}`)));
const ALL = leavesOf(300);

describe('Merkle proofs (property)', () => {
  it('every generated inclusion proof verifies, and fails for any other index', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 300 }), fc.nat(), fc.nat(), async (size, i, j) => {
        const index = i % size;
        const leaves = ALL.slice(0, size);
        const proof = await inclusionProof(index, size, memoryNodes(leaves));
        const root = rootOf(leaves);
        const leafHash = leaves[index] as Uint8Array;
        verifyInclusionProof({ leafHash, index: BigInt(index), treeSize: BigInt(size), proof, root });
        const other = j % size;
        if (other !== index) {
          expect(() =>
            verifyInclusionProof({ leafHash, index: BigInt(other), treeSize: BigInt(size), proof, root }),
          ).toThrow();
        }
      }),
      { numRuns: 200 },
    );
  });

  it('every generated consistency proof verifies, and a proof never links two different trees', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 300 }), fc.nat(), fc.nat(), async (size2, a, tamper) => {
        const size1 = 1 + (a % size2);
        const leaves = ALL.slice(0, size2);
        const proof = await consistencyProof(size1, size2, memoryNodes(leaves));
        const root1 = rootOf(leaves.slice(0, size1));
        const root2 = rootOf(leaves);
        verifyConsistencyProof({ size1: BigInt(size1), size2: BigInt(size2), proof, root1, root2 });
        // A tree whose old part differs in one leaf is not an extension of the first tree.
        const changed = [...leaves];
        changed[tamper % size1] = hashLeaf(new TextEncoder().encode('forged'));
        const forgedRoot2 = rootOf(changed);
        expect(() =>
          verifyConsistencyProof({
            size1: BigInt(size1),
            size2: BigInt(size2),
            proof,
            root1,
            root2: forgedRoot2,
          }),
        ).toThrow();
      }),
      { numRuns: 200 },
    );
  });
});
