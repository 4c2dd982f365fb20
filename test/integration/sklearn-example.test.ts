/**
 * The second bundled example (examples/sklearn-credit): a Python scikit-learn trainer following
 * docs/trainers.md, inference contract included, run end to end by the local control plane.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { captureIo, EXAMPLE } from '../helpers/workspace.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SKLEARN = join(ROOT, 'examples', 'sklearn-credit');
const def = JSON.parse(readFileSync(join(SKLEARN, 'pipeline.json'), 'utf8')) as {
  trainer: { command: string[]; predict: string[] };
};
const python = def.trainer.command[0] ?? 'python3';
const probe = spawnSync(python, ['-c', 'import sklearn'], { encoding: 'utf8' });
const hasSklearn = probe.status === 0;
if (!hasSklearn) {
  console.warn(
    `skipping the scikit-learn example: "${python} -c 'import sklearn'" failed; install Debian's python3-sklearn`,
  );
}

describe.skipIf(!hasSklearn)('the scikit-learn example', () => {
  const dir = mkdtempSync(join(tmpdir(), 'veritrail-sklearn-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('trains, is scored by the control plane through predict.py, passes the gate and verifies', async () => {
    cpSync(SKLEARN, join(dir, 'ex'), { recursive: true });
    const home = join(dir, 'home');
    const io = captureIo(dir);
    const code = await main(
      [
        'run',
        join(EXAMPLE, 'applications.csv'),
        '--pipeline',
        join(dir, 'ex', 'pipeline.json'),
        '--home',
        home,
        '--json',
      ],
      io,
    );
    const out = JSON.parse(io.stdout[0] ?? '{}') as { status: string; runId: string; error?: unknown };
    expect(out.status, JSON.stringify(out.error)).toBe('SUCCEEDED');
    expect(code).toBe(0);
    const verify = captureIo(dir);
    expect(await main(['verify', out.runId, '--home', home, '--trust-state-keys'], verify)).toBe(0);
  });

  it('its channel helper refuses a channel whose bytes differ from the recorded digest, naming it', () => {
    const job = join(dir, 'job');
    const r = spawnSync(
      python,
      [
        '-c',
        [
          'import json, os, sys',
          `sys.path.insert(0, ${JSON.stringify(join(SKLEARN, 'trainer'))})`,
          'from veritrail_channels import verify_channels, ChannelError',
          `root = ${JSON.stringify(job)}`,
          "os.makedirs(root + '/input/data/train', exist_ok=True); os.makedirs(root + '/input/config', exist_ok=True)",
          "open(root + '/input/data/train/train.csv', 'w').write('a,b\\n1,2\\n')",
          "json.dump({'veritrail_channel_digests': json.dumps({'train': 'sha256:' + '0' * 64})}, open(root + '/input/config/hyperparameters.json', 'w'))",
          "os.environ['VERITRAIL_OPT_ML'] = root",
          'try:\n    verify_channels()\nexcept ChannelError as e:\n    print(e.channel, e)',
        ].join('\n'),
      ],
      { encoding: 'utf8' },
    );
    expect(r.stdout).toMatch(/^train channel train digest mismatch: recorded sha256:0{64}/);
  });
});
