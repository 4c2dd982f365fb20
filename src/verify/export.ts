import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Digest, digestOf, hexOf } from '../core/digest.js';
import { canonicalBytes } from '../core/jcs.js';
import type { RunRecord } from '../ports.js';
import { firstBroken, VerifyError, type VerifyReport } from './codes.js';
import { BUNDLE_SLOTS, type Evidence, type TrustedKeys } from './run.js';
import { VERIFY_SH } from './verify-sh.js';

/**
 * Writes an evidence folder an auditor can check without veritrail: the exact stored bytes of every
 * bundle, manifest, fairness report and gate decision; both public keys; the run's audit entries
 * with their inclusion proofs and the signed checkpoint; SHA256SUMS; VERIFY.md (by hand, with
 * openssl) and verify.sh (the same, scripted). `out` must be absent or empty: evidence is never
 * merged with other files. Returns the relative paths written.
 */
export interface KitExtras {
  /** The run's signed report statement (Sigstore bundle bytes) and its HTML rendering. */
  report?: { bundle: Uint8Array; html?: string };
  /** Writes model.tar.gz at `dest` (a new file) and returns the sha256 of what it wrote. */
  model?: (dest: string) => Promise<Digest>;
  /** The run has a model but the export leaves it out (`--without-model`): said plainly. */
  withoutModel?: { digest: string };
}

export async function writeEvidenceFolder(
  out: string,
  evidence: Evidence,
  keys: TrustedKeys,
  report: VerifyReport,
  extras: KitExtras = {},
): Promise<string[]> {
  const existing = await readdir(out).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw new VerifyError('EXPORT_TARGET', `cannot use ${out} as the evidence folder: ${e.message}`, {
      cause: e,
    });
  });
  if (existing.length > 0) {
    throw new VerifyError('EXPORT_TARGET', `${out} is not empty; export into a new folder`);
  }
  const files = new Map<string, Uint8Array | string>();
  const text = (s: string) => new TextEncoder().encode(s);
  const json = (v: unknown) => text(`${JSON.stringify(v, null, 2)}\n`);

  // The keys that verified (the first trusted ones when none did): verify.sh checks with these.
  files.set('signing.pub.pem', (evidence.signingKey ?? keys.signing[0])?.pem ?? '');
  files.set('audit.pub.pem', (evidence.auditKey ?? keys.audit[0])?.pem ?? '');
  if (extras.report) {
    files.set('report.sigstore.json', extras.report.bundle);
    if (extras.report.html !== undefined) files.set('report.html', extras.report.html);
  }
  if (extras.withoutModel) {
    files.set(
      'MODEL-NOT-INCLUDED.txt',
      `This folder was exported with --without-model: model.tar.gz (${extras.withoutModel.digest}) is not in it,\nso verify.sh does NOT check the model. Get it with: veritrail model get ${evidence.run.runId} --out <dir>\n`,
    );
  }
  for (const { slot, file } of BUNDLE_SLOTS) {
    const b = evidence.bundles[slot];
    if (b !== undefined) files.set(`${file}.sigstore.json`, b);
  }
  if (evidence.rawManifest) files.set('manifests/raw.manifest.json', evidence.rawManifest);
  if (evidence.rawPins) files.set('manifests/raw.pins.json', evidence.rawPins);
  if (evidence.processedManifest) files.set('manifests/processed.manifest.json', evidence.processedManifest);
  if (evidence.fairnessReport) files.set('fairness-report.json', evidence.fairnessReport);
  if (evidence.gateDecision) files.set('gate-decision.json', evidence.gateDecision);
  if (evidence.checkpoint) files.set('audit/checkpoint.txt', evidence.checkpoint);
  for (const e of evidence.auditEntries) files.set(`audit/entries/${e.seq}.json`, canonicalBytes(e));
  // One line each: verify.sh reads them with sed.
  for (const p of evidence.proofs)
    files.set(`audit/proofs/${p.leafIndex}.proof.json`, `${JSON.stringify(p)}\n`);
  files.set('run.json', json(runSummary(evidence.run)));
  files.set(
    'verify-report.json',
    json({ ok: report.ok, runId: report.runId, status: report.status, checks: report.checks }),
  );
  files.set('VERIFY.md', verifyMd(evidence, report, [...files.keys()]));
  files.set('verify.sh', VERIFY_SH);

  await mkdir(out, { recursive: true });
  const sums: string[] = [];
  for (const [name, body] of files) {
    const bytes = typeof body === 'string' ? text(body) : body;
    await mkdir(join(out, name, '..'), { recursive: true });
    await writeFile(join(out, name), bytes, { flag: 'wx' });
    sums.push(`${hexOf(digestOf(bytes))}  ${name}`);
  }
  if (extras.model) {
    const digest = await extras.model(join(out, 'model.tar.gz'));
    sums.push(`${hexOf(digest)}  model.tar.gz`);
  }
  await chmod(join(out, 'verify.sh'), 0o755);
  await writeFile(join(out, 'SHA256SUMS'), `${sums.join('\n')}\n`, { flag: 'wx' });
  return [...files.keys(), ...(extras.model ? ['model.tar.gz'] : []), 'SHA256SUMS'];
}

/** What the run record says, without internal state (execution state, task tokens: invariant 7). */
function runSummary(run: RunRecord): Record<string, unknown> {
  const f = run.facts;
  const pick = (...names: string[]) =>
    Object.fromEntries(names.filter((n) => f[n] !== undefined).map((n) => [n, f[n]]));
  return {
    runId: run.runId,
    pipeline: run.pipeline,
    pipelineDigest: run.pipelineDigest,
    status: run.status,
    trigger: run.trigger,
    dataset: run.dataset,
    createdAt: run.createdAt,
    updatedAt: run.updatedAt,
    ...(run.error ? { error: run.error } : {}),
    steps: run.steps.map((s) => ({
      name: s.name,
      status: s.status,
      ...(s.digests ? { digests: s.digests } : {}),
      ...(s.error ? { error: s.error } : {}),
    })),
    facts: pick(
      'rawDigest',
      'rawSize',
      'rawFiles',
      'processedDigest',
      'modelDigest',
      'codeDigest',
      'fairness',
      'gate',
      'bundles',
      'signingKey',
    ),
  };
}

function verifyMd(evidence: Evidence, report: VerifyReport, names: string[]): string {
  const run = evidence.run;
  const bundles = names.filter((n) => n.endsWith('.sigstore.json'));
  const broken = firstBroken(report.checks);
  const status = broken
    ? `**At export, \`veritrail verify\` did NOT hold**: first broken link \`${broken.name}\` [${broken.code}] ${broken.detail}. See verify-report.json.`
    : `At export, \`veritrail verify\` held: ${report.checks.length} checks (verify-report.json).`;
  const f = run.facts;
  return `# Evidence of run ${run.runId}

Pipeline \`${run.pipeline}\`, status **${run.status}**. ${status}

| what | digest |
| --- | --- |
| raw data (${run.dataset.uri}) | ${String(f.rawDigest ?? 'none')} |
| processed data (manifests/processed.manifest.json) | ${String(f.processedDigest ?? 'none')} |
| model (model.tar.gz) | ${String(f.modelDigest ?? 'none')} |
| training code | ${String(f.codeDigest ?? 'none')} |

Everything here can be checked with public keys only. \`sh verify.sh\` does all of the steps
below with a POSIX shell, coreutils and openssl (no sed, awk, grep or jq); this file explains each
one so you can do it by hand.

## Files

- \`signing.pub.pem\`: the attestation key (SubjectPublicKeyInfo PEM); \`audit.pub.pem\`: the audit log's checkpoint key.
  Compare both with the keys you were given out of band: the folder cannot vouch for its own keys.
- ${bundles.map((b) => `\`${b}\``).join(', ') || '(no bundles)'}: Sigstore bundles v0.3, each a DSSE envelope
  around an in-toto Statement v1 (transform: raw → processed; provenance: SLSA v1 for the model;
  model-signature: OpenSSF model signing v1.0; fairness; gate decision).
- \`report.sigstore.json\`: the signed model report statement (predicate model-report/v1, schema
  \`schemas/model-report-v1.schema.json\`): every fact of \`report.html\` and the sha256 of every evidence file
  (\`predicate.files\`), so one signature covers them all. \`report.html\` is its rendering, for people.
- \`model.tar.gz\`: the model (absent only when exported with \`--without-model\`, which MODEL-NOT-INCLUDED.txt says).
- \`manifests/\`: dataset manifests (sorted paths, size, sha256 per file; digest = sha256 of the RFC 8785 bytes).
- \`fairness-report.json\`, \`gate-decision.json\`: the stored documents the statements link to.
- \`audit/entries/<seq>.json\` (RFC 8785 bytes), \`audit/proofs/<seq>.proof.json\`, \`audit/checkpoint.txt\`.
- \`SHA256SUMS\`: \`sha256sum -c SHA256SUMS\`.

## 1. Check a signature by hand (DSSE, ECDSA P-256 / SHA-256)

DSSE signs PAE(payloadType, payload) = \`"DSSEv1" SP len(type) SP type SP len(payload) SP payload\`
(lengths in decimal bytes). For one bundle, e.g. provenance.sigstore.json:

\`\`\`sh
B=provenance.sigstore.json
# the payload, its type and the signature, as stored in the bundle's dsseEnvelope
# val KEY: the bundle's first string value of KEY (they hold no quote, comma or brace)
val() { tr ',{}' '\\n\\n\\n' < $B | while IFS= read -r l; do case $l in *"\\"$1\\":"*) v=\${l#*\\"$1\\": \\"}; printf '%s' "\${v%\\"*}"; break;; esac; done; }
val payload | openssl base64 -d -A > payload.json
TYPE=$(val payloadType)      # application/vnd.in-toto+json
val sig | openssl base64 -d -A > sig.der
# PAE
printf 'DSSEv1 %s %s %s ' "\${#TYPE}" "$TYPE" "$(wc -c < payload.json | tr -d ' ')" > pae.bin
cat payload.json >> pae.bin
openssl dgst -sha256 -verify signing.pub.pem -signature sig.der pae.bin     # Verified OK
\`\`\`

Then read payload.json: its \`subject\` digest must be the artifact's. For the model,
\`sha256sum model.tar.gz\` must print ${String(f.modelDigest ?? 'the model digest').replace('sha256:', '')}.
For the processed data, \`veritrail hash <folder>\` (or the manifest's digest) must give the transform's subject.

## 2. Check every file against the signed report

Decode report.sigstore.json's payload as in step 1 (that is the report statement, RFC 8785 JSON) and check its
signature. \`predicate.files\` lists \`{"digest":{"sha256":…},"name":<file>}\` for every evidence file: each
\`openssl dgst -sha256 <file>\` must print that digest. report.html embeds the same bundle (the line after
\`id="veritrail-report-bundle"\`) and shows the statement's sha256 (\`openssl dgst -sha256 payload.json\`).
\`veritrail report --check report.html --key signing.pub.pem\` also checks that its text is the rendering of the statement.

## 3. Follow the links

- transform.sigstore.json: subject = processed data; \`predicate.inputs\` names the raw data digest.
- provenance.sigstore.json: subject = model; \`resolvedDependencies\` name the same raw and processed
  digests and the training code.
- model-signature.sigstore.json: subject = digest over the model's file digests (OpenSSF model signing).
- fairness.sigstore.json: subject = model; \`evaluationData\` = validation.csv of the processed manifest.
- gate.sigstore.json: subject = model; \`evidence\` = sha256 of the fairness statement (the decoded payload
  of fairness.sigstore.json: \`sha256sum payload.json\`); \`policy.digest\` = sha256 of gate-decision.json.

## 4. The audit log

\`audit/checkpoint.txt\` is a C2SP signed note. The text before the blank line is what was signed; the last
line is \`— <origin> <base64(4-byte key id || DER signature)>\`:

\`\`\`sh
head -n 3 audit/checkpoint.txt > note.txt      # origin, size, root: the lines before the blank line
tail -n 1 audit/checkpoint.txt | cut -d ' ' -f 3 | tr -d '\\n' | openssl base64 -d -A | tail -c +5 > cp.der
openssl dgst -sha256 -verify audit.pub.pem -signature cp.der note.txt     # Verified OK
\`\`\`

Each entry's leaf hash is SHA-256(0x00 || entry bytes) (RFC 6962 §2.1); \`audit/proofs/<seq>.proof.json\` holds
the RFC 9162 §2.1.3.2 inclusion proof from that leaf to the checkpoint's root (line 3), combining
nodes as SHA-256(0x01 || left || right). verify.sh walks it; so does \`veritrail audit verify\`.

## 5. With veritrail

\`veritrail verify ${run.runId} --key signing.pub.pem --audit-key audit.pub.pem\` against the state dir, or
\`veritrail verify --bundle provenance.sigstore.json --key signing.pub.pem --artifact model.tar.gz\`.
`;
}
