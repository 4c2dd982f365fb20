import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { putFileCas } from '../cas.js';
import { digestsEqual } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import type { ObjectStore, Trainer, TrainingJobResult, TrainingJobSpec } from '../ports.js';
import { packDeterministic } from '../tarball.js';

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
 */
export class ProcessTrainer implements Trainer {
  private readonly jobs = new Map<string, Promise<TrainingJobResult>>();

  constructor(
    private readonly jobsRoot: string,
    private readonly objects: ObjectStore,
  ) {}

  async start(spec: TrainingJobSpec): Promise<{ jobName: string }> {
    if (!this.jobs.has(spec.jobName)) {
      const job = this.run(spec);
      job.catch(() => undefined);
      this.jobs.set(spec.jobName, job);
    }
    return { jobName: spec.jobName };
  }

  async wait(jobName: string): Promise<TrainingJobResult> {
    const job = this.jobs.get(jobName);
    if (!job) throw new VeritrailError('TRAINING_FAILED', `no training job named ${jobName} was started`);
    return job;
  }

  private async run(spec: TrainingJobSpec): Promise<TrainingJobResult> {
    const dir = join(this.jobsRoot, spec.jobName);
    await rm(dir, { recursive: true, force: true });
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
    await writeFile(
      join(paths.config, 'hyperparameters.json'),
      `${JSON.stringify(spec.hyperparameters, null, 2)}\n`,
    );
    const [cmd, ...args] = spec.command ?? [];
    if (!cmd) throw new VeritrailError('TRAINING_FAILED', 'the pipeline names no trainer command');

    const log = createWriteStream(join(dir, 'training.log'));
    const exit = await new Promise<{ code: number | null; signal: string | null; error?: Error }>(
      (resolve) => {
        const child = spawn(cmd === 'node' ? process.execPath : cmd, args, {
          cwd: spec.workingDir ?? dir,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const timer = setTimeout(() => child.kill('SIGKILL'), spec.maxRuntimeSeconds * 1000);
        child.stdout.pipe(log, { end: false });
        child.stderr.pipe(log, { end: false });
        child.on('error', (error) => {
          clearTimeout(timer);
          resolve({ code: null, signal: null, error });
        });
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          resolve({ code, signal });
        });
      },
    );
    await new Promise<void>((r) => log.end(() => r()));
    if (exit.error || exit.code !== 0) {
      const failure = await readFile(join(paths.output, 'failure'), 'utf8').catch(() => '');
      const tail = (await readFile(join(dir, 'training.log'), 'utf8').catch(() => ''))
        .trim()
        .split('\n')
        .slice(-3)
        .join(' | ');
      const reason =
        failure.trim() ||
        (exit.error
          ? `cannot start ${cmd}: ${exit.error.message}`
          : `trainer exited with ${exit.signal ?? `code ${exit.code}`}: ${tail}`);
      return { jobName: spec.jobName, status: 'Failed', failureReason: reason.slice(0, 1024) };
    }
    await packDeterministic(paths.model, join(dir, 'model.tar.gz'));
    await packDeterministic(paths.data, join(dir, 'output.tar.gz'));
    const model = await putFileCas(this.objects, join(dir, 'model.tar.gz'));
    const output = await putFileCas(this.objects, join(dir, 'output.tar.gz'));
    return { jobName: spec.jobName, status: 'Completed', modelKey: model.key, outputKey: output.key };
  }
}
