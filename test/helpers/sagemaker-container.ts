/**
 * SageMaker's side of the training container contract, emulated on this machine (no Docker):
 * lay out an /opt/ml-like root from a CreateTrainingJob request, run the image's ENTRYPOINT + "train"
 * as read from its Dockerfile (image paths mapped back to the files the Dockerfile copies), and
 * pack model/ and output/data/ as SageMaker would. Used by the unit tests of the example image and
 * by the emulated-AWS end-to-end suite as its SageMaker training job.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { CreateTrainingJobRequest } from '@aws-sdk/client-sagemaker';
import { packDeterministic } from '../../src/tarball.js';

/** The example's training image. */
export const EXAMPLE_DOCKERFILE = resolve(
  import.meta.dirname,
  '../../examples/credit-scoring/image/Dockerfile',
);

export interface DockerfileContract {
  /** COPY instructions: build-context source → image destination. */
  copies: { src: string; dest: string }[];
  /** Exec-form ENTRYPOINT and CMD. */
  entrypoint: string[];
  cmd: string[];
}

/** Reads COPY, ENTRYPOINT and CMD of a Dockerfile; shell-form ENTRYPOINT/CMD are refused. */
export async function readDockerfile(path: string): Promise<DockerfileContract> {
  const text = (await readFile(path, 'utf8')).replace(/\\\n/g, ' ');
  const out: DockerfileContract = { copies: [], entrypoint: [], cmd: [] };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [instruction = '', ...rest] = line.split(/\s+/);
    const args = line.slice(instruction.length).trim();
    switch (instruction.toUpperCase()) {
      case 'COPY': {
        const parts = rest.filter((p) => !p.startsWith('--'));
        const dest = parts.pop();
        if (!dest || parts.length === 0) throw new Error(`${path}: cannot read "${line}"`);
        for (const src of parts) out.copies.push({ src, dest });
        break;
      }
      case 'ENTRYPOINT':
      case 'CMD': {
        let argv: unknown;
        try {
          argv = JSON.parse(args);
        } catch {
          throw new Error(`${path}: ${instruction} must be exec form (a JSON array): ${line}`);
        }
        if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string')) {
          throw new Error(`${path}: ${instruction} must be a JSON array of strings`);
        }
        if (instruction.toUpperCase() === 'CMD') out.cmd = argv;
        else out.entrypoint = argv;
        break;
      }
      default:
        break;
    }
  }
  return out;
}

/**
 * The command SageMaker runs, `docker run <image> train` (ENTRYPOINT followed by "train", which
 * replaces CMD), with each path the Dockerfile copied mapped back to its build-context file.
 */
export async function trainingCommand(dockerfile: string = EXAMPLE_DOCKERFILE): Promise<string[]> {
  const contract = await readDockerfile(dockerfile);
  if (contract.entrypoint.length === 0) throw new Error(`${dockerfile} has no exec-form ENTRYPOINT`);
  const context = dirname(dockerfile);
  return [...contract.entrypoint, 'train'].map((arg) => {
    const copy = contract.copies.find((c) => c.dest === arg);
    return copy ? join(context, copy.src) : arg;
  });
}

/** One object of a channel as SageMaker downloads it: its key relative to the channel's S3 prefix. */
export interface ChannelObject {
  key: string;
  body: Uint8Array;
}

/**
 * Lays out `root` as SageMaker lays out /opt/ml for a File-mode job (SageMaker Developer Guide,
 * "How Amazon SageMaker Provides Training Information"): input/config/{hyperparameters,
 * inputdataconfig,resourceconfig}.json, input/data/<channel>/<object>, empty model/ and output/data/.
 * `objectsUnder(s3Uri)` returns the objects under a channel's S3Prefix (the caller's S3 or store).
 */
export async function layOutContainerContract(
  root: string,
  request: CreateTrainingJobRequest,
  objectsUnder: (s3Uri: string) => Promise<ChannelObject[]>,
): Promise<void> {
  const config = join(root, 'input', 'config');
  for (const dir of [config, join(root, 'model'), join(root, 'output', 'data')]) {
    await mkdir(dir, { recursive: true });
  }
  const inputConfig: Record<string, unknown> = {};
  for (const channel of request.InputDataConfig ?? []) {
    const name = channel.ChannelName ?? '';
    const uri = channel.DataSource?.S3DataSource?.S3Uri ?? '';
    const dir = join(root, 'input', 'data', name);
    await mkdir(dir, { recursive: true });
    const prefixKey = uri.replace(/^s3:\/\/[^/]+\//, '');
    for (const object of await objectsUnder(uri)) {
      // An object whose key is the prefix itself lands under its last path segment.
      const rel =
        object.key === prefixKey
          ? (object.key.split('/').pop() ?? '')
          : object.key.slice(prefixKey.length).replace(/^\//, '');
      if (rel === '' || rel.split('/').includes('..'))
        throw new Error(`unsafe channel object key ${object.key}`);
      await mkdir(dirname(join(dir, rel)), { recursive: true });
      await writeFile(join(dir, rel), object.body);
    }
    inputConfig[name] = {
      TrainingInputMode: request.AlgorithmSpecification?.TrainingInputMode ?? 'File',
      S3DistributionType: channel.DataSource?.S3DataSource?.S3DataDistributionType ?? 'FullyReplicated',
      RecordWrapperType: 'None',
    };
  }
  await writeFile(join(config, 'hyperparameters.json'), JSON.stringify(request.HyperParameters ?? {}));
  await writeFile(join(config, 'inputdataconfig.json'), JSON.stringify(inputConfig));
  await writeFile(
    join(config, 'resourceconfig.json'),
    JSON.stringify({ current_host: 'algo-1', hosts: ['algo-1'], network_interface_name: 'eth0' }),
  );
}

export interface ContainerExit {
  exitCode: number | null;
  /** `<root>/output/failure`, when the container wrote one. */
  failure?: string;
  log: string;
}

/**
 * Runs the image's training command against `root` (passed as VERITRAIL_OPT_ML), with no SM_*
 * variables and no inherited credentials: only PATH, HOME and LANG, as a plain container has.
 */
export async function runTrainingContainer(
  root: string,
  options: { dockerfile?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<ContainerExit> {
  const [cmd = '', ...args] = await trainingCommand(options.dockerfile);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: root,
    LANG: 'C.UTF-8',
    VERITRAIL_OPT_ML: root,
    ...options.env,
  };
  const { exitCode, log } = await new Promise<{ exitCode: number | null; log: string }>((done, fail) => {
    const child = spawn(cmd === 'node' ? process.execPath : cmd, args, { cwd: root, env, stdio: 'pipe' });
    let text = '';
    child.stdout.on('data', (c: Buffer) => {
      text += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      text += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ exitCode: code, log: text });
    });
  });
  const failure = await readFile(join(root, 'output', 'failure'), 'utf8').catch(() => undefined);
  return { exitCode, log, ...(failure !== undefined ? { failure: failure.trim() } : {}) };
}

/** Packs model/ and output/data/ as SageMaker uploads them: model.tar.gz and output.tar.gz in `outDir`. */
export async function packTrainingOutput(
  root: string,
  outDir: string,
): Promise<{ model: string; output: string }> {
  await mkdir(outDir, { recursive: true });
  const model = join(outDir, 'model.tar.gz');
  const output = join(outDir, 'output.tar.gz');
  await packDeterministic(join(root, 'model'), model);
  await packDeterministic(join(root, 'output', 'data'), output);
  return { model, output };
}
