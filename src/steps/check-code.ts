import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { hashStream, loadPipeline, putJsonCas } from '../cas.js';
import { isProbablyText, type SecretFinding, scanForSecrets } from '../core/code-scan.js';
import { type Digest, digestFromHex, digestOf } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { buildManifest, manifestDigest } from '../core/manifest.js';
import type { PipelineDefinition } from '../core/pipeline.js';
import { failingFindings, parseVulnReport } from '../core/vuln-report.js';
import type { Runtime } from '../runtime.js';
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
  const vuln = await checkVulnerabilities(def, state.pipeline.base);
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
    digests: { trainingCode: digest, ...(vuln ? { vulnerabilityReport: vuln.digest } : {}) },
    facts: { codeDigest: digest, codeChecks: 'passed' },
    detail: {
      files: entries.length,
      secrets: 0,
      ...(vuln ? { vulnerabilities: vuln.findings, failOn: vuln.failOn } : {}),
    },
  };
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
