import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { putFileCas } from '../cas.js';
import { digestsEqual } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { redactText } from '../core/redact.js';
import type {
  ObjectStore,
  ScoringJobResult,
  ScoringJobSpec,
  Trainer,
  TrainingJobResult,
  TrainingJobSpec,
} from '../ports.js';
import { packDeterministic } from '../tarball.js';
import { chooseIsolation, type Isolation, sandboxCommand } from './sandbox.js';
import { scoreInSandbox } from './scoring.js';

/**
 * The embedded trainer: runs the pipeline's training command as a child process under the SageMaker
 * training container contract, in a job folder laid out like /opt/ml:
 *
 *   input/data/<channel>/<file>         SM_CHANNEL_<NAME>
 *   input/config/hyperparameters.json   SM_INPUT_CONFIG_DIR (also SM_HPS)
 *   model/                              SM_MODEL_DIR       → packed as model.tar.gz
 *   output/data/                        SM_OUTPUT_DATA_DIR → packed as output.tar.gz
 *   output/failure                      the failure reason, when the trainer writes one
 *
 * Channel bytes are copied out of the content-addressed store and checked against their recorded
 * digests on the way (invariant 2); the trainer checks them again itself before reading a row.
 *
 * The job folder is a temporary folder outside the state dir (only the redacted training.log is
 * kept under it). The trainer runs with a scrubbed environment and, where the machine offers one,
 * in a sandbox (src/local/sandbox.ts: bubblewrap, else unshare) that sees the channels read-only,
 * has no network and no view of the state dir or the parent's /proc. The channels are read-only
 * files in any case, and are re-hashed after the trainer exits: a changed, added or removed file
 * fails the job with CHANNEL_TAMPERED naming the channel (sealed inputs).
 */
export class ProcessTrainer implements Trainer {
  private readonly jobs = new Map<string, Promise<TrainingJobResult>>();
  /** Process group ids of trainers running now (each trainer leads its own group). */
  private readonly groups = new Set<number>();

  constructor(
    private readonly jobsRoot: string,
    private readonly objects: ObjectStore,
    /** The isolation level (probed once); tests may pass a weaker one. */
    private readonly isolation: Isolation = chooseIsolation(),
  ) {}

  /** The inference contract, locally: the predict command in the same sandbox (src/local/scoring.ts). */
  score(spec: ScoringJobSpec): Promise<ScoringJobResult> {
    return scoreInSandbox(spec, this.objects, this.isolation, this.groups);
  }

  async start(spec: TrainingJobSpec): Promise<{ jobName: string }> {
    if (!this.jobs.has(spec.jobName)) {
      // Whatever goes wrong here ends as a failed job, never as a rejected wait: the Train step
      // then closes FAILED with the reason like any other training failure.
      const job = this.run(spec).catch(
        (e: unknown): TrainingJobResult => ({
          jobName: spec.jobName,
          status: 'Failed',
          failureReason: `the local trainer could not run the job: ${(e as Error).message ?? String(e)}`,
        }),
      );
      this.jobs.set(spec.jobName, job);
    }
    return { jobName: spec.jobName };
  }

  /** Kills every running trainer's whole process group (the operator stopped the run). */
  killAll(): void {
    for (const pgid of this.groups) killGroup(pgid, 'SIGKILL');
  }

  async wait(jobName: string): Promise<TrainingJobResult> {
    const job = this.jobs.get(jobName);
    if (!job) throw new VeritrailError('TRAINING_FAILED', `no training job named ${jobName} was started`);
    return job;
  }

  /**
   * Runs the job, then removes what it staged and produced except the (redacted) job log: the
   * channels are copies of stored objects, the outputs are stored content-addressed, and what a
   * trainer writes (a failure file, its outputs) must not stay in the state dir unredacted.
   */
  private async run(spec: TrainingJobSpec): Promise<TrainingJobResult> {
    const logDir = join(this.jobsRoot, spec.jobName);
    await rm(logDir, { recursive: true, force: true });
    await mkdir(logDir, { recursive: true });
    // The job's working folder is outside the state dir: a trainer given its own folder learns
    // nothing about where the keys are.
    const dir = await mkdtemp(join(tmpdir(), 'veritrail-job-'));
    try {
      const result = await this.runIn(dir, logDir, spec);
      return { ...result, isolation: this.isolationRecord() };
    } finally {
      await chmod(join(dir, 'input'), 0o700).catch(() => undefined);
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  private isolationRecord(): NonNullable<TrainingJobResult['isolation']> {
    const i = this.isolation;
    return {
      level: i.level,
      network: i.network,
      stateDirVisible: i.stateDirVisible,
      ...(i.note ? { note: i.note } : {}),
    };
  }

  private async runIn(dir: string, logDir: string, spec: TrainingJobSpec): Promise<TrainingJobResult> {
    const paths = {
      config: join(dir, 'input', 'config'),
      model: join(dir, 'model'),
      output: join(dir, 'output'),
      data: join(dir, 'output', 'data'),
    };
    for (const p of Object.values(paths)) await mkdir(p, { recursive: true });
    const env: Record<string, string> = {
      // Only what a container would have: never the operator's credentials or other secrets.
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir,
      LANG: 'C.UTF-8',
      SM_MODEL_DIR: paths.model,
      SM_OUTPUT_DIR: paths.output,
      SM_OUTPUT_DATA_DIR: paths.data,
      SM_INPUT_DIR: join(dir, 'input'),
      SM_INPUT_CONFIG_DIR: paths.config,
      SM_CHANNELS: JSON.stringify(Object.keys(spec.channels).sort()),
      SM_HPS: JSON.stringify(spec.hyperparameters),
      SM_CURRENT_HOST: 'algo-1',
      SM_HOSTS: JSON.stringify(['algo-1']),
      TRAINING_JOB_NAME: spec.jobName,
    };
    for (const [name, ch] of Object.entries(spec.channels)) {
      const chDir = join(dir, 'input', 'data', name);
      await mkdir(chDir, { recursive: true });
      const hash = createHash('sha256');
      await pipeline(
        await this.objects.open('artifacts', ch.key),
        new Transform({
          transform(chunk, _enc, cb) {
            hash.update(chunk as Buffer);
            cb(null, chunk);
          },
        }),
        createWriteStream(join(chDir, ch.fileName)),
      );
      const actual = `sha256:${hash.digest('hex')}`;
      if (!digestsEqual(actual, ch.digest)) {
        return {
          jobName: spec.jobName,
          status: 'Failed',
          failureReason: `channel ${name} digest mismatch: recorded ${ch.digest}, stored bytes hash to ${actual}; refusing to train`,
        };
      }
      env[`SM_CHANNEL_${name.toUpperCase()}`] = chDir;
    }
    // Read-only where the OS allows: files 0444, folders 0555 (bubblewrap binds them read-only too).
    for (const name of Object.keys(spec.channels)) {
      await chmod(join(dir, 'input', 'data', name, spec.channels[name]?.fileName ?? ''), 0o444);
      await chmod(join(dir, 'input', 'data', name), 0o555);
    }
    await chmod(join(dir, 'input', 'data'), 0o555);
    await writeFile(
      join(paths.config, 'hyperparameters.json'),
      `${JSON.stringify(spec.hyperparameters, null, 2)}\n`,
    );
    const [cmd, ...args] = spec.command ?? [];
    if (!cmd) throw new VeritrailError('TRAINING_FAILED', 'the pipeline names no trainer command');

    const log = createWriteStream(join(logDir, 'training.log'));
    const run = sandboxCommand(this.isolation.level, cmd === 'node' ? process.execPath : cmd, args, {
      readOnly: [
        join(dir, 'input'),
        ...(spec.codeDir ? [spec.codeDir] : spec.workingDir ? [spec.workingDir] : []),
      ],
      writable: [paths.model, paths.output],
      cwd: spec.workingDir ?? dir,
    });
    const exit = await new Promise<{
      code: number | null;
      signal: string | null;
      error?: Error;
      timedOut?: boolean;
    }>((resolve) => {
      // Its own process group (detached), so that a limit or a cancel reaches every process the
      // trainer started (`sh -c "…"`, worker pools), not only the first one.
      const child = spawn(run.cmd, run.args, {
        cwd: spec.workingDir ?? dir,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      const pgid = child.pid;
      if (pgid !== undefined) this.groups.add(pgid);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        if (pgid !== undefined) killGroup(pgid, 'SIGKILL');
      }, spec.maxRuntimeSeconds * 1000);
      // The job log lives under the state dir: every line is redacted before it is written.
      child.stdout.pipe(redactLines()).pipe(log, { end: false });
      child.stderr.pipe(redactLines()).pipe(log, { end: false });
      const done = (r: { code: number | null; signal: string | null; error?: Error }) => {
        clearTimeout(timer);
        if (pgid !== undefined) {
          // Grandchildren left behind after the leader exited go too.
          killGroup(pgid, 'SIGKILL');
          this.groups.delete(pgid);
        }
        resolve({ ...r, ...(timedOut ? { timedOut } : {}) });
      };
      child.on('error', (error) => done({ code: null, signal: null, error }));
      // 'exit', not 'close': a grandchild holding the pipes open must not keep the job alive.
      child.on('exit', (code, signal) => done({ code, signal }));
    });
    await new Promise<void>((r) => log.end(() => r()));
    if (exit.timedOut) {
      return {
        jobName: spec.jobName,
        status: 'Failed',
        errorCode: 'TRAINING_TIMEOUT',
        failureReason: `the trainer ran past the pipeline's maxRuntimeSeconds (${spec.maxRuntimeSeconds} s); every process it started was killed. Raise trainer.maxRuntimeSeconds or make training faster`,
      };
    }
    if (exit.error || exit.code !== 0) {
      const failure = await readFile(join(paths.output, 'failure'), 'utf8').catch(() => '');
      const tail = (await readFile(join(logDir, 'training.log'), 'utf8').catch(() => ''))
        .trim()
        .split('\n')
        .slice(-3)
        .join(' | ');
      const reason =
        failure.trim() ||
        (exit.error
          ? `cannot start ${cmd}: ${exit.error.message}`
          : `trainer exited with ${exit.signal ?? `code ${exit.code}`}: ${tail}`);
      return { jobName: spec.jobName, status: 'Failed', failureReason: redactText(reason).slice(0, 1024) };
    }
    // Sealed inputs: what the trainer was given is still byte for byte what was recorded.
    const tampered = await changedChannel(dir, spec);
    if (tampered) {
      return {
        jobName: spec.jobName,
        status: 'Failed',
        errorCode: 'CHANNEL_TAMPERED',
        failureReason: tampered,
      };
    }
    const missing = await missingOutput(paths.model, paths.data);
    if (missing !== undefined) {
      return {
        jobName: spec.jobName,
        status: 'Failed',
        errorCode: 'TRAINING_OUTPUT_MISSING',
        failureReason: missing,
      };
    }
    await packDeterministic(paths.model, join(dir, 'model.tar.gz'));
    await packDeterministic(paths.data, join(dir, 'output.tar.gz'));
    const model = await putFileCas(this.objects, join(dir, 'model.tar.gz'));
    const output = await putFileCas(this.objects, join(dir, 'output.tar.gz'));
    return {
      jobName: spec.jobName,
      status: 'Completed',
      modelKey: model.key,
      outputKey: output.key,
      channelsSealed: true,
    };
  }
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    /* the group has already ended */
  }
}

/**
 * The first staged channel whose files changed while the trainer ran (a file rewritten, added or
 * removed), said as a failure reason naming it; undefined when every channel is as staged.
 */
async function changedChannel(dir: string, spec: TrainingJobSpec): Promise<string | undefined> {
  for (const [name, ch] of Object.entries(spec.channels)) {
    const chDir = join(dir, 'input', 'data', name);
    const files: string[] = await readdir(chDir).catch(() => []);
    if (files.length !== 1 || files[0] !== ch.fileName) {
      return `channel ${name} was changed while the trainer ran: it held [${files.join(', ')}] instead of ${ch.fileName} alone; the staged inputs are sealed, a trainer must not write to them`;
    }
    const hash = createHash('sha256');
    try {
      for await (const chunk of createReadStream(join(chDir, ch.fileName))) hash.update(chunk as Buffer);
    } catch (e) {
      return `channel ${name} could not be re-read after training (${(e as Error).message}); the staged inputs are sealed`;
    }
    const actual = `sha256:${hash.digest('hex')}`;
    if (!digestsEqual(actual, ch.digest)) {
      return `channel ${name} was changed while the trainer ran: recorded ${ch.digest}, now ${actual}; the model was not trained on the recorded data`;
    }
  }
  return undefined;
}

/** What the trainer was required to write and did not, said so that its author can fix it. */
async function missingOutput(modelDir: string, dataDir: string): Promise<string | undefined> {
  const model: string[] = await readdir(modelDir).catch(() => []);
  if (model.length === 0)
    return `the trainer exited 0 but wrote no model: SM_MODEL_DIR (${modelDir}) is empty; write the model files there`;
  const data: string[] = await readdir(dataDir).catch(() => []);
  if (!data.includes('predictions.csv'))
    return `the trainer exited 0 but wrote no predictions: ${join(dataDir, 'predictions.csv')} is missing; write the held-out predictions to SM_OUTPUT_DATA_DIR/predictions.csv`;
  return undefined;
}

/** A stream of text redacted a line at a time (a partial last line is redacted at the end). */
function redactLines(): Transform {
  let rest = '';
  return new Transform({
    transform(chunk, _enc, cb) {
      const text = rest + (chunk as Buffer).toString('utf8');
      const cut = text.lastIndexOf('\n');
      if (cut < 0) {
        rest = text;
        // A very long line without a newline is written in pieces rather than held forever.
        if (rest.length > 64 * 1024) {
          const out = redactText(rest);
          rest = '';
          cb(null, out);
        } else cb();
        return;
      }
      rest = text.slice(cut + 1);
      cb(null, redactText(text.slice(0, cut + 1)));
    },
    flush(cb) {
      cb(null, rest ? redactText(rest) : undefined);
    },
  });
}
