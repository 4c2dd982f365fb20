// Files `tsc` does not emit but the built package needs at run time, copied beside the compiled code.
import { cpSync } from 'node:fs';

cpSync('src/hash-worker.mjs', 'dist/src/hash-worker.mjs');
// The bundle-hashing worker of `audit verify` and the module it shares with leaf-pool.ts (with its
// types, which dist/src/audit/verify/leaf-pool.d.ts refers to).
for (const f of ['tile-hash.mjs', 'tile-hash.d.mts', 'tile-hash-worker.mjs']) {
  cpSync(`src/audit/verify/${f}`, `dist/src/audit/verify/${f}`);
}
cpSync('state-machines', 'dist/state-machines', { recursive: true });
