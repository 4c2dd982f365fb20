import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { digestOf } from '../../src/core/digest.js';

const ROOT = join(import.meta.dirname, '..', '..');

describe('the one-file channel helpers of trainer-kit/', () => {
  it('ship unchanged in the examples that use them', () => {
    const same = (kit: string, copy: string) =>
      expect(readFileSync(join(ROOT, copy), 'utf8')).toBe(
        readFileSync(join(ROOT, 'trainer-kit', kit), 'utf8'),
      );
    same('veritrail-channels.mjs', 'examples/credit-scoring/trainer/veritrail-channels.mjs');
    same('veritrail_channels.py', 'examples/sklearn-credit/trainer/veritrail_channels.py');
  });

  describe('the Node helper', () => {
    let dir: string;
    afterEach(() => rmSync(dir, { recursive: true, force: true }));
    const stage = (bytes: string, recorded: string) => {
      dir = mkdtempSync(join(tmpdir(), 'veritrail-kit-'));
      mkdirSync(join(dir, 'input', 'data', 'train'), { recursive: true });
      mkdirSync(join(dir, 'input', 'config'), { recursive: true });
      writeFileSync(join(dir, 'input', 'data', 'train', 'train.csv'), bytes);
      writeFileSync(
        join(dir, 'input', 'config', 'hyperparameters.json'),
        JSON.stringify({ veritrail_channel_digests: JSON.stringify({ train: recorded, code: 'sha256:x' }) }),
      );
      return { VERITRAIL_OPT_ML: dir };
    };

    it('returns the channel file when its bytes hash to the recorded digest (code is skipped)', async () => {
      const { verifyChannels } = await import('../../trainer-kit/veritrail-channels.mjs');
      const env = stage('a\n1\n', digestOf(new TextEncoder().encode('a\n1\n')));
      expect(await verifyChannels(undefined, env)).toEqual({
        train: join(dir, 'input', 'data', 'train', 'train.csv'),
      });
    });

    it('throws a ChannelError naming the channel when they do not', async () => {
      const { verifyChannels } = await import('../../trainer-kit/veritrail-channels.mjs');
      const env = stage('a\n2\n', digestOf(new TextEncoder().encode('a\n1\n')));
      await expect(verifyChannels(undefined, env)).rejects.toMatchObject({
        name: 'ChannelError',
        channel: 'train',
        message: expect.stringMatching(/channel train digest mismatch/),
      });
    });
  });
});
