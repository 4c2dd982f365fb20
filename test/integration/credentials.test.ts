import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';

// Built at run time so no credential-looking literal sits in the repository.
const FAKE_KEY_ID = ['AS', 'IA', 'QX7MVB2KLP4T9ZRW'].join('');
const FAKE_SECRET = ['wJalrX', 'Utn9EMI7K', 'MDENGbPxRfiCYz', 'Q3d8v1T2kLmN'].join('');

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true })
    .map((f) => join(dir, String(f)))
    .filter((f) => statSync(f).isFile());
}

describe('invariant 7: no credential is ever written to code, config, logs or attestations', () => {
  let ws: Workspace;
  const saved = { ...process.env };
  beforeEach(() => {
    ws = makeWorkspace({ rows: 1500 });
    process.env.AWS_ACCESS_KEY_ID = FAKE_KEY_ID;
    process.env.AWS_SECRET_ACCESS_KEY = FAKE_SECRET;
  });
  afterEach(() => {
    process.env = { ...saved };
    ws.cleanup();
  });

  it('credentials in the operator environment reach neither the trainer nor anything in the state dir', async () => {
    // The trainer prints its whole environment into the job log before training.
    const def = JSON.parse(readFileSync(ws.pipeline, 'utf8')) as { trainer: { command: string[] } };
    def.trainer.command = [
      'node',
      '-e',
      "console.log(JSON.stringify(process.env)); await import('./trainer/train.mjs')",
    ];
    writeFileSync(ws.pipeline, JSON.stringify(def));
    const io = captureIo(ws.dir, process.env);
    const code = await main(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json'], io);
    expect(code, io.stderr.join('\n')).toBe(0);
    const files = filesUnder(ws.home);
    expect(files.some((f) => f.endsWith('training.log'))).toBe(true);
    const logText = readFileSync(files.find((f) => f.endsWith('training.log')) as string, 'utf8');
    expect(logText).toContain('SM_CHANNEL_TRAIN');
    for (const f of files) {
      const text = readFileSync(f).toString('latin1');
      expect(text.includes(FAKE_KEY_ID), f).toBe(false);
      expect(text.includes(FAKE_SECRET), f).toBe(false);
    }
    expect([...io.stdout, ...io.stderr].join('\n')).not.toContain(FAKE_SECRET);
  });

  it('a pipeline definition holding a credential is refused before anything runs, without echoing it', async () => {
    const def = JSON.parse(readFileSync(ws.pipeline, 'utf8')) as { hyperparameters: Record<string, string> };
    def.hyperparameters.aws_access_key_id = FAKE_KEY_ID;
    writeFileSync(ws.pipeline, JSON.stringify(def, null, 2));
    const io = captureIo(ws.dir);
    const code = await main(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home], io);
    expect(code).toBe(2);
    expect(io.stderr.join('\n')).toMatch(/looks like a credential at line \d+ \(aws-access-key-id\)/);
    expect(io.stderr.join('\n')).not.toContain(FAKE_KEY_ID);
  });
});
