// Files `tsc` does not emit but the built package needs at run time, copied beside the compiled code.
import { cpSync } from 'node:fs';

cpSync('src/hash-worker.mjs', 'dist/src/hash-worker.mjs');
cpSync('state-machines', 'dist/state-machines', { recursive: true });
