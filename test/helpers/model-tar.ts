import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packDeterministic } from '../../src/tarball.js';

/**
 * A model.tar.gz the example's predict.mjs serves (features a, b: predicts 1 when a > b), packed in
 * `dir` (model/ and model.tar.gz). Returns the tarball's path.
 */
export async function packExampleModel(dir: string): Promise<string> {
  mkdirSync(join(dir, 'model'));
  writeFileSync(
    join(dir, 'model', 'model.json'),
    JSON.stringify({
      type: 'logistic-regression',
      features: ['a', 'b'],
      threshold: 0.5,
      mean: [0, 0],
      std: [1, 1],
      weights: [1, -1],
      bias: 0,
    }),
  );
  const out = join(dir, 'model.tar.gz');
  await packDeterministic(join(dir, 'model'), out);
  return out;
}

export const exampleModelBytes = async (dir: string): Promise<Buffer> =>
  readFileSync(await packExampleModel(dir));
