import { createReadStream, type Dirent } from 'node:fs';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tar from 'tar';
import { hashStream, loadPipeline, putBytesCas, putJsonCas } from '../cas.js';
import { isProbablyText, type SecretFinding, scanForSecrets } from '../core/code-scan.js';
import { type Digest, digestFromHex, digestOf } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import type { CodeResult, ExecState } from '../core/exec-state.js';
import { isImagePinned, unpinnedImage } from '../core/image.js';
import { buildManifest, type Manifest, type ManifestEntry, manifestDigest } from '../core/manifest.js';
import {
  BUNDLED_CODE_DIR,
  CODE_BUNDLE_FILE,
  CODE_CHANNEL,
  type PipelineDefinition,
} from '../core/pipeline.js';
import { failingFindings, parseVulnReport } from '../core/vuln-report.js';
import type { DatasetFile, DatasetSource } from '../ports.js';
import type { Runtime } from '../runtime.js';
import type { StepOutcome } from './step.js';
import { assertConfinedToCode, trainerEnvironment } from './trainer-env.js';

const MAX_SCAN_BYTES = 2 * 1024 * 1024;

/**
 * Where the deployment bundled this pipeline's training code (stacks: SST copyFiles of
 * `trainerCodeBundle`): `<bundle root>/code/<pipeline>/`, the bundle root being LAMBDA_TASK_ROOT on
 * Lambda. VERITRAIL_CODE_DIR overrides `<bundle root>/code` (tests, the emulated-AWS suite).
 */
function bundledCodeBase(pipeline: string, env: Record<string, string | undefined> = process.env): string {
  const dir = env.VERITRAIL_CODE_DIR ?? join(env.LAMBDA_TASK_ROOT ?? process.cwd(), BUNDLED_CODE_DIR);
  return pathToFileURL(join(dir, pipeline, '/')).href;
}

/**
 * CheckCode, before any training: the training code is recorded by digest (a manifest of its
 * files), scanned for hard-coded credentials (refused with file and line, never echoing the secret),
 * checked against the vulnerability report gate, and a SageMaker image must be pinned by digest
 * (the definition schema already refuses tags).
 *
 * Locally the code is the folder next to the definition. On AWS it is the same folder as the
 * deployment bundled it into this function: scanned the same way, then packed as one
 * content-addressed tar.gz that the Train step passes to the job as the `code` input channel,
 * pinned by digest. The image is a plain runtime; the code digest and the image digest are
 * recorded separately (SLSA resolvedDependencies training-code and training-image).
 */
export async function checkCode(rt: Runtime, state: ExecState): Promise<StepOutcome<CodeResult>> {
  const def = await loadPipeline(rt.objects, state.pipeline.digest);
  const image = def.trainer.aws?.image;
  if (image !== undefined && !isImagePinned(image)) throw unpinnedImage('training image', image);
  const onAws = state.pipeline.base === undefined;
  if (onAws && !image) {
    throw new VeritrailError(
      'PIPELINE_INVALID',
      `pipeline ${def.name} runs on AWS but has no trainer.aws.image; add a trainer.aws block (docs/trainers.md) and deploy again`,
    );
  }
  // Locally: the commands may run only files inside trainer.code (so its digest covers them), and
  // the interpreter they run with is recorded. On AWS the image digest is the environment.
  const local = state.pipeline.base?.startsWith('file:') === true ? state.pipeline.base : undefined;
  if (local !== undefined) assertConfinedToCode(def, local);
  const environment = local !== undefined ? trainerEnvironment(def.trainer.command) : undefined;
  const base = state.pipeline.base ?? bundledCodeBase(def.name);
  const findings: SecretFinding[] = [];
  const { entries, manifest, digest } = await hashTrainingCode(
    def,
    state.pipeline.base,
    rt.datasets,
    (path, bytes) => {
      if (isProbablyText(bytes)) findings.push(...scanForSecrets(path, new TextDecoder().decode(bytes)));
    },
  );
  const vuln = await checkVulnerabilities(def, base);
  await putJsonCas(rt.objects, manifest);
  if (findings.length > 0) {
    const where = findings
      .slice(0, 10)
      .map((f) => `${f.file}:${f.line} (${f.kind})`)
      .join(', ');
    throw new VeritrailError(
      'CODE_SECRET_FOUND',
      `training code holds ${findings.length} hard-coded credential(s) at ${where}; remove them and read credentials from the environment or a secrets manager`,
      { details: { findings: findings.map(({ file, line, kind }) => ({ file, line, kind })) } },
    );
  }
  // Only code that passed every check is shipped to the job.
  const bundle = onAws
    ? await storeCodeBundle(rt, fileURLToPath(base), codeFolder(def.trainer.code), entries)
    : undefined;
  return {
    output: {
      digest,
      files: entries.length,
      ...(image ? { image } : {}),
      command: def.trainer.command,
      ...(environment ? { environment } : {}),
      ...(bundle ? { bundle } : {}),
    },
    digests: {
      trainingCode: digest,
      ...(bundle ? { trainingCodeBundle: bundle.digest } : {}),
      ...(vuln ? { vulnerabilityReport: vuln.digest } : {}),
      ...(environment ? { trainerEnvironment: environment.digest } : {}),
    },
    facts: {
      codeDigest: digest,
      codeChecks: 'passed',
      ...(environment ? { environmentDigest: environment.digest } : {}),
    },
    detail: {
      files: entries.length,
      secrets: 0,
      delivery: bundle ? `sagemaker input channel ${CODE_CHANNEL}` : 'local folder',
      ...(vuln ? { vulnerabilities: vuln.findings, failOn: vuln.failOn } : {}),
    },
  };
}

/** `trainer.code` as the tar path prefix: plain segments, no `./` or trailing `/`. */
function codeFolder(code: string): string {
  return code
    .split('/')
    .filter((s) => s !== '' && s !== '.')
    .join('/');
}

/**
 * Packs the scanned files as `<trainer.code>/<path>` in a gzip'd tar (sorted names, mtime 0, no
 * owner names: the same files give the same bytes), so the entrypoint can run `trainer.command` in
 * the unpacked folder exactly as the local trainer runs it next to the definition; stored under
 * its content address.
 */
async function storeCodeBundle(
  rt: Runtime,
  root: string,
  folder: string,
  entries: readonly { path: string }[],
): Promise<{ key: string; digest: Digest; fileName: string }> {
  const names = entries.map((e) => (folder === '' ? e.path : `${folder}/${e.path}`)).sort();
  const pack = tar.c(
    { cwd: root, gzip: { level: 9 }, portable: true, mtime: new Date(0), noDirRecurse: true },
    names,
  ) as unknown as AsyncIterable<unknown>;
  const bytes = new Uint8Array(await streamToBuffer(pack));
  const stored = await putBytesCas(rt.objects, bytes, digestOf(bytes));
  return { key: stored.key, digest: stored.digest, fileName: CODE_BUNDLE_FILE };
}

/**
 * The training code of a definition, hashed as CheckCode records it: every file under
 * `trainer.code` where trainingCodeSource finds it, its size and sha256, and the digest of their
 * manifest (the training-code digest). `scan` sees the bytes of every file of at most
 * MAX_SCAN_BYTES (CheckCode's secret scan); larger files are streamed. The start service's retrain
 * decision (src/app/start/retrain.ts) calls this very function, so the digest it compares with the
 * last run's is the one CheckCode records (test/unit/start-service.test.ts).
 */
export async function hashTrainingCode(
  def: PipelineDefinition,
  base: string | undefined,
  datasets: DatasetSource,
  scan?: (path: string, bytes: Uint8Array) => void,
): Promise<{ entries: ManifestEntry[]; manifest: Manifest; digest: Digest }> {
  const { source, uri } = trainingCodeSource(def, base, datasets);
  const entries: ManifestEntry[] = [];
  for (const f of await source.list(uri)) {
    if (f.size <= MAX_SCAN_BYTES) {
      const bytes = new Uint8Array(await streamToBuffer(await source.open(f)));
      entries.push({ path: f.path, size: bytes.length, digest: digestOf(bytes) });
      scan?.(f.path, bytes);
    } else {
      const { hex, size } = await hashStream(await source.open(f));
      entries.push({ path: f.path, size, digest: digestFromHex(hex) });
    }
  }
  const manifest = buildManifest(entries);
  return { entries, manifest, digest: manifestDigest(manifest) };
}

/**
 * Where the training code of a definition is read from: locally the `trainer.code` folder next to
 * the definition (`base`), on AWS (no base) the copy the deployment bundled into the function.
 */
function trainingCodeSource(
  def: PipelineDefinition,
  base: string | undefined,
  datasets: DatasetSource,
  env: Record<string, string | undefined> = process.env,
): { source: DatasetSource; uri: string } {
  const root = base ?? bundledCodeBase(def.name, env);
  const uri = new URL(
    def.trainer.code.endsWith('/') ? def.trainer.code : `${def.trainer.code}/`,
    root,
  ).href.replace(/\/$/, '');
  return { source: base === undefined ? new BundledFiles(def.name) : datasets, uri };
}

/**
 * The training code as bundled with the function: regular files under a folder, sorted by path.
 * Symlinks and special files are refused, as for datasets: the bytes shipped are the bytes hashed.
 */
class BundledFiles implements DatasetSource {
  constructor(private readonly pipeline: string) {}

  async list(uri: string): Promise<DatasetFile[]> {
    const root = fileURLToPath(uri);
    let dirents: Dirent[];
    try {
      dirents = await readdir(root, { recursive: true, withFileTypes: true });
    } catch (e) {
      throw new VeritrailError(
        'PIPELINE_INVALID',
        `the training code of pipeline ${this.pipeline} is not in this function's bundle (${root}): deploy again (npx sst deploy) so the stack bundles trainer.code into check-code`,
        { cause: e },
      );
    }
    const out: DatasetFile[] = [];
    for (const d of dirents) {
      if (d.isDirectory()) continue;
      const abs = join(d.parentPath, d.name);
      const path = relative(root, abs).split(sep).join('/');
      if (!d.isFile()) {
        throw new VeritrailError(
          'PATH_REJECTED',
          `training code ${path} is not a regular file (symlink or special file); replace it with the file itself`,
        );
      }
      out.push({ uri: pathToFileURL(abs).href, path, size: (await lstat(abs)).size });
    }
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  async open(file: DatasetFile): Promise<Readable> {
    return createReadStream(fileURLToPath(file.uri));
  }
}

async function streamToBuffer(s: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The optional vulnerability report gate: any finding at or above `failOn` refuses the code. */
async function checkVulnerabilities(
  def: PipelineDefinition,
  base: string | undefined,
): Promise<{ digest: Digest; findings: number; failOn: string } | undefined> {
  const report = def.trainer.vulnerabilityReport;
  if (!report) return undefined;
  if (!base)
    throw new VeritrailError(
      'PIPELINE_INVALID',
      'a vulnerability report path needs the pipeline base location',
    );
  const path = fileURLToPath(new URL(report.path, base));
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new VeritrailError(
      'CODE_VULNERABLE',
      `vulnerability report ${path} cannot be read: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const findings = parseVulnReport(bytes.toString('utf8'), path);
  const failing = failingFindings(findings, report.failOn);
  if (failing.length > 0) {
    const list = failing
      .slice(0, 5)
      .map((f) => `${f.id} (${f.severity}${f.package ? `, ${f.package}` : ''})`)
      .join(', ');
    throw new VeritrailError(
      'CODE_VULNERABLE',
      `vulnerability report ${report.path} has ${failing.length} finding(s) at or above ${report.failOn}: ${list}; upgrade the affected packages or rebuild the image`,
    );
  }
  return { digest: digestOf(bytes), findings: findings.length, failOn: report.failOn };
}
