/**
 * The human-readable model report: one self-contained, print-friendly HTML file rendered from the
 * signed model-report/v1 statement (and, when given, the verification just run and the run's audit
 * entries). No script runs, nothing is fetched: styles are inline, plots are SVG rendered at build
 * time (src/report/plots.ts), and the signed bundle itself is embedded as a JSON data block so the
 * file and a public key are enough to check it. Sections follow a model card (Mitchell et al. 2019)
 * and the EU AI Act Annex IV points 1–3 (general description, development, monitoring of performance).
 */
import type { ModelReportPredicate, ReportRate, Statement } from '../core/attest/index.js';
import type { Digest } from '../core/digest.js';
import type { AuditEntry } from '../ports.js';
import type { VerifyCheck } from '../verify/codes.js';
import { confusionPlot, disparateImpactPlot, ratesPlot } from './plots.js';

interface ReportVerification {
  ok: boolean;
  checks: VerifyCheck[];
  /** Which public keys were trusted, as `sha256:<hex of DER>` with where each came from. */
  trusted: string[];
}

export interface ReportView {
  statement: Statement<ModelReportPredicate>;
  /** sha256 of the DSSE payload (the RFC 8785 statement). */
  statementDigest: Digest;
  /** The Sigstore bundle, embedded verbatim (one line of JSON). */
  bundle: unknown;
  /** sha256 of the signing key's DER SubjectPublicKeyInfo, when known. */
  signingKey?: string;
  verification?: ReportVerification;
  audit?: { entries: AuditEntry[]; checkpointSize?: number };
}

/** The id of the data block holding the signed bundle; `verify.sh` and VERIFY.md find it by this line. */
const BUNDLE_BLOCK_ID = 'veritrail-report-bundle';

/** The id of the data block holding what the renderer found (verification, audit entries): not signed. */
const CONTEXT_BLOCK_ID = 'veritrail-render-context';

/** The two data blocks of a rendered report: the signed bundle and the renderer's context. */
export function readReportBlocks(
  html: string,
): { bundle: unknown; context: Omit<ReportView, 'statement' | 'statementDigest' | 'bundle'> } | undefined {
  const lineAfter = (id: string): string | undefined => {
    const lines = html.split('\n');
    const i = lines.findIndex((l) => l.includes(`id="${id}"`));
    return i < 0 ? undefined : lines[i + 1];
  };
  const b = lineAfter(BUNDLE_BLOCK_ID);
  const c = lineAfter(CONTEXT_BLOCK_ID);
  if (b === undefined || c === undefined) return undefined;
  try {
    return { bundle: JSON.parse(b), context: JSON.parse(c) };
  } catch {
    return undefined;
  }
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
function esc(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (c) => ESC[c] as string);
}

function fmt(v: number | null | undefined, digits = 3): string {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : 'n/a';
}

function rate(r: ReportRate): string {
  return r.interval
    ? `${fmt(r.value)} <span class="ci">[${fmt(r.interval.lower)}, ${fmt(r.interval.upper)}]</span>`
    : fmt(r.value);
}

const hex = (d: { sha256: string } | undefined) => (d ? `sha256:${d.sha256}` : 'none');
const code = (s: unknown) => `<code>${esc(s)}</code>`;

function rows(pairs: [string, string | undefined][]): string {
  return pairs
    .filter((p): p is [string, string] => p[1] !== undefined)
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`)
    .join('\n');
}

function rule(t: { min?: number; max?: number } | undefined): string {
  if (!t) return 'reported, no threshold';
  if (t.min !== undefined && t.max !== undefined) return `between ${t.min} and ${t.max}`;
  if (t.min !== undefined) return `at least ${t.min}`;
  if (t.max !== undefined) return `at most ${t.max}`;
  return 'reported, no threshold';
}

const METRIC_TITLE: Record<string, string> = {
  accuracy: 'accuracy',
  disparateImpact: 'disparate impact (four-fifths rule)',
  demographicParityDifference: 'demographic parity difference',
  equalizedOddsDifference: 'equalized odds difference',
};

const CSS = `
:root { color-scheme: light; }
body { font: 14px/1.45 Helvetica, Arial, sans-serif; color: #111; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2rem; }
h3 { font-size: 1rem; margin-top: 1.2rem; }
table { border-collapse: collapse; margin: .5rem 0; width: 100%; } th, td { border: 1px solid #ccc; padding: .25rem .45rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font: 12px/1.35 Menlo, Consolas, monospace; overflow-wrap: anywhere; } pre { background: #f7f7f7; border: 1px solid #ddd; padding: .5rem; white-space: pre-wrap; }
.ci { color: #555; font-size: .9em; } .small { color: #c62828; }
.badge { display: inline-block; padding: .1rem .5rem; border-radius: .3rem; font-weight: 700; color: #fff; }
.SUCCEEDED, .allow, .ok { background: #2e7d32; } .REJECTED, .deny { background: #c62828; } .FAILED, .fail { background: #6a1b9a; } .RUNNING { background: #555; }
.chain { display: flex; flex-wrap: wrap; align-items: stretch; gap: .3rem; margin: .8rem 0; }
.node { border: 2px solid #1f4e79; border-radius: .4rem; padding: .4rem .5rem; flex: 1 1 8.5rem; min-width: 8.5rem; font-size: 12px; }
.node b { display: block; font-size: 13px; } .node code { font-size: 10.5px; } .node.absent { border-style: dashed; border-color: #999; color: #777; }
.arrow { align-self: center; font-size: 20px; color: #1f4e79; }
.plot { margin: .8rem 0; overflow-x: auto; } .plot svg { max-width: 100%; height: auto; }
.note { color: #444; font-size: .92em; }
@media print { body { margin: 0; max-width: none; font-size: 11pt; } h2 { break-after: avoid; } table, .plot, .chain, pre { break-inside: avoid; } a { color: inherit; text-decoration: none; } }
`;

/** Renders the report. Deterministic: the same view gives the same bytes. */
export async function renderReportHtml(view: ReportView): Promise<string> {
  const st = view.statement;
  const p = st.predicate;
  const subject = st.subject[0];
  const model = p.files.find((f) => f.name === 'model.tar.gz');
  const title = `Model report: ${p.pipeline.name}, run ${p.runId}`;
  const parts: string[] = [];

  parts.push(`<header>
<h1>${esc(title)}</h1>
<p>Status <span class="badge ${esc(p.status)}">${esc(p.status)}</span>${p.gate ? ` &nbsp; gate decision <span class="badge ${esc(p.gate.decision)}">${esc(p.gate.decision)}</span>` : ''}</p>
<table>${rows([
    [
      'subject',
      `${code(subject?.name ?? '')} ${code(subject ? hex(subject.digest as { sha256: string }) : '')}`,
    ],
    [
      'report statement',
      `${code(view.statementDigest)} (sha256 of the signed in-toto statement, predicate ${code(st.predicateType)})`,
    ],
    ['signed by', view.signingKey ? code(view.signingKey) : undefined],
    ['run created', esc(p.createdOn)],
    ['run finished', p.finishedOn ? esc(p.finishedOn) : undefined],
    ['facts gathered', esc(p.reportedOn)],
  ])}</table>
${p.error ? `<p><b>The run FAILED:</b> ${code(p.error.code)} ${esc(p.error.message)}</p>` : ''}
</header>`);

  // 1. Intended use and pipeline
  parts.push(`<section><h2>1. Intended use and pipeline</h2>
<p>${p.pipeline.description ? esc(p.pipeline.description) : '<i>The pipeline definition states no intended use.</i>'}</p>
<table>${rows([
    ['pipeline', `${code(p.pipeline.name)} definition ${code(hex(p.pipeline.digest))}`],
    [
      'label',
      p.data.label ? `${code(p.data.label.column)}, positive = ${code(p.data.label.positive)}` : undefined,
    ],
    ['features', p.data.features.length ? p.data.features.map(code).join(', ') : undefined],
    [
      'protected attributes',
      p.data.protected.length
        ? p.data.protected.map((a) => `${code(a.column)} (reference group ${code(a.privileged)})`).join(', ')
        : undefined,
    ],
    [
      'steps',
      'register → hash raw data → preprocess → check code → train → evaluate on held-out data → gate → sign → register → finish',
    ],
  ])}</table></section>`);

  // 2. Data
  const ev = p.evaluation;
  const groupRows = (ev?.groups ?? [])
    .map((g) => {
      const n = g.tp + g.fp + g.tn + g.fn;
      return `<tr><td>${code(g.attribute)}</td><td>${esc(g.value)}${g.privileged ? ' (reference)' : ''}</td><td class="num${g.small ? ' small' : ''}">${n}${g.small ? ' (small)' : ''}</td><td class="num">${g.tp + g.fn}</td><td class="num">${n ? fmt((g.tp + g.fn) / n) : 'n/a'}</td></tr>`;
    })
    .join('\n');
  parts.push(`<section><h2>2. Data</h2>
<table>${rows([
    [
      'raw data',
      p.data.raw
        ? `${code(hex(p.data.raw.digest))}<br>${esc(p.data.raw.uri ?? '')}${p.data.raw.files !== undefined ? `, ${p.data.raw.files} file(s)` : ''}${p.data.raw.bytes !== undefined ? `, ${p.data.raw.bytes} bytes` : ''}`
        : 'not hashed',
    ],
    [
      'processed data',
      p.data.processed
        ? `${code(hex(p.data.processed.digest))}<br>${p.data.processed.trainRows ?? '?'} training rows, ${p.data.processed.validationRows ?? '?'} held-out rows`
        : 'not produced',
    ],
    [
      'preprocessing',
      p.data.transform
        ? `transform ${code(hex(p.data.transform.digest))}${p.data.transform.codeDigest ? `, code ${code(hex(p.data.transform.codeDigest))}` : ''}${p.data.validationFraction !== undefined ? `; deterministic split, ${p.data.validationFraction} held out` : ''}`
        : undefined,
    ],
  ])}</table>
${groupRows ? `<h3>Held-out set: group sizes and label balance</h3><table><tr><th>attribute</th><th>group</th><th>rows</th><th>positive labels</th><th>positive share</th></tr>${groupRows}</table>${ev?.minGroupSize !== undefined ? `<p class="note">Groups under ${ev.minGroupSize} rows are marked small: their figures are not reliable.</p>` : ''}` : ''}
</section>`);

  // 3. Training
  const t = p.training;
  parts.push(
    `<section><h2>3. Training</h2>${
      t
        ? `<table>${rows([
            ['training code', t.code ? code(hex(t.code.digest)) : undefined],
            ['image', t.image ? code(t.image) : undefined],
            ['command', t.command ? code(t.command.join(' ')) : undefined],
            ['environment', esc(t.runtime)],
            ['isolation', esc(t.isolation)],
            ['job', t.job ? code(t.job) : undefined],
            ['started / ended', t.startedOn ? `${esc(t.startedOn)} / ${esc(t.finishedOn ?? '')}` : undefined],
          ])}</table>
<h3>Hyperparameters</h3><table>${
            Object.keys(t.hyperparameters).length
              ? Object.entries(t.hyperparameters)
                  .sort(([a], [b]) => (a < b ? -1 : 1))
                  .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${code(v)}</td></tr>`)
                  .join('')
              : '<tr><td>none</td></tr>'
          }</table>`
        : '<p>No model was trained in this run.</p>'
    }</section>`,
  );

  // 4. Evaluation
  if (ev) {
    const attrs = [...new Set(ev.groups.map((g) => g.attribute))];
    const rateRows = ev.groups
      .map(
        (g) =>
          `<tr><td>${code(g.attribute)}</td><td${g.small ? ' class="small"' : ''}>${esc(g.value)}${g.privileged ? ' (reference)' : ''}${g.small ? ' (small)' : ''}</td><td class="num">${rate(g.selectionRate)}</td><td class="num">${rate(g.tpr)}</td><td class="num">${rate(g.fpr)}</td></tr>`,
      )
      .join('\n');
    const metricRows = ev.metrics
      .map(
        (m) =>
          `<tr><td>${esc(METRIC_TITLE[m.name] ?? m.name)}</td><td>${m.attribute ? code(m.attribute) : 'overall'}</td><td class="num">${fmt(m.value)}${m.interval ? ` <span class="ci">[${fmt(m.interval.lower)}, ${fmt(m.interval.upper)}]</span>` : ''}</td><td>${esc(rule(m.threshold))}</td><td>${m.passed === undefined ? '' : m.passed ? 'holds' : '<b>fails</b>'}</td></tr>`,
      )
      .join('\n');
    const plots: string[] = [];
    for (const [i, a] of attrs.entries()) plots.push(await ratesPlot(ev, a, `rates${i}`));
    const di = await disparateImpactPlot(ev, 'di');
    if (di) plots.push(di);
    const cm = await confusionPlot(ev, 'cm');
    if (cm) plots.push(cm);
    const c = ev.confusion;
    parts.push(`<section><h2>4. Evaluation on the held-out set</h2>
<p>The control plane scored the model itself on ${ev.rows} held-out rows the trainer never saw (${code(hex(ev.evaluationData.digest))}).
Intervals are ${Math.round(ev.confidenceLevel * 100)}%: ${esc(ev.intervalMethod)} for the aggregates, Wilson score intervals for per-group rates.</p>
<table>${rows([
      ['accuracy', rate(ev.accuracy)],
      ['confusion (all rows)', `TP ${c.tp}, FP ${c.fp}, TN ${c.tn}, FN ${c.fn}`],
    ])}</table>
<h3>Per-group rates</h3>
<table><tr><th>attribute</th><th>group</th><th>selection rate</th><th>true positive rate</th><th>false positive rate</th></tr>${rateRows}</table>
<h3>Fairness aggregates and the rule each is held to</h3>
<table><tr><th>metric</th><th>attribute</th><th>value [interval]</th><th>rule</th><th>result</th></tr>${metricRows}</table>
${plots.map((s) => `<figure class="plot">${s}</figure>`).join('\n')}
${ev.warnings.length ? `<h3>Warnings</h3><ul>${ev.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul>` : ''}
</section>`);
  } else {
    parts.push(
      '<section><h2>4. Evaluation on the held-out set</h2><p>The run did not reach evaluation.</p></section>',
    );
  }

  // 5. Gate decision
  const g = p.gate;
  parts.push(
    `<section><h2>5. Gate decision</h2>${
      g
        ? `<p>Decision: <span class="badge ${esc(g.decision)}">${esc(g.decision)}</span></p>
<ul>${g.reasons.map((r) => `<li>${code(r.code)}: ${esc(r.message)}</li>`).join('')}</ul>
<p>Policy ${code(g.policy.name ?? '')} ${code(hex(g.policy.digest))}</p>
${g.policy.text ? `<pre>${esc(g.policy.text)}</pre>` : ''}`
        : '<p>The run did not reach the gate.</p>'
    }</section>`,
  );

  // 6. Chain of custody
  const stmt = (n: string) => p.statements.find((s) => s.name === n);
  const node = (name: string, digest: string | undefined, note: string) =>
    `<div class="node${digest ? '' : ' absent'}"><b>${esc(name)}</b>${digest ? code(digest) : 'absent'}<br>${esc(note)}</div>`;
  const arrow = '<div class="arrow" aria-hidden="true">→</div>';
  parts.push(`<section><h2>6. Chain of custody</h2>
<div class="chain" role="img" aria-label="raw data, processed data, model, signed statements, audit log checkpoint">
${node('raw data', p.data.raw ? hex(p.data.raw.digest) : undefined, 'hashed byte for byte')}${arrow}
${node('processed data', p.data.processed ? hex(p.data.processed.digest) : undefined, 'transform statement')}${arrow}
${node('model', model ? hex(model.digest) : undefined, 'provenance + model signature')}${arrow}
${node('statements', stmt('gate') ? hex(stmt('gate')?.digest) : undefined, `${p.statements.length} signed (fairness, gate…)`)}${arrow}
${node('audit log', view.audit?.checkpointSize !== undefined ? `checkpoint of ${view.audit.checkpointSize} entries` : undefined, 'signed checkpoint, inclusion proofs')}
</div>
<table><tr><th>statement</th><th>predicate type</th><th>payload sha256</th></tr>${p.statements
    .map(
      (s) =>
        `<tr><td>${esc(s.name)}</td><td>${code(s.predicateType)}</td><td>${code(hex(s.digest))}</td></tr>`,
    )
    .join('')}</table>
<h3>Files this report vouches for</h3>
<table><tr><th>file (in <code>veritrail export</code>)</th><th>sha256</th></tr>${p.files
    .map((f) => `<tr><td>${code(f.name)}</td><td>${code(f.digest.sha256)}</td></tr>`)
    .join('')}</table></section>`);

  // 7. Verification status
  const v = view.verification;
  parts.push(
    `<section><h2>7. Verification status</h2>${
      v
        ? `<p class="note">This section is what the renderer found, not a signed fact: check it again yourself.</p><p>When this file was rendered, <code>veritrail verify</code> ${v.ok ? '<span class="badge ok">held</span>' : '<span class="badge fail">did NOT hold</span>'}: ${v.checks.filter((c) => c.ok).length} of ${v.checks.length} checks.</p>
<p>Trusted keys: ${v.trusted.map(code).join(', ') || 'none'}</p>
<table><tr><th>check</th><th>result</th><th>detail</th></tr>${v.checks
            .map(
              (c) =>
                `<tr><td>${code(c.name)}</td><td>${c.ok ? 'ok' : `<b>${esc(c.code)}</b>`}</td><td>${esc(c.detail)}</td></tr>`,
            )
            .join('')}</table>`
        : '<p>Not verified when rendered (the report was rendered from the signed statement alone). Check it as below.</p>'
    }</section>`,
  );

  // 8. Audit trail
  const entries = view.audit?.entries ?? [];
  parts.push(`<section><h2>8. Audit trail</h2>
<table><tr><th>step</th><th>status</th><th>started</th><th>ended</th><th>digests</th></tr>${p.trail
    .map(
      (s) =>
        `<tr><td>${esc(s.step)}</td><td>${esc(s.status)}</td><td>${esc(s.startedOn)}</td><td>${esc(s.endedOn ?? '')}</td><td>${Object.entries(
          s.digests ?? {},
        )
          .map(([k, d]) => `${esc(k)} ${code(d)}`)
          .join('<br>')}</td></tr>`,
    )
    .join('')}</table>
${
  entries.length
    ? `<h3>Audit log entries of the run</h3><p class="note">Read from the log when this file was rendered, each proven against the signed checkpoint by the verification above; not part of the signed statement.</p><table><tr><th>seq</th><th>time</th><th>step</th><th>event</th><th>outcome</th></tr>${entries
        .map(
          (e) =>
            `<tr><td class="num">${e.seq}</td><td>${esc(e.time)}</td><td>${esc(e.step)}</td><td>${esc(e.type)}</td><td>${esc(e.outcome)}</td></tr>`,
        )
        .join('')}</table>`
    : ''
}</section>`);

  // 9. How to check
  parts.push(`<section><h2>9. How to check this report</h2>
<p>Every fact above is in one signed in-toto statement (predicate ${code(st.predicateType)}, JSON Schema
<code>schemas/model-report-v1.schema.json</code>), whose sha256 is ${code(view.statementDigest)}. The signed
Sigstore bundle is embedded at the end of this file, on the line after the one that opens the data block
<code>${BUNDLE_BLOCK_ID}</code>.</p>
<p>With veritrail and the public key you were given: <code>veritrail report --check report.html --key signing.pub.pem</code>
(checks the signature and that this file is exactly the rendering of the signed statement), or in the evidence folder,
<code>sh verify.sh</code>. By hand, with a POSIX shell and openssl only:</p>
<pre>
# the embedded bundle: the line after the marker line
n=0; while IFS= read -r l; do [ "$n" = 1 ] &amp;&amp; break
  case $l in '&lt;script type=&quot;application/json&quot; id=&quot;${BUNDLE_BLOCK_ID}&quot;&gt;') n=1;; esac; done &lt; report.html
# its payload (the statement) and signature; values hold no quote, comma or brace
for k in payload sig; do v=\${l#*\\"$k\\":\\"}; printf '%s' "\${v%%\\"*}" | openssl base64 -d -A &gt; $k.bin; done
openssl dgst -sha256 -r payload.bin          # must print ${esc(view.statementDigest.slice(7))}
printf 'DSSEv1 28 application/vnd.in-toto+json %s ' "$(wc -c &lt; payload.bin | tr -d ' ')" &gt; pae.bin
cat payload.bin &gt;&gt; pae.bin
openssl dgst -sha256 -verify signing.pub.pem -signature sig.bin pae.bin    # Verified OK
</pre>
<p class="note">payload.bin is the statement as JSON: its <code>subject</code> is the model digest, its
<code>files</code> the sha256 of every file of the evidence folder; <code>sha256sum model.tar.gz</code> must print the subject.</p>
</section>`);

  const bundleLine = JSON.stringify(view.bundle).replace(/</g, '\\u003c');
  const context = JSON.stringify({
    ...(view.signingKey ? { signingKey: view.signingKey } : {}),
    ...(view.verification ? { verification: view.verification } : {}),
    ...(view.audit ? { audit: view.audit } : {}),
  }).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
${parts.join('\n')}
<script type="application/json" id="${BUNDLE_BLOCK_ID}">
${bundleLine}
</script>
<script type="application/json" id="${CONTEXT_BLOCK_ID}">
${context}
</script>
</body>
</html>
`;
}
