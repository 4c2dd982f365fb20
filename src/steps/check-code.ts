import { isProbablyText, type SecretFinding, scanForSecrets } from '../core/code-scan.js';
import { type Digest, digestFromHex, digestOf } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { buildManifest, manifestDigest } from '../core/manifest.js';
import type { Runtime } from '../runtime.js';
import { hashStream, loadPipeline, putJsonCas } from './io.js';
import type { CodeResult, ExecState } from './state.js';
import type { StepOutcome } from './step.js';

const MAX_SCAN_BYTES = 2 * 1024 * 1024;

/**
 * CheckCode, before any training: the training code is recorded by digest (a manifest of its
 * files), scanned for hard-coded credentials (refused with file and line, never echoing the secret),
 * and a SageMaker image must be pinned by digest (the definition schema already refuses tags).
 */
export async function checkCode(rt: Runtime, state: ExecState): Promise<StepOutcome<CodeResult>> {
  const def = await loadPipeline(rt.objects, state.pipeline.digest);
  const image = def.trainer.aws?.image;
  if (image !== undefined && !/@sha256:[0-9a-f]{64}$/.test(image)) {
    throw new VeritrailError(
      'CODE_IMAGE_UNPINNED',
      `training image ${image} is not pinned by digest; use <repo>@sha256:<digest>`,
    );
  }
  if (!state.pipeline.base) {
    // On AWS the code ships inside the image: the image digest is the code digest.
    if (!image) throw new VeritrailError('PIPELINE_INVALID', 'a pipeline run on AWS needs trainer.aws.image');
    const digest = `sha256:${image.split('@sha256:')[1]}` as Digest;
    return {
      output: { digest, files: 0, image, command: def.trainer.command },
      digests: { trainingCode: digest },
      facts: { codeDigest: digest },
    };
  }
  const codeUri = new URL(
    def.trainer.code.endsWith('/') ? def.trainer.code : `${def.trainer.code}/`,
    state.pipeline.base,
  ).href.replace(/\/$/, '');
  const files = await rt.datasets.list(codeUri);
  const findings: SecretFinding[] = [];
  const entries: { path: string; size: number; digest: Digest }[] = [];
  for (const f of files) {
    if (f.size <= MAX_SCAN_BYTES) {
      const bytes = new Uint8Array(await streamToBuffer(await rt.datasets.open(f)));
      entries.push({ path: f.path, size: bytes.length, digest: digestOf(bytes) });
      if (isProbablyText(bytes)) findings.push(...scanForSecrets(f.path, new TextDecoder().decode(bytes)));
    } else {
      const { hex, size } = await hashStream(await rt.datasets.open(f));
      entries.push({ path: f.path, size, digest: digestFromHex(hex) });
    }
  }
  const manifest = buildManifest(entries);
  const digest = manifestDigest(manifest);
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
  return {
    output: { digest, files: entries.length, ...(image ? { image } : {}), command: def.trainer.command },
    digests: { trainingCode: digest },
    facts: { codeDigest: digest, codeChecks: 'passed' },
    detail: { files: entries.length, secrets: 0 },
  };
}

async function streamToBuffer(s: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
