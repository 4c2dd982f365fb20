import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract } from 'tar';
import { putFileCas } from '../cas.js';
import { type Digest, digestsEqual } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { redactText } from '../core/redact.js';
import type { ObjectStore, ScoringJobResult, ScoringJobSpec } from '../ports.js';
import { type Isolation, sandboxCommand } from './sandbox.js';

/** Predictions larger than this are refused: a predict command that floods stdout is not scoring. */
const MAX_PREDICTIONS_BYTES = 512 * 1024 * 1024;

/**
 * The inference contract, locally (docs/trainers.md): the model.tar.gz the Train step hashed is
 * unpacked read-only into SM_MODEL_DIR, the predict command of the trainer code runs in its own
 * sandboxed process with the held-out features on stdin (no labels, no protected attributes, no
 * state dir, no network where the sandbox allows) and writes its predictions to stdout. They are
 * stored content-addressed; Evaluate computes every metric from them against labels it kept.
 *
 * With `spec.shards` the predict command runs once per shard, one after the other (each shard a
 * complete CSV with the features header, verified against its digest as it is copied), each
 * shard's predictions stored content-addressed on their own; `maxRuntimeSeconds` bounds them all.
 */
export async function scoreInSandbox(
  spec: ScoringJobSpec,
  objects: ObjectStore,
  isolation: Isolation,
  groups: Set<number>,
): Promise<ScoringJobResult> {
  const [cmd, ...args] = spec.command ?? [];
  if (!cmd) {
    throw new VeritrailError(
      'SCORING_FAILED',
      'the pipeline names no trainer.predict command: add the inference contract (docs/trainers.md) so the control plane can score the model itself',
    );
  }
  if (spec.shards && spec.shards.length === 0) {
    throw new VeritrailError(
      'SCORING_FAILED',
      `scoring job ${spec.jobName} was given an empty list of shards`,
    );
  }
  const deadline = Date.now() + spec.maxRuntimeSeconds * 1000;
  const dir = await mkdtemp(join(tmpdir(), 'veritrail-score-'));
  try {
    const modelDir = join(dir, 'model');
    const inputDir = join(dir, 'input');
    await mkdir(modelDir);
    await mkdir(inputDir);
    await copyVerified(objects, spec.model, join(dir, 'model.tar.gz'), 'model.tar.gz');
    await extract({ file: join(dir, 'model.tar.gz'), cwd: modelDir, strict: true });
    await rm(join(dir, 'model.tar.gz'));
    await readOnly(modelDir);
    const features = join(inputDir, 'features.csv');
    const out = join(dir, 'predictions.csv');
    const inputs = spec.shards
      ? spec.shards.map((s, i) => ({
          source: { key: s.key, digest: s.digest },
          what: `shard ${i + 1} of ${spec.shards?.length} of the test features`,
        }))
      : [{ source: spec.input, what: 'the test features' }];
    const keys: string[] = [];
    for (const input of inputs) {
      await rm(features, { force: true });
      await rm(out, { force: true });
      await copyVerified(objects, input.source, features, input.what);
      await chmod(features, 0o444);
      await predictOnce(
        spec,
        { cmd, args, isolation, groups, dir, modelDir, inputDir, features, out },
        {
          deadline,
          what: spec.shards ? ` on ${input.what}` : '',
        },
      );
      keys.push((await putFileCas(objects, out)).key);
    }
    return {
      predictionsKey: keys[0] as string,
      ...(spec.shards ? { shardPredictionKeys: keys } : {}),
      isolation: {
        level: isolation.level,
        network: isolation.network,
        stateDirVisible: isolation.stateDirVisible,
        ...(isolation.note ? { note: isolation.note } : {}),
      },
    };
  } finally {
    await writable(dir).catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

interface PredictRun {
  cmd: string;
  args: string[];
  isolation: Isolation;
  groups: Set<number>;
  dir: string;
  modelDir: string;
  inputDir: string;
  /** The features file piped to stdin, and the file stdout goes to. */
  features: string;
  out: string;
}

/** One run of the predict command on one features file; SCORING_FAILED unless it wrote predictions. */
async function predictOnce(
  spec: ScoringJobSpec,
  { cmd, args, isolation, groups, dir, modelDir, inputDir, features, out }: PredictRun,
  { deadline, what }: { deadline: number; what: string },
): Promise<void> {
  const run = sandboxCommand(isolation.level, cmd === 'node' ? process.execPath : cmd, args, {
    readOnly: [
      modelDir,
      inputDir,
      ...(spec.codeDir ? [spec.codeDir] : spec.workingDir ? [spec.workingDir] : []),
    ],
    writable: [],
    cwd: spec.workingDir ?? dir,
  });
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: isolation.level === 'bubblewrap' ? '/tmp' : dir,
    LANG: 'C.UTF-8',
    SM_MODEL_DIR: modelDir,
    VERITRAIL_PREDICT: '1',
  };
  const result = await new Promise<{
    code: number | null;
    signal: string | null;
    error?: Error;
    why?: string;
    stderr: string;
  }>((resolve) => {
    const child = spawn(run.cmd, run.args, {
      cwd: isolation.level === 'bubblewrap' ? dir : (spec.workingDir ?? dir),
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const pgid = child.pid;
    if (pgid !== undefined) groups.add(pgid);
    let stderr = '';
    let why: string | undefined;
    let written = 0;
    const sink = createWriteStream(out);
    const kill = (reason: string) => {
      why ??= reason;
      if (pgid !== undefined) killGroup(pgid);
    };
    const timer = setTimeout(
      () => kill(`ran past ${spec.maxRuntimeSeconds} s`),
      Math.max(0, deadline - Date.now()),
    );
    child.stdout.on('data', (c: Buffer) => {
      written += c.length;
      if (written > MAX_PREDICTIONS_BYTES) kill(`wrote more than ${MAX_PREDICTIONS_BYTES} bytes`);
    });
    child.stdout.pipe(sink);
    child.stderr.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString('utf8')).slice(-4096);
    });
    createReadStream(features)
      .pipe(child.stdin)
      .on('error', () => undefined);
    child.stdin.on('error', () => undefined);
    let settled = false;
    const done = (r: { code: number | null; signal: string | null; error?: Error }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (pgid !== undefined) {
        killGroup(pgid);
        groups.delete(pgid);
      }
      const finish = () => resolve({ ...r, stderr, ...(why ? { why } : {}) });
      if (sink.writableFinished || r.error) finish();
      else sink.once('finish', finish).once('error', finish);
    };
    child.on('error', (error) => done({ code: null, signal: null, error }));
    child.on('close', (code, signal) => done({ code, signal }));
  });
  if (result.error || result.code !== 0 || result.why) {
    const tail = redactText(result.stderr.trim().split('\n').slice(-3).join(' | ')).slice(0, 512);
    throw new VeritrailError(
      'SCORING_FAILED',
      `the predict command (${spec.command?.join(' ')})${what} ${
        result.error
          ? `could not start: ${result.error.message}`
          : result.why
            ? result.why
            : `exited with ${result.signal ?? `code ${result.code}`}`
      }${tail ? `: ${tail}` : ''}; it must read feature rows on stdin and write a "prediction" column on stdout (docs/trainers.md)`,
    );
  }
  if ((await stat(out)).size === 0) {
    throw new VeritrailError(
      'SCORING_FAILED',
      `the predict command wrote nothing on stdout${what}; it must write a CSV with a "prediction" column, one row per input row (docs/trainers.md)`,
    );
  }
}

async function copyVerified(
  objects: ObjectStore,
  source: { key: string; digest: Digest },
  to: string,
  what: string,
): Promise<void> {
  const hash = createHash('sha256');
  await pipeline(
    await objects.open('artifacts', source.key),
    new Transform({
      transform(chunk, _enc, cb) {
        hash.update(chunk as Buffer);
        cb(null, chunk);
      },
    }),
    createWriteStream(to),
  );
  const actual = `sha256:${hash.digest('hex')}`;
  if (!digestsEqual(actual, source.digest)) {
    throw new VeritrailError(
      'DIGEST_MISMATCH',
      `${what} at ${source.key} hash to ${actual}, not the recorded ${source.digest}; refusing to score`,
    );
  }
}

async function readOnly(dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await readOnly(p);
    else await chmod(p, 0o444);
  }
  await chmod(dir, 0o555);
}

async function writable(dir: string): Promise<void> {
  await chmod(dir, 0o700);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) await writable(join(dir, e.name));
  }
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    /* already ended */
  }
}
