/**
 * The auditor's side, end to end: the model report (HTML + signed statement), the offline kit
 * checked by verify.sh in a root that has only sh, coreutils and openssl, each tampering the issue
 * lists, pinned keys, `model get`, and the runs commands.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLogReader } from '../../src/audit/reader.js';
import { putBytesCas, readObject } from '../../src/cas.js';
import { main } from '../../src/cli/main.js';
import { parseBundle, type Statement, serializeBundle, signStatement } from '../../src/core/attest/index.js';
import { digestOf } from '../../src/core/digest.js';
import { openFileSigner } from '../../src/local/file-signer.js';
import { openLocalRuntime } from '../../src/local/runtime.js';
import { trustedKeys } from '../../src/local/verify.js';
import type { VerifyCheck } from '../../src/verify/codes.js';
import { verifyRunWith } from '../../src/verify/run.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const COREUTILS = [
  'cat',
  'csplit',
  'cut',
  'head',
  'tail',
  'tr',
  'wc',
  'mktemp',
  'rm',
  'mv',
  'dirname',
  'basename',
];

let ws: Workspace;
let runId: string;
let status: string;
let kit: string;
let bin: string;
/** The report the run summary lists: the run signed it as it ended. */
let summaryReport: { statement: string; bundle: string } | undefined;

async function cli(...args: string[]) {
  const io = captureIo(ws.dir);
  const exit = await main(args, io);
  return { exit, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
}

/** A PATH folder holding only sh, the coreutils verify.sh names, and openssl (symlinks). */
function minimalRoot(): string {
  const dir = mkdtempSync(join(tmpdir(), 'veritrail-minroot-'));
  const which = (c: string) => execFileSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' }).trim();
  symlinkSync(realpathSync('/bin/sh'), join(dir, 'sh'));
  for (const c of [...COREUTILS, 'openssl']) symlinkSync(realpathSync(which(c)), join(dir, c));
  return dir;
}

function verifySh(folder = kit) {
  return spawnSync(join(bin, 'sh'), [join(folder, 'verify.sh')], {
    encoding: 'utf8',
    env: { PATH: bin, TMPDIR: tmpdir() },
  });
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Edits a kit file and re-seals SHA256SUMS, as a forger would; restores both afterwards. */
function forge(name: string, edit: (b: Buffer) => Buffer, fn: () => void, folder = kit): void {
  const path = join(folder, name);
  const original = readFileSync(path);
  const sums = readFileSync(join(folder, 'SHA256SUMS'), 'utf8');
  const changed = edit(original);
  expect(changed.equals(original), `the edit of ${name} changes it`).toBe(false);
  writeFileSync(path, changed);
  writeFileSync(
    join(folder, 'SHA256SUMS'),
    sums.replace(
      new RegExp(`^[0-9a-f]{64}  ${name.replace(/\./g, '\\.')}$`, 'm'),
      `${sha(changed)}  ${name}`,
    ),
  );
  try {
    fn();
  } finally {
    writeFileSync(path, original);
    writeFileSync(join(folder, 'SHA256SUMS'), sums);
  }
}
const text = (f: (s: string) => string) => (b: Buffer) => Buffer.from(f(b.toString('utf8')));

beforeAll(async () => {
  ws = makeWorkspace({ rows: 300 });
  const run = await cli('run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json');
  ({
    runId,
    status,
    report: summaryReport,
  } = JSON.parse(run.out) as {
    runId: string;
    status: string;
    report?: { statement: string; bundle: string };
  });
  expect(['SUCCEEDED', 'REJECTED']).toContain(status);
  kit = join(ws.dir, 'kit');
  const ex = await cli('export', runId, '--home', ws.home, '--trust-state-keys', '--out', 'kit');
  expect(ex.exit, ex.err).toBe(0);
  bin = minimalRoot();
}, 180_000);
afterAll(() => {
  ws?.cleanup();
  if (bin) rmSync(bin, { recursive: true, force: true });
});

describe('veritrail report', () => {
  it('writes one self-contained HTML file: no script, no remote resource, plots as inline SVG', async () => {
    const r = await cli('report', runId, '--home', ws.home, '--trust-state-keys', '--out', 'r.html');
    expect(r.exit, r.err).toBe(0);
    const html = readFileSync(join(ws.dir, 'r.html'), 'utf8');
    for (const section of [
      'Intended use and pipeline',
      '2. Data',
      '3. Training',
      'Evaluation on the held-out set',
      'Gate decision',
      'Chain of custody',
      'Verification status',
      'Audit trail',
      'How to check this report',
    ])
      expect(html).toContain(section);
    expect(html.match(/<svg /g)?.length ?? 0).toBeGreaterThanOrEqual(3);
    expect(html).not.toMatch(/<script(?![^>]*type="application\/json")/);
    expect(html).not.toMatch(/\b(src|href)="(?!#)/);
    expect(html).not.toMatch(/url\((?!#)/);
    expect(html).not.toMatch(/@import|<link /);
    expect(html).toContain('@media print');
  });

  it('shows the digest of a signed statement whose subject is the model, listed with --json', async () => {
    const r = await cli('report', runId, '--home', ws.home, '--json');
    const j = JSON.parse(r.out) as {
      statementDigest: string;
      statement: Statement<{ status: string; files: { name: string }[] }>;
    };
    const model = JSON.parse(readFileSync(join(kit, 'run.json'), 'utf8')).facts.modelDigest as string;
    expect(j.statement.predicateType).toBe('https://veritrail.dev/attestation/model-report/v1');
    expect(`sha256:${j.statement.subject[0]?.digest.sha256}`).toBe(model);
    expect(j.statement.predicate.status).toBe(status);
    expect(j.statement.predicate.files.map((f) => f.name)).toEqual(
      expect.arrayContaining([
        'model.tar.gz',
        'gate-decision.json',
        'fairness-report.json',
        'manifests/processed.manifest.json',
      ]),
    );
    expect(readFileSync(join(ws.dir, 'r.html'), 'utf8')).toContain(j.statementDigest);
    // The run made and signed it as it ended, and its summary lists it.
    expect(summaryReport?.statement).toBe(j.statementDigest);
    expect(existsSync(summaryReport?.bundle ?? '')).toBe(true);
    expect(r.err).not.toContain('signed now');
  });

  it('--check holds for the file as written, and catches an edited figure', async () => {
    writeFileSync(join(ws.dir, 'signing.pem'), readFileSync(join(kit, 'signing.pub.pem')));
    expect((await cli('report', '--check', 'r.html', '--key', 'signing.pem')).exit).toBe(0);
    const html = readFileSync(join(ws.dir, 'r.html'), 'utf8');
    const acc = /<th>accuracy<\/th><td>(\d\.\d{3})/.exec(html)?.[1] as string;
    expect(acc).toBeDefined();
    writeFileSync(
      join(ws.dir, 'edited.html'),
      html.replace(`<th>accuracy</th><td>${acc}`, '<th>accuracy</th><td>0.999'),
    );
    const r = await cli('report', '--check', 'edited.html', '--key', 'signing.pem', '--json');
    expect(r.exit).toBe(1);
    expect((JSON.parse(r.out) as { checks: VerifyCheck[] }).checks.find((c) => !c.ok)?.code).toBe(
      'REPORT_MISMATCH',
    );
  });

  it('--check refuses a report signed by another key than the trusted one', async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
      type: 'spki',
      format: 'pem',
    });
    writeFileSync(join(ws.dir, 'other.pem'), other);
    const r = await cli('report', '--check', 'r.html', '--key', 'other.pem', '--json');
    expect(r.exit).toBe(1);
    expect((JSON.parse(r.out) as { checks: VerifyCheck[] }).checks[0]?.code).toBe('SIGNATURE_INVALID');
  });
});

describe.skipIf(!hasOpenssl)('verify.sh in a root with only sh, coreutils and openssl', () => {
  it('has no sed, awk or grep there, and every check holds', () => {
    const probe = spawnSync(join(bin, 'sh'), ['-c', 'command -v sed || command -v awk || command -v grep'], {
      env: { PATH: bin },
      encoding: 'utf8',
    });
    expect(probe.status).not.toBe(0);
    const r = verifySh();
    expect(r.stdout).toMatch(/ok {4}provenance\.sigstore\.json: signature verifies/);
    expect(r.stdout).toMatch(/ok {4}report\.sigstore\.json: signature verifies/);
    expect(r.stdout).toMatch(/ok {4}model\.tar\.gz: sha256 is the one the signed report names/);
    expect(r.stdout).toMatch(/ok {4}report\.html carries the signed statement/);
    expect(r.stdout).toMatch(/ok {4}audit\/entries\/0\.json: included/);
    expect(r.stdout).toContain(`the signed report says run ${runId} ended ${status}`);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('verified: every check holds');
    expect(r.status).toBe(0);
  });

  const tamperings: [string, string, (b: Buffer) => Buffer, RegExp][] = [
    [
      'a changed model',
      'model.tar.gz',
      (b) => Buffer.concat([b, Buffer.from([0])]),
      /FAIL {2}model\.tar\.gz: sha256 is NOT the one the signed report names/,
    ],
    [
      'accuracy edited in the fairness report',
      'fairness-report.json',
      text((s) => s.replace(/"accuracy":0\.\d+/, '"accuracy":0.9999')),
      /FAIL {2}fairness-report\.json: sha256 is NOT the one the signed report names/,
    ],
    [
      'the gate decision flipped',
      'gate-decision.json',
      text((s) =>
        s.replace(
          /"decision":"(allow|deny)"/,
          (_m, d: string) => `"decision":"${d === 'allow' ? 'deny' : 'allow'}"`,
        ),
      ),
      /FAIL {2}gate-decision\.json: sha256 is NOT the one the signed report names/,
    ],
    [
      'a processed file size edited in its manifest',
      'manifests/processed.manifest.json',
      text((s) => s.replace(/"size":(\d)/, (_m, n: string) => `"size":${n === '9' ? '8' : '9'}`)),
      /FAIL {2}manifests\/processed\.manifest\.json: sha256 is NOT the one the signed report names/,
    ],
    [
      'another statement embedded in report.html',
      'report.html',
      text((s) =>
        s.replace(
          /("payload":"[A-Za-z0-9+/]{60})([A-Za-z0-9])/,
          (_m, a: string, c: string) => `${a}${c === 'A' ? 'B' : 'A'}`,
        ),
      ),
      /FAIL {2}report\.html does NOT carry the signed report statement/,
    ],
    [
      'a forged report statement',
      'report.sigstore.json',
      text((s) =>
        s.replace(
          /("payload": "[A-Za-z0-9+/]{80})([A-Za-z0-9])/,
          (_m, a: string, c: string) => `${a}${c === 'A' ? 'B' : 'A'}`,
        ),
      ),
      /FAIL {2}report\.sigstore\.json: signature does NOT verify/,
    ],
  ];
  it.each(tamperings)('catches %s, even with SHA256SUMS re-sealed', (_what, file, edit, expected) => {
    forge(file, edit, () => {
      const r = verifySh();
      expect(r.stdout).toMatch(expected);
      expect(r.stdout).toContain('NOT VERIFIED');
      expect(r.status).toBe(1);
    });
  });

  it('catches a model removed from the folder (and from SHA256SUMS) without the --without-model note', () => {
    const model = readFileSync(join(kit, 'model.tar.gz'));
    const sums = readFileSync(join(kit, 'SHA256SUMS'), 'utf8');
    rmSync(join(kit, 'model.tar.gz'));
    writeFileSync(join(kit, 'SHA256SUMS'), sums.replace(/^.* {2}model\.tar\.gz\n/m, ''));
    try {
      const r = verifySh();
      expect(r.stdout).toContain('FAIL  model.tar.gz: named by the signed report but missing');
      expect(r.status).toBe(1);
    } finally {
      writeFileSync(join(kit, 'model.tar.gz'), model);
      writeFileSync(join(kit, 'SHA256SUMS'), sums);
    }
  });

  it('with --without-model, says plainly that the model was not checked', async () => {
    const r = await cli(
      'export',
      runId,
      '--home',
      ws.home,
      '--trust-state-keys',
      '--out',
      'kit-nomodel',
      '--without-model',
    );
    expect(r.exit).toBe(0);
    expect(r.out).toContain('the model is NOT in this folder');
    const folder = join(ws.dir, 'kit-nomodel');
    expect(existsSync(join(folder, 'model.tar.gz'))).toBe(false);
    expect(readFileSync(join(folder, 'MODEL-NOT-INCLUDED.txt'), 'utf8')).toContain(
      'does NOT check the model',
    );
    const v = verifySh(folder);
    expect(v.stdout).toMatch(/NOT CHECKED {2}model\.tar\.gz: not in this export/);
    expect(v.stdout).toContain('verified, EXCEPT the model: it is not in this export, so it was NOT checked');
    expect(v.stdout).not.toContain('every check holds\n');
  });
});

describe('pinned keys', () => {
  it('verify trusts no key by default and says how to name one', async () => {
    const r = await cli('verify', runId, '--home', ws.home);
    expect(r.exit).toBe(2);
    expect(r.err).toContain('KEY_MISSING');
    expect(r.err).toContain('--trust-state-keys');
  });

  it('verify with a trust file kept outside the state dir, listing a retired key too: says which keys it trusted', async () => {
    const retired = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
      type: 'spki',
      format: 'pem',
    });
    writeFileSync(join(ws.dir, 'retired.pem'), retired);
    writeFileSync(
      join(ws.dir, 'trust.json'),
      JSON.stringify({ signing: ['retired.pem', 'kit/signing.pub.pem'], audit: ['kit/audit.pub.pem'] }),
    );
    const r = await cli('verify', runId, '--home', ws.home, '--trust', 'trust.json');
    expect(r.exit, r.out).toBe(0);
    expect(r.out).toMatch(
      /trusted keys:\n {2}signing sha256:[0-9a-f]{64} \(trust file signing key .*retired\.pem\)/,
    );
    expect(r.out).toContain('kit/audit.pub.pem');
    expect(r.out).toMatch(/ok {4}audit\.signing-key/);
  });

  it('a trust file with an unknown key is refused (catches typos)', async () => {
    writeFileSync(join(ws.dir, 'typo.json'), JSON.stringify({ signin: ['kit/signing.pub.pem'] }));
    const r = await cli('verify', runId, '--home', ws.home, '--trust', 'typo.json');
    expect(r.exit).toBe(2);
    expect(r.err).toContain('KEY_INVALID');
  });

  it('a swapped signing key with the run re-signed is caught by the key the audit log records', async () => {
    // The forger swaps the state dir's signing key, re-signs every bundle, stores them and points
    // the run record at them; only the audit log (checkpointed under the audit key) still says
    // which key signed.
    const rt = await openLocalRuntime(ws.home);
    try {
      const run = (await rt.runs.get(runId)) as NonNullable<Awaited<ReturnType<typeof rt.runs.get>>>;
      const forger = await openFileSigner(join(ws.dir, 'forger.key'));
      const bundles: Record<string, string> = {};
      for (const [k, key] of Object.entries(run.facts.bundles as Record<string, string>)) {
        const payload = parseBundle(await readObject(rt.objects, 'artifacts', key)).envelope.payload;
        const st = JSON.parse(new TextDecoder().decode(payload)) as Statement;
        const bytes = new TextEncoder().encode(serializeBundle((await signStatement(st, forger)).bundle));
        bundles[k] = (await putBytesCas(rt.objects, bytes, digestOf(bytes))).key;
      }
      const forged = { ...run, facts: { ...run.facts, bundles, signingKey: forger.keyId } };
      writeFileSync(join(ws.dir, 'forger.pem'), await forger.publicKeyPem());
      const keys = await trustedKeys(ws.home, {
        signing: [{ pem: await forger.publicKeyPem(), source: 'the swapped state dir key' }],
        audit: [{ pem: readFileSync(join(kit, 'audit.pub.pem'), 'utf8'), source: 'kit' }],
      });
      const { report } = await verifyRunWith(
        {
          runs: { get: async () => forged },
          objects: rt.objects,
          openAudit: (k) => openLogReader({ store: rt.objects, publicKey: k.pem, bucket: 'audit' }),
        },
        keys,
        runId,
      );
      const byName = Object.fromEntries(report.checks.map((c) => [c.name, c.code]));
      expect(byName['provenance.signature']).toBe('OK');
      expect(byName['audit.signing-key']).toBe('KEY_MISMATCH');
      expect(report.ok).toBe(false);
    } finally {
      await rt.close();
    }
  });
});

describe('veritrail model get', () => {
  it('refuses without trusted keys, and hands over the verified model files with them', async () => {
    expect((await cli('model', 'get', runId, '--home', ws.home, '--out', 'm0')).exit).toBe(2);
    const r = await cli('model', 'get', runId, '--home', ws.home, '--trust-state-keys', '--out', 'm');
    expect(r.exit, r.err).toBe(0);
    const model = JSON.parse(readFileSync(join(kit, 'run.json'), 'utf8')).facts.modelDigest as string;
    expect(`sha256:${sha(readFileSync(join(ws.dir, 'm', 'model.tar.gz')))}`).toBe(model);
    expect(existsSync(join(ws.dir, 'm', 'model', 'model.json'))).toBe(true);
    expect(existsSync(join(ws.dir, 'm', 'provenance.sigstore.json'))).toBe(true);
  });

  it('refuses a run whose model no longer verifies', async () => {
    const rt = await openLocalRuntime(ws.home);
    const key = ((await rt.runs.get(runId))?.facts.modelKey as string) ?? '';
    await rt.close();
    const path = join(ws.home, 'objects', 'artifacts', key);
    const original = readFileSync(path);
    execFileSync('chmod', ['u+w', path]);
    appendFileSync(path, Buffer.from([1]));
    try {
      const r = await cli('model', 'get', runId, '--home', ws.home, '--trust-state-keys', '--out', 'm2');
      expect(r.exit).toBe(1);
      expect(r.err).toContain('model.data');
      expect(existsSync(join(ws.dir, 'm2', 'model.tar.gz'))).toBe(false);
    } finally {
      writeFileSync(path, original);
    }
  });
});

describe('veritrail runs', () => {
  it('list shows accuracy, the worst fairness figure and the gate decision', async () => {
    const r = await cli('runs', 'list', '--home', ws.home);
    expect(r.out).toMatch(/ACCURACY\s+WORST DI\s+GATE/);
    expect(r.out).toMatch(
      new RegExp(
        `${runId}\\s+${status}\\s+credit-scoring\\s+0\\.\\d{3}\\s+\\d\\.\\d{3} \\((sex|age_group)\\)\\s+(allow|deny)`,
      ),
    );
    const j = JSON.parse((await cli('runs', 'list', '--home', ws.home, '--json')).out) as Record<
      string,
      unknown
    >[];
    expect(j[0]).toMatchObject({
      runId,
      accuracy: expect.any(Number),
      gate: expect.stringMatching(/allow|deny/),
    });
    expect(j[0]?.worstFairness).toMatchObject({
      metric: 'disparateImpact',
      disparateImpact: expect.any(Number),
    });
  });

  it('show prints metrics, small-group warnings, hyperparameters and the training log', async () => {
    const r = await cli('runs', 'show', runId, '--home', ws.home);
    expect(r.out).toContain('metrics (held-out set)');
    expect(r.out).toMatch(/accuracy\s+0\.\d{3}/);
    expect(r.out).toContain('warnings (small groups');
    expect(r.out).toMatch(/hyperparameters\n\s+epochs\s+300/);
    const log = /training log (\S+)/.exec(r.out)?.[1] as string;
    expect(existsSync(log)).toBe(true);
  });

  it('compare shows what changed between two runs', async () => {
    const def = JSON.parse(readFileSync(ws.pipeline, 'utf8')) as { hyperparameters: Record<string, string> };
    def.hyperparameters.epochs = '50';
    writeFileSync(join(ws.dir, 'pipeline-b.json'), JSON.stringify(def));
    const second = await cli('run', ws.dataset, '--pipeline', 'pipeline-b.json', '--home', ws.home, '--json');
    const b = (JSON.parse(second.out) as { runId: string }).runId;
    const r = await cli('runs', 'compare', runId, b, '--home', ws.home, '--json');
    const j = JSON.parse(r.out) as { changed: { what: string; a: string; b: string }[]; same: string[] };
    expect(j.changed.find((c) => c.what === 'hyperparameter epochs')).toEqual({
      what: 'hyperparameter epochs',
      a: '300',
      b: '50',
    });
    expect(j.changed.map((c) => c.what)).toEqual(
      expect.arrayContaining(['pipeline definition', 'model digest']),
    );
    expect(j.same).toEqual(expect.arrayContaining(['raw digest', 'processed digest']));
    const t = await cli('runs', 'compare', runId, b, '--home', ws.home);
    expect(t.out).toMatch(/hyperparameter epochs\n {4}a {2}300\n {4}b {2}50/);
  }, 120_000);
});

describe('the report of a FAILED run', () => {
  it('is produced too: it says how far the run went and why it failed', async () => {
    const failing = makeWorkspace({
      rows: 300,
      pipeline: (def) => {
        (def.trainer as { command: string[] }).command = ['node', '-e', 'process.exit(3)'];
      },
    });
    try {
      const io = captureIo(failing.dir);
      expect(
        await main(
          ['run', failing.dataset, '--pipeline', failing.pipeline, '--home', failing.home, '--json'],
          io,
        ),
      ).toBe(1);
      const summary = JSON.parse(io.stdout.join('')) as { runId: string; report?: { statement: string } };
      const id = summary.runId;
      expect(summary.report?.statement).toMatch(/^sha256:[0-9a-f]{64}$/);
      const out = captureIo(failing.dir);
      expect(await main(['report', id, '--home', failing.home, '--out', 'failed.html'], out)).toBe(0);
      const html = readFileSync(join(failing.dir, 'failed.html'), 'utf8');
      expect(html).toContain('<span class="badge FAILED">FAILED</span>');
      expect(html).toContain('The run FAILED');
      expect(html).toContain('The run did not reach evaluation.');
      const json = captureIo(failing.dir);
      await main(['report', id, '--home', failing.home, '--json'], json);
      const st = (
        JSON.parse(json.stdout.join('')) as {
          statement: Statement<{ status: string; error?: { code: string } }>;
        }
      ).statement;
      expect(st.subject[0]?.name).toBe('raw-data');
      expect(st.predicate.status).toBe('FAILED');
      expect(st.predicate.error?.code).toBeDefined();
    } finally {
      failing.cleanup();
    }
  }, 120_000);
});
