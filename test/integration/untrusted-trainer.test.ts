/**
 * Issue 11, "Done when": a trainer that reports labels as predictions gets its real accuracy; a
 * trainer that rewrites its staged data ends FAILED; a trainer cannot read the signing key (or,
 * where no sandbox exists, the provenance says so).
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readObject } from '../../src/cas.js';
import { main } from '../../src/cli/main.js';
import { openLocalRuntime } from '../../src/local/runtime.js';
import { chooseIsolation } from '../../src/local/sandbox.js';
import { readTarMember } from '../../src/tarball.js';
import { captureIo, makeWorkspace, type Workspace } from '../helpers/workspace.js';

const bwrapWorks = chooseIsolation('bubblewrap').level === 'bubblewrap';

async function run(ws: Workspace): Promise<{ code: number; json: Record<string, unknown> }> {
  const io = captureIo(ws.dir);
  const code = await main(['run', ws.dataset, '--pipeline', ws.pipeline, '--home', ws.home, '--json'], io);
  return { code, json: JSON.parse(io.stdout[0] ?? '{}') as Record<string, unknown> };
}

async function recordOf(ws: Workspace, runId: string) {
  const rt = await openLocalRuntime(ws.home);
  try {
    const record = await rt.runs.get(runId);
    const bundles = (record?.facts.bundles ?? {}) as Record<string, string>;
    const statement = async (name: string) => {
      const key = bundles[name];
      if (!key) return undefined;
      const bundle = JSON.parse(new TextDecoder().decode(await readObject(rt.objects, 'artifacts', key))) as {
        dsseEnvelope: { payload: string };
      };
      return JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString('utf8')) as {
        predicate: Record<string, unknown>;
      };
    };
    return { record, provenance: await statement('provenance'), fairness: await statement('fairness') };
  } finally {
    await rt.close();
  }
}

let ws: Workspace;
const saved = process.env.VERITRAIL_SANDBOX;
afterEach(() => {
  ws?.cleanup();
  if (saved === undefined) delete process.env.VERITRAIL_SANDBOX;
  else process.env.VERITRAIL_SANDBOX = saved;
});

describe('a trainer that reports the validation labels as its predictions', () => {
  beforeEach(() => {
    ws = makeWorkspace({ rows: 1500 });
    // Trains honestly, then overwrites its predictions with the validation labels it was given.
    appendFileSync(
      join(ws.dir, 'trainer', 'train.mjs'),
      `\nwriteFileSync(join(dataDir, 'predictions.csv'), ['row,score,prediction', ...validation.y.map((y, i) => \`\${i},\${y},\${y}\`)].join('\\n') + '\\n');\n`,
    );
  });

  it('gets its real accuracy, from the control plane scoring a test split it never saw, and is flagged', async () => {
    const r = await run(ws);
    expect(r.code).toBe(0);
    const { record, fairness } = await recordOf(ws, r.json.runId as string);
    const accuracy = (record?.facts.fairness as { accuracy: number } | undefined)?.accuracy;
    expect(accuracy).toBeGreaterThan(0.5);
    expect(accuracy).toBeLessThan(0.95);
    expect(record?.facts.selfReported).toEqual({ accuracy: 1, flagged: true });
    expect(((record?.facts.fairnessWarnings ?? []) as string[]).join('\n')).toMatch(
      /self-reported validation accuracy 1\.000 disagrees/,
    );
    // The fairness statement names the test split and the control plane's predictions, not the trainer's output.
    const predicate = fairness?.predicate as {
      evaluationData: { name: string };
      predictions: { digest: { sha256: string } };
    };
    expect(predicate.evaluationData.name).toBe('test.csv');
    expect(`sha256:${predicate.predictions.digest.sha256}`).toBe(record?.facts.predictionsDigest);
  });
});

describe('a trainer that rewrites its staged training data', () => {
  beforeEach(() => {
    ws = makeWorkspace({ rows: 1500 });
    appendFileSync(
      join(ws.dir, 'trainer', 'train.mjs'),
      `\nimport { chmodSync as __c, appendFileSync as __a } from 'node:fs';\ntry { __c(files.train, 0o644); __c(join(files.train, '..'), 0o755); __a(files.train, '1,1,1,1,1,1,1\\n'); } catch (e) { process.stdout.write('rewrite refused: ' + e.code + '\\n'); }\n`,
    );
  });

  it('ends FAILED with CHANNEL_TAMPERED naming the channel when it could write (no sandbox)', async () => {
    process.env.VERITRAIL_SANDBOX = 'none';
    const r = await run(ws);
    expect(r.code).not.toBe(0);
    expect(r.json.status).toBe('FAILED');
    const error = r.json.error as { code: string; message: string };
    expect(error.code).toBe('CHANNEL_TAMPERED');
    expect(error.message).toMatch(/channel train was changed while the trainer ran/);
  });

  it.skipIf(!bwrapWorks)(
    'cannot write at all under bubblewrap: the channels are bound read-only',
    async () => {
      const r = await run(ws);
      expect(r.json.status).toBe('SUCCEEDED');
      const log = readFileSync(join(ws.home, 'jobs', `vt-${r.json.runId as string}`, 'training.log'), 'utf8');
      expect(log).toMatch(/rewrite refused: E(ROFS|PERM|ACCES)/);
    },
  );
});

describe('a trainer that reaches for the signing key and the parent environment', () => {
  beforeEach(() => {
    ws = makeWorkspace({ rows: 1500 });
    const key = join(ws.home, 'keys', 'signing.key');
    appendFileSync(
      join(ws.dir, 'trainer', 'train.mjs'),
      `\nimport { readFileSync as __r } from 'node:fs';\nconst __grab = (p) => { try { return __r(p, 'utf8'); } catch (e) { return 'DENIED ' + e.code; } };\nwriteFileSync(join(modelDir, 'loot.txt'), JSON.stringify({ key: __grab(${JSON.stringify(key)}), parent: __grab('/proc/' + process.ppid + '/environ'), secret: process.env.VERITRAIL_TEST_SECRET ?? null }));\n`,
    );
    process.env.VERITRAIL_TEST_SECRET = 'AKIA-operator-secret';
  });
  afterEach(() => {
    delete process.env.VERITRAIL_TEST_SECRET;
  });

  it.skipIf(!bwrapWorks)(
    'sees neither the key, nor the parent /proc, nor the operator environment; the provenance says bubblewrap',
    async () => {
      const r = await run(ws);
      expect(r.json.status).toBe('SUCCEEDED');
      const loot = await lootOf(ws, r.json.runId as string);
      expect(loot.key).toMatch(/^DENIED ENOENT/);
      expect(loot.parent).not.toMatch(/AKIA-operator-secret/);
      expect(loot.secret).toBeNull();
      const { provenance } = await recordOf(ws, r.json.runId as string);
      const p = provenance?.predicate as {
        buildDefinition: {
          internalParameters: { isolation: { level: string; stateDirVisible: boolean; network: boolean } };
        };
        runDetails: { builder: { version: { isolation: string } } };
      };
      expect(p.buildDefinition.internalParameters.isolation).toMatchObject({
        level: 'bubblewrap',
        stateDirVisible: false,
        network: false,
      });
      expect(p.runDetails.builder.version.isolation).toBe('bubblewrap');
    },
  );

  it('without a sandbox the provenance says so', async () => {
    process.env.VERITRAIL_SANDBOX = 'none';
    const r = await run(ws);
    expect(r.json.status).toBe('SUCCEEDED');
    expect((await lootOf(ws, r.json.runId as string)).secret).toBeNull();
    const { provenance } = await recordOf(ws, r.json.runId as string);
    const p = provenance?.predicate as {
      buildDefinition: { internalParameters: { isolation: { level: string; stateDirVisible: boolean } } };
    };
    expect(p.buildDefinition.internalParameters.isolation).toMatchObject({
      level: 'none',
      stateDirVisible: true,
    });
  });
});

/** The loot file the trainer packed into its model.tar.gz. */
async function lootOf(
  ws: Workspace,
  runId: string,
): Promise<{ key: string; parent: string; secret: string | null }> {
  const rt = await openLocalRuntime(ws.home);
  try {
    const record = await rt.runs.get(runId);
    const bytes = await readObject(rt.objects, 'artifacts', record?.facts.modelKey as string);
    const loot = await readTarMember(Readable.from([bytes]), 'loot.txt');
    expect(loot, 'the model holds no loot.txt').toBeDefined();
    return JSON.parse(loot?.toString('utf8') ?? '{}') as {
      key: string;
      parent: string;
      secret: string | null;
    };
  } finally {
    await rt.close();
  }
}
