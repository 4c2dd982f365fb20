import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { escapeControls, redactText, redactValue } from '../../src/core/redact.js';
import { LocalControlPlane } from '../../src/local/control-plane.js';
import { toFileUri } from '../../src/local/fs-dataset-source.js';
import { openLocalRuntime } from '../../src/local/runtime.js';
import { loadPipelineFile, runOnce } from '../../src/local/start-run.js';
import type { RunRecord } from '../../src/ports.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';

// Built at run time so no credential-looking literal sits in the repository.
const KEY_ID = ['AK', 'IA', 'ZQ4M7B2KLP4T9XRW'].join('');
const SECRET = ['q8JalrX', 'Utn9EMI7K', 'MDENGbPxRfiCYz', 'Q3d8v1T2kL'].join('');
const GH_TOKEN = ['gh', 'p_', 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8'].join('');

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true })
    .map((f) => join(dir, String(f)))
    .filter((f) => statSync(f).isFile());
}

/** Every byte under `dir`, as latin1 (so any byte sequence is searchable). */
function leaks(dir: string, needles: string[]): string[] {
  const found: string[] = [];
  for (const f of filesUnder(dir)) {
    const text = readFileSync(f).toString('latin1');
    for (const n of needles) if (text.includes(n)) found.push(`${f} holds ${n.slice(0, 4)}…`);
  }
  return found;
}

describe('redaction of free text (src/core/redact.ts)', () => {
  it('replaces a key id, a secret assignment and a token with markers naming their kind', () => {
    const out = redactText(`failed: key ${KEY_ID} aws_secret_access_key=${SECRET} and ${GH_TOKEN}.`);
    expect(out).not.toContain(KEY_ID);
    expect(out).not.toContain(SECRET);
    expect(out).not.toContain(GH_TOKEN);
    expect(out).toContain('[REDACTED:aws-access-key-id]');
    expect(out).toContain('[REDACTED:aws-secret-access-key]');
    expect(out).toContain('[REDACTED:github-token]');
    expect(out.startsWith('failed: key ')).toBe(true);
  });

  it('finds a key spelled with JSON \\u escapes', () => {
    const escaped = `{"note":"\\u0041${KEY_ID.slice(1)}"}`;
    const out = redactText(escaped);
    expect(out).toContain('[REDACTED:aws-access-key-id]');
    expect(out).not.toContain(KEY_ID.slice(1));
  });

  it('escapes terminal control characters and keeps newlines and tabs', () => {
    expect(escapeControls('a\u001b[31mred\u0007\tb\nc')).toBe('a\\x1b[31mred\\x07\tb\nc');
  });

  it('is not switched off by the scanner allow-marker', () => {
    expect(redactText(`${KEY_ID} // veritrail:allow-secret`)).not.toContain(KEY_ID);
  });

  it('redacts a private key block across lines', () => {
    const pem = [
      '-----BEGIN',
      'PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7\n-----END PRIVATE',
      'KEY-----',
    ].join(' ');
    const out = redactText(`got ${pem} done`);
    expect(out).not.toContain('MIIBVQ');
    expect(out).toContain('[REDACTED:private-key]');
    expect(out).toContain('done');
  });

  it('redacts keys and values of nested objects, and returns the same object when clean', () => {
    const clean = { a: 1, b: ['x', { c: 'plain text' }] };
    expect(redactValue(clean)).toBe(clean);
    const dirty = redactValue({ groups: { [KEY_ID]: { n: 3 } }, list: [`k=${KEY_ID}`] });
    expect(JSON.stringify(dirty)).not.toContain(KEY_ID);
  });
});

describe('invariant 7: a credential written through each path never reaches the state dir', () => {
  let ws: Workspace;
  beforeEach(() => {
    ws = makeWorkspace({ rows: 300 });
  });
  afterEach(() => ws.cleanup());

  it("a failing trainer's last log lines: the run fails with the reason, redacted in the run store, audit log, lineage and job log", async () => {
    // The trainer assembles the credentials at run time: neither its code nor the definition holds them.
    const parts = (s: string) => JSON.stringify([s.slice(0, 2), s.slice(2, 4), s.slice(4)]);
    writeFileSync(
      join(ws.dir, 'trainer', 'leak.mjs'),
      [
        `const id = ${parts(KEY_ID)}.join('');`,
        `const secret = ${parts(SECRET)}.join('');`,
        `const token = ${parts(GH_TOKEN)}.join('');`,
        "console.log('connecting with ' + id);",
        "console.error('aws_secret_' + 'access_key=' + secret);",
        "console.error('token ' + token + ' \u001b[31mred');",
        'process.exit(3);',
      ].join('\n'),
    );
    const def = JSON.parse(readFileSync(ws.pipeline, 'utf8')) as { trainer: { command: string[] } };
    def.trainer.command = ['node', 'trainer/leak.mjs'];
    writeFileSync(ws.pipeline, JSON.stringify(def));
    const io = captureIo(ws.dir);
    const code = await main(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json'], io);
    expect(code, io.stderr.join('\n')).toBe(1);
    const summary = JSON.parse(io.stdout.join('')) as { error: { code: string; message: string } };
    expect(summary.error.code).toBe('TRAINING_FAILED');
    expect(summary.error.message).toContain('[REDACTED:github-token]');
    expect(summary.error.message).toContain('\\x1b[31mred');
    expect(leaks(ws.home, [KEY_ID, SECRET, GH_TOKEN, '\u001b[31m'])).toEqual([]);
    // The job log is kept, redacted.
    const log = filesUnder(ws.home).find((f) => f.endsWith('training.log')) as string;
    expect(readFileSync(log, 'utf8')).toContain('[REDACTED:aws-access-key-id]');
  });

  it('error messages that echo a cell value: a credential in a bad cell is redacted wherever the failure is recorded', async () => {
    const lines = readFileSync(ws.dataset, 'utf8').split('\n');
    const cells = (lines[5] as string).split(',');
    cells[3] = KEY_ID; // income: not a number either; Preprocess must not echo it
    lines[5] = cells.join(',');
    writeFileSync(ws.dataset, lines.join('\n'));
    const bytes = readFileSync(ws.dataset);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as const;
    const pipeline = await loadPipelineFile(ws.pipeline, ws.dir);
    const rt = await openLocalRuntime(ws.home);
    try {
      // runOnce directly: the CLI's pre-run check would refuse this dataset before any run exists.
      const { execution } = await runOnce(rt, pipeline, { uri: toFileUri(ws.dataset, ws.dir), digest });
      expect(execution?.status).toBe('FAILED');
      expect(execution?.error?.code).toBe('DATASET_VALUE');
      const run = await rt.runs.get(execution?.runId as string);
      // Preprocess refuses a credential-looking cell before validating it, naming line and kind
      // only; had a message echoed the value, the run store would have redacted it.
      expect(run?.error?.message).toMatch(/:6: a cell looks like a credential \(aws-access-key-id\)/);
      expect(run?.error?.message).not.toContain(KEY_ID);
    } finally {
      await rt.close();
    }
    expect(leaks(ws.home, [KEY_ID])).toEqual([]);
  });

  it('a key written as a JSON \\u escape in the definition is refused before anything is written', async () => {
    const text = readFileSync(ws.pipeline, 'utf8').replace(
      '"threshold": "0.5"',
      `"threshold": "0.5", "note": "\\u0041${KEY_ID.slice(1)}"`,
    );
    writeFileSync(ws.pipeline, text);
    const io = captureIo(ws.dir);
    const code = await main(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home], io);
    expect(code, io.stderr.join('\n')).toBe(2);
    expect(io.stderr.join('\n')).toMatch(
      /looks like a credential \(aws-access-key-id at \$\.hyperparameters\.note\)/,
    );
    expect(io.stderr.join('\n')).not.toContain(KEY_ID.slice(1));
    expect(leaks(ws.home, [KEY_ID, KEY_ID.slice(1)])).toEqual([]);
  });

  it('a key in a dataset landed through serve (no pre-run check): Preprocess fails the run without echoing it', async () => {
    const lines = readFileSync(ws.dataset, 'utf8').split('\n');
    const cells = (lines[9] as string).split(',');
    cells[1] = KEY_ID; // a protected column: its values would become keys of the fairness report
    lines[9] = cells.join(',');
    const rt = await openLocalRuntime(ws.home);
    const landing = join(ws.dir, 'landing');
    const plane = new LocalControlPlane({
      rt,
      pipelines: [await loadPipelineFile(ws.pipeline, ws.dir)],
      landingDir: landing,
      pollMs: 25,
      concurrency: 1,
      log: () => {},
      schedules: false,
    });
    await plane.start();
    try {
      writeFileSync(join(landing, 'credit-scoring', 'landed.csv'), lines.join('\n'));
      let failed: RunRecord | undefined;
      for (let i = 0; i < 600 && !failed; i++) {
        failed = (await rt.runs.list()).find((r) => r.status === 'FAILED');
        if (!failed) await new Promise((r) => setTimeout(r, 100));
      }
      expect(failed?.error?.code).toBe('DATASET_VALUE');
      expect(failed?.steps.find((st) => st.name === 'Preprocess')?.status).toBe('FAILED');
      expect(failed?.error?.message).toMatch(/a cell looks like a credential \(aws-access-key-id\)/);
      await plane.idle();
    } finally {
      await plane.stop();
      await rt.close();
    }
    // The landed file itself holds it (the user's own file, outside the state dir).
    expect(leaks(ws.home, [KEY_ID])).toEqual([]);
  }, 90_000);

  it('a key used as a group value is refused before a run starts, without echoing it', async () => {
    const lines = readFileSync(ws.dataset, 'utf8').split('\n');
    const cells = (lines[7] as string).split(',');
    cells[1] = KEY_ID; // sex: a protected column, whose values become keys of the fairness report
    lines[7] = cells.join(',');
    writeFileSync(ws.dataset, lines.join('\n'));
    const io = captureIo(ws.dir);
    const code = await main(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home], io);
    expect(code).toBe(2);
    expect(io.stderr.join('\n')).toMatch(/a cell looks like a credential \(aws-access-key-id\)/);
    expect(io.stderr.join('\n')).not.toContain(KEY_ID);
    expect(leaks(ws.home, [KEY_ID])).toEqual([]);
  });
});
