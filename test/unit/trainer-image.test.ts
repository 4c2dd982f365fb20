import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SageMakerTrainer } from '../../src/aws/sagemaker-trainer.js';
import { putBytesCas, putJsonCas, readObject } from '../../src/cas.js';
import { digestOf } from '../../src/core/digest.js';
import { isVeritrailError } from '../../src/core/errors.js';
import type { CodeResult, ExecState } from '../../src/core/exec-state.js';
import {
  CODE_CHANNEL,
  type PipelineDefinition,
  parsePipelineDefinition,
  trainerCodeBundle,
} from '../../src/core/pipeline.js';
import { FsDatasetSource } from '../../src/local/fs-dataset-source.js';
import { FsObjectStore } from '../../src/local/fs-object-store.js';
import type { Runtime } from '../../src/runtime.js';
import { checkCode } from '../../src/steps/check-code.js';
import { trainingSpec } from '../../src/steps/train.js';
import {
  EXAMPLE_DOCKERFILE,
  layOutContainerContract,
  readDockerfile,
  runTrainingContainer,
  trainingCommand,
} from '../helpers/sagemaker-container.js';

const EXAMPLE = join(import.meta.dirname, '../../examples/credit-scoring');
const KEY = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';

let dir: string;
let objects: FsObjectStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'veritrail-image-'));
  objects = new FsObjectStore(join(dir, 'store'));
});
afterEach(() => {
  vi.unstubAllEnvs();
  rmSync(dir, { recursive: true, force: true });
});

function exampleDefinition(
  edit: (raw: { trainer: Record<string, unknown> }) => void = () => {},
): PipelineDefinition {
  const raw = JSON.parse(readFileSync(join(EXAMPLE, 'pipeline.json'), 'utf8'));
  edit(raw);
  return parsePipelineDefinition(raw);
}

/** The check-code bundle as the deployment lays it out: SST copyFiles of trainerCodeBundle. */
function bundleLikeTheStack(def: PipelineDefinition, from = EXAMPLE): string {
  const bundle = join(dir, 'bundle');
  for (const entry of trainerCodeBundle(def)) {
    cpSync(join(from, entry.from), join(bundle, entry.to), { recursive: true });
  }
  vi.stubEnv('VERITRAIL_CODE_DIR', join(bundle, 'code'));
  return bundle;
}

const awsRuntime = (): Runtime =>
  ({
    objects,
    mode: 'aws',
    datasets: {
      list: () => Promise.reject(new Error('CheckCode must not read code from the dataset source on AWS')),
    },
    now: () => new Date('2026-11-30T00:00:00Z'),
  }) as unknown as Runtime;

async function baseState(def: PipelineDefinition, base?: string): Promise<ExecState> {
  const stored = await putJsonCas(objects, def);
  return {
    runId: 'r-image-test',
    pipeline: { name: def.name, digest: stored.digest, ...(base ? { base } : {}) },
    dataset: { uri: 's3://landing/credit-scoring/a.csv', versionId: 'v1' },
    trigger: { type: 's3', idempotencyKey: 'k' },
  };
}

/** Processed channels as Preprocess writes them: numeric CSV with the features and the label. */
async function processedChannels(def: PipelineDefinition) {
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const csv = (n: number) => {
    const lines = [[...def.dataset.features, def.dataset.label.column].join(',')];
    for (let i = 0; i < n; i++) {
      const x = def.dataset.features.map(() => rand());
      lines.push([...x.map((v) => v.toFixed(4)), (x[0] ?? 0) > 0.5 ? '1' : '0'].join(','));
    }
    return new TextEncoder().encode(`${lines.join('\n')}\n`);
  };
  const train = csv(200);
  const validation = csv(50);
  const t = await putBytesCas(objects, train, digestOf(train));
  const v = await putBytesCas(objects, validation, digestOf(validation));
  const d = `sha256:${'3'.repeat(64)}` as const;
  return {
    digest: d,
    manifestKey: `sha256/${'3'.repeat(64)}`,
    train: { key: t.key, digest: t.digest, rows: 200, fileName: 'train.csv' },
    validation: { key: v.key, digest: v.digest, rows: 50, fileName: 'validation.csv' },
    test: {
      key: `sha256/${'6'.repeat(64)}`,
      digest: `sha256:${'6'.repeat(64)}` as const,
      rows: 5,
      fileName: 'test.csv',
    },
    testFeatures: { key: `sha256/${'6'.repeat(64)}`, digest: `sha256:${'6'.repeat(64)}` as const },
    testGroups: { key: `sha256/${'6'.repeat(64)}`, digest: `sha256:${'6'.repeat(64)}` as const },
    columns: [...def.dataset.features, def.dataset.label.column],
    transform: { digest: d, codeDigest: d },
  };
}

/** CheckCode on AWS, then the CreateTrainingJob request Train would send, laid out as SageMaker would. */
async function jobLaidOut(def: PipelineDefinition) {
  bundleLikeTheStack(def);
  const state = await baseState(def);
  const code = await checkCode(awsRuntime(), state);
  const withResults: ExecState = {
    ...state,
    results: { preprocess: await processedChannels(def), code: code.output },
  };
  const request = new SageMakerTrainer(new SageMakerClient({ region: 'eu-west-1' }), {
    roleArn: 'arn:aws:iam::111122223333:role/sm',
    artifactsBucket: 'artifacts',
    kmsKeyId: KEY,
  }).buildRequest(trainingSpec(withResults, def));
  const root = join(dir, 'opt-ml');
  await layOutContainerContract(root, request, async (uri) => {
    const key = uri.replace('s3://artifacts/', '');
    return [{ key, body: await readObject(objects, 'artifacts', key) }];
  });
  return { root, request, code: code.output };
}

describe('the example training image (plain SageMaker container contract)', () => {
  it('has an exec-form ENTRYPOINT run with "train", and copies files that exist', async () => {
    const contract = await readDockerfile(EXAMPLE_DOCKERFILE);
    expect(contract.entrypoint.length).toBeGreaterThan(0);
    expect(contract.cmd).toEqual(['train']);
    for (const c of contract.copies) expect(existsSync(join(EXAMPLE, 'image', c.src))).toBe(true);
    const argv = await trainingCommand();
    expect(argv.at(-1)).toBe('train');
    // Every image path in the command maps back to a file of the build context.
    expect(argv.some((a) => a.startsWith(join(EXAMPLE, 'image')))).toBe(true);
  });

  it('trains the example from /opt/ml alone: code channel unpacked, trainer.command run, model and predictions written', async () => {
    const { root, request } = await jobLaidOut(exampleDefinition());
    expect(request.InputDataConfig?.map((c) => c.ChannelName)).toEqual(['code', 'train', 'validation']);
    const exit = await runTrainingContainer(root);
    expect(exit.log).toContain('trained on 200 rows');
    expect(exit.exitCode).toBe(0);
    expect(exit.failure).toBeUndefined();
    const model = JSON.parse(readFileSync(join(root, 'model', 'model.json'), 'utf8'));
    expect(model.type).toBe('logistic-regression');
    const predictions = readFileSync(join(root, 'output', 'data', 'predictions.csv'), 'utf8')
      .trim()
      .split('\n');
    expect(predictions).toHaveLength(51);
  });

  it('serves the trained model for Batch Transform: the model carries the scanned code and answers /ping and /invocations', async () => {
    const { root, request } = await jobLaidOut(exampleDefinition());
    expect(JSON.parse(request.HyperParameters?.veritrail_predict ?? '[]')).toEqual([
      'node',
      'trainer/predict.mjs',
    ]);
    expect((await runTrainingContainer(root)).exitCode).toBe(0);
    // What model.tar.gz holds: the model, the code it was trained with, and the command that serves it.
    expect(existsSync(join(root, 'model', 'code', 'trainer', 'predict.mjs'))).toBe(true);
    const [cmd = '', ...args] = (await trainingCommand()).slice(0, -1);
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const child = spawn(cmd === 'node' ? process.execPath : cmd, [...args, 'serve'], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        VERITRAIL_OPT_ML: root,
        SAGEMAKER_BIND_TO_PORT: String(port),
      },
      stdio: 'ignore',
    });
    try {
      let ping: Response | undefined;
      for (let i = 0; i < 100 && ping === undefined; i++) {
        ping = await fetch(`http://127.0.0.1:${port}/ping`).catch(async () => {
          await new Promise((r) => setTimeout(r, 50));
          return undefined;
        });
      }
      expect(ping?.status).toBe(200);
      const channel = join(root, 'input', 'data', 'validation');
      const [file = ''] = readdirSync(channel);
      const features = readFileSync(join(channel, file), 'utf8');
      const answer = await fetch(`http://127.0.0.1:${port}/invocations`, {
        method: 'POST',
        headers: { 'content-type': 'text/csv' },
        body: features,
      });
      expect(answer.status).toBe(200);
      const lines = (await answer.text()).trim().split('\n');
      expect(lines[0]).toBe('score,prediction');
      expect(lines).toHaveLength(features.trim().split('\n').length);
    } finally {
      child.kill();
    }
  });

  describe('when a channel’s bytes differ from the recorded digest', () => {
    it.each(['train', 'code'])(
      'refuses to run (%s), exits non-zero and writes the reason to output/failure',
      async (channel) => {
        const { root } = await jobLaidOut(exampleDefinition());
        const folder = join(root, 'input', 'data', channel);
        const [file] = readdirSync(folder);
        writeFileSync(join(folder, file ?? ''), 'tampered\n');
        const exit = await runTrainingContainer(root);
        expect(exit.exitCode).not.toBe(0);
        expect(exit.failure).toMatch(new RegExp(`channel ${channel} digest mismatch`));
        expect(existsSync(join(root, 'model', 'model.json'))).toBe(false);
      },
    );
  });

  it('reports the trainer’s own failure reason and exit code when training fails', async () => {
    const { root } = await jobLaidOut(exampleDefinition());
    const hp = join(root, 'input', 'config', 'hyperparameters.json');
    const values = JSON.parse(readFileSync(hp, 'utf8'));
    values.veritrail_label = 'no_such_column';
    writeFileSync(hp, JSON.stringify(values));
    const exit = await runTrainingContainer(root);
    expect(exit.exitCode).toBe(2);
    expect(exit.failure).toMatch(/missing label or feature columns/);
  });

  it('fails with a reason when the job has no code channel', async () => {
    const { root } = await jobLaidOut(exampleDefinition());
    const config = join(root, 'input', 'config');
    const inputs = JSON.parse(readFileSync(join(config, 'inputdataconfig.json'), 'utf8'));
    delete inputs.code;
    writeFileSync(join(config, 'inputdataconfig.json'), JSON.stringify(inputs));
    const exit = await runTrainingContainer(root);
    expect(exit.exitCode).not.toBe(0);
    expect(exit.failure).toMatch(/code/);
  });
});

describe('the example trainer outside the image', () => {
  it('writes output/failure and exits non-zero when its config is missing (no SM_* variables)', async () => {
    const root = join(dir, 'empty-opt-ml');
    mkdirSync(root);
    const { spawnSync } = await import('node:child_process');
    const run = spawnSync(process.execPath, [join(EXAMPLE, 'trainer', 'train.mjs')], {
      env: { PATH: process.env.PATH ?? '', VERITRAIL_OPT_ML: root },
      encoding: 'utf8',
    });
    expect(run.status).not.toBe(0);
    expect(readFileSync(join(root, 'output', 'failure'), 'utf8')).toMatch(/hyperparameters\.json/);
  });
});

describe('CheckCode on AWS', () => {
  it('scans the bundled code, records the same digest as locally, and ships it as a pinned code channel', async () => {
    const def = exampleDefinition();
    bundleLikeTheStack(def);
    const onAws = await checkCode(awsRuntime(), await baseState(def));
    const local = await checkCode(
      { ...awsRuntime(), mode: 'local', datasets: new FsDatasetSource() } as Runtime,
      await baseState(def, pathToFileURL(join(EXAMPLE, '/')).href),
    );
    expect(onAws.output.digest).toBe(local.output.digest);
    expect(local.output.bundle).toBeUndefined();
    const bundle = onAws.output.bundle as NonNullable<CodeResult['bundle']>;
    expect(bundle.key).toBe(`sha256/${bundle.digest.slice('sha256:'.length)}`);
    expect(digestOf(await readObject(objects, 'artifacts', bundle.key))).toBe(bundle.digest);
    expect(onAws.digests).toMatchObject({
      trainingCode: local.output.digest,
      trainingCodeBundle: bundle.digest,
    });
  });

  it('refuses a hard-coded credential in the bundled code (CODE_SECRET_FOUND) and ships nothing', async () => {
    const def = exampleDefinition();
    const bundle = bundleLikeTheStack(def);
    writeFileSync(
      join(bundle, 'code', def.name, 'trainer', 'config.mjs'),
      "export const key = 'AKIAIOSFODNN7EXAMPLE';\nexport const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';\n",
    );
    const error = await checkCode(awsRuntime(), await baseState(def)).catch((e: unknown) => e);
    expect(isVeritrailError(error, 'CODE_SECRET_FOUND')).toBe(true);
  });

  it('applies the vulnerability report gate to the bundled report (CODE_VULNERABLE)', async () => {
    const source = join(dir, 'pipeline-src');
    cpSync(join(EXAMPLE, 'trainer'), join(source, 'trainer'), { recursive: true });
    writeFileSync(
      join(source, 'trivy.json'),
      JSON.stringify({
        SchemaVersion: 2,
        Results: [
          {
            Target: 'package-lock.json',
            Vulnerabilities: [
              { VulnerabilityID: 'CVE-2026-0001', PkgName: 'left-pad', Severity: 'CRITICAL' },
            ],
          },
        ],
      }),
    );
    const def = exampleDefinition((raw) => {
      raw.trainer.vulnerabilityReport = { path: 'trivy.json', failOn: 'HIGH' };
    });
    bundleLikeTheStack(def, source);
    const error = await checkCode(awsRuntime(), await baseState(def)).catch((e: unknown) => e);
    expect(isVeritrailError(error, 'CODE_VULNERABLE')).toBe(true);
  });

  it('names the missing bundle and what to do when the deployment did not bundle the code', async () => {
    const def = exampleDefinition();
    vi.stubEnv('VERITRAIL_CODE_DIR', join(dir, 'nothing-here'));
    const error = await checkCode(awsRuntime(), await baseState(def)).catch((e: unknown) => e);
    expect(isVeritrailError(error, 'PIPELINE_INVALID')).toBe(true);
    expect((error as Error).message).toMatch(/sst deploy/);
  });
});

describe('the code bundle entries for the deployment', () => {
  it('copies trainer.code (and the vulnerability report) under code/<pipeline>/ as laid out next to the definition', () => {
    const def = exampleDefinition((raw) => {
      raw.trainer.code = './trainer/';
      raw.trainer.vulnerabilityReport = { path: 'reports/trivy.json' };
    });
    expect(trainerCodeBundle(def)).toEqual([
      { from: 'trainer', to: 'code/credit-scoring/trainer' },
      { from: 'reports/trivy.json', to: 'code/credit-scoring/reports/trivy.json' },
    ]);
  });

  it('refuses code outside the definition’s folder (PIPELINE_INVALID)', () => {
    const def = exampleDefinition((raw) => {
      raw.trainer.code = '../shared/trainer';
    });
    expect(() => trainerCodeBundle(def)).toThrow(/trainer.code/);
  });

  it('is empty for a pipeline that does not train on SageMaker', () => {
    const def = exampleDefinition((raw) => {
      delete raw.trainer.aws;
    });
    expect(trainerCodeBundle(def)).toEqual([]);
  });
});

describe('the training job spec on AWS', () => {
  it('adds the code channel pinned by digest and tells the entrypoint the command', async () => {
    const def = exampleDefinition();
    const { request, code } = await jobLaidOut(def);
    const bundle = code.bundle as NonNullable<CodeResult['bundle']>;
    const channel = request.InputDataConfig?.find((c) => c.ChannelName === CODE_CHANNEL);
    expect(channel?.DataSource?.S3DataSource?.S3Uri).toBe(`s3://artifacts/${bundle.key}`);
    expect(JSON.parse(request.HyperParameters?.veritrail_channel_digests ?? '{}')).toMatchObject({
      code: bundle.digest,
    });
    expect(JSON.parse(request.HyperParameters?.veritrail_command ?? '[]')).toEqual(def.trainer.command);
  });
});
