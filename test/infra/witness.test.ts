/**
 * The Witness stack (stacks/Witness.ts) as synthesized: `VERITRAIL_WITNESS=stack` (a witness of this
 * app's log, plus an external witness) and `only` (a witness alone, for a log in another account),
 * each by `npm run synth` in a child process (SST keeps one app per process; settings are read from
 * the environment). What it grants, who may sign with its key, how it is reached, and that the
 * checkpointing functions, and only they, are handed its URL and vkey. Settings are checked too.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { formatVkey, witnessKeyOf } from '../../src/core/cosignature.js';
import { FUNCTION_NAMES } from '../../stacks/access.js';
import { RESOURCE_STAR_ONLY_ACTIONS } from '../../stacks/grants.js';
import { StackSettingsError, WITNESS_RESERVED_CONCURRENCY, witnessSettings } from '../../stacks/settings.js';
import { WITNESSED_FUNCTIONS } from '../../stacks/Witness.js';
import {
  actionsOf,
  flat,
  type Json,
  resourcesOf,
  statementsIn,
  statementsOf,
  type Template,
} from './helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const FIXTURES = path.join(ROOT, 'test/infra/fixtures/pipelines');
const work = mkdtempSync(path.join(tmpdir(), 'veritrail-witness-infra-'));

const externalKey = generateKeyPairSync('ed25519')
  .privateKey.export({ type: 'pkcs8', format: 'pem' })
  .toString();
const EXTERNAL = {
  vkey: formatVkey(witnessKeyOf('witness.example.org/w1', externalKey)),
  url: 'https://witness.example.org/w1/',
};
const LOG_PEM = path.join(work, 'checkpoint.pem');
writeFileSync(
  LOG_PEM,
  generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .publicKey.export({ type: 'spki', format: 'pem' })
    .toString(),
);
const ORIGIN = 'veritrail.aws/prod-veritrail-storage-auditbucket-abc123';

type Templates = Record<string, Template & { Outputs?: Record<string, Json> }>;

async function synth(stage: string, env: Record<string, string>): Promise<Templates> {
  const out = path.join(work, stage);
  const clean = { ...process.env };
  for (const k of Object.keys(clean)) if (k.startsWith('VERITRAIL_') || k.startsWith('AWS_')) delete clean[k];
  await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'scripts/synth.ts', '--stage', stage, '--out', out],
    {
      cwd: ROOT,
      env: { ...clean, AWS_EC2_METADATA_DISABLED: 'true', VERITRAIL_PIPELINES_DIR: FIXTURES, ...env },
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  const templates: Templates = {};
  for (const f of readdirSync(out).filter((f) => f.endsWith('.template.json'))) {
    templates[f.replace(/^.*-veritrail-|\.template\.json$/g, '')] = JSON.parse(
      readFileSync(path.join(out, f), 'utf8'),
    );
  }
  return templates;
}

let stack: Templates;
let only: Templates;

beforeAll(async () => {
  [stack, only] = await Promise.all([
    synth('wstack', {
      VERITRAIL_WITNESS: 'stack',
      VERITRAIL_EXTERNAL_WITNESSES: JSON.stringify({ witnesses: [EXTERNAL] }),
    }),
    synth('wonly', {
      VERITRAIL_WITNESS: 'only',
      VERITRAIL_WITNESS_NAME: 'witness.example.org/veritrail',
      VERITRAIL_WITNESS_LOG_ORIGIN: ORIGIN,
      VERITRAIL_WITNESS_LOG_KEYS: LOG_PEM,
    }),
  ]);
}, 600_000);

const resources = (t: Template | undefined, type: string) =>
  Object.entries(t?.Resources ?? {}).filter(([, r]) => r.Type === type);
const one = (t: Template | undefined, type: string) => {
  const found = resources(t, type);
  expect(found, type).toHaveLength(1);
  return found[0] as [string, { Type: string; Properties?: Record<string, Json> }];
};

describe('the Witness stack of this app (VERITRAIL_WITNESS=stack)', () => {
  const witness = () => stack.Witness;

  it('is one Node 22 arm64 function, traced, with reserved concurrency and JSON logs into its own encrypted group', () => {
    const [, fn] = one(witness(), 'AWS::Lambda::Function');
    const p = fn.Properties ?? {};
    expect(p.Runtime).toBe('nodejs22.x');
    expect(p.Architectures).toEqual(['arm64']);
    expect(p.TracingConfig).toEqual({ Mode: 'Active' });
    expect(p.ReservedConcurrentExecutions).toBe(WITNESS_RESERVED_CONCURRENCY);
    const [groupId, group] = one(witness(), 'AWS::Logs::LogGroup');
    expect(flat((p.LoggingConfig as Record<string, Json>).LogGroup)).toBe(groupId);
    expect(group.Properties?.RetentionInDays).toBe(365);
    expect(flat(group.Properties?.KmsKeyId)).toBe('GetAtt:WitnessStorageKey.Arn');
  });

  it('is reached through a function URL with auth NONE, invocable only through that URL', () => {
    const [, url] = one(witness(), 'AWS::Lambda::Url');
    expect(url.Properties?.AuthType).toBe('NONE');
    expect(url.Properties?.Cors).toBeUndefined();
    const permissions = resources(witness(), 'AWS::Lambda::Permission').map(([, r]) => r.Properties);
    expect(permissions).toHaveLength(2);
    expect(permissions).toContainEqual(
      expect.objectContaining({
        Action: 'lambda:InvokeFunctionUrl',
        Principal: '*',
        FunctionUrlAuthType: 'NONE',
      }),
    );
    expect(permissions).toContainEqual(
      expect.objectContaining({
        Action: 'lambda:InvokeFunction',
        Principal: '*',
        InvokedViaFunctionUrl: true,
      }),
    );
  });

  it('signs with a KMS Ed25519 key that only its role may Sign with, and only as pure Ed25519', () => {
    const keys = resources(witness(), 'AWS::KMS::Key');
    const signing = keys.find(([id]) => id === 'WitnessSigningKey')?.[1];
    expect(signing?.Properties?.KeySpec).toBe('ECC_NIST_EDWARDS25519');
    expect(signing?.Properties?.KeyUsage).toBe('SIGN_VERIFY');
    const statements = statementsOf(signing?.Properties?.KeyPolicy);
    const signers = statements.filter((s) => actionsOf(s).includes('kms:Sign'));
    expect(signers).toHaveLength(1);
    const [roleId] = one(witness(), 'AWS::IAM::Role');
    expect(flat(signers[0]?.Principal)).toBe(`GetAtt:${roleId}.Arn`);
    expect(signers[0]?.Condition).toEqual({ StringEquals: { 'kms:SigningAlgorithm': 'ED25519_SHA_512' } });
    // Nobody may export or use it otherwise: no kms:* and no other use action anywhere in its policy.
    const uses = statements
      .flatMap(actionsOf)
      .filter((a) => /^kms:(Sign|Decrypt|Encrypt|GenerateDataKey|ReEncrypt|\*)/.test(a));
    expect(uses).toEqual(['kms:Sign']);
    for (const [, key] of keys) expect((key as { DeletionPolicy?: string }).DeletionPolicy).toBe('Retain');
  });

  it('keeps its state in its own table: PITR, deletion protection, its own key, retained', () => {
    const [, table] = one(witness(), 'AWS::DynamoDB::Table');
    const p = table.Properties ?? {};
    expect(p.KeySchema).toEqual([{ AttributeName: 'origin', KeyType: 'HASH' }]);
    expect(p.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(p.DeletionProtectionEnabled).toBe(true);
    expect(flat((p.SSESpecification as Record<string, Json>).KMSMasterKeyId)).toBe(
      'GetAtt:WitnessStorageKey.Arn',
    );
    expect((table as { DeletionPolicy?: string }).DeletionPolicy).toBe('Retain');
  });

  it('grants its role exactly: its log group, GetItem/PutItem on its table, its two keys, GetPublicKey of the log key', () => {
    const [, grants] =
      resources(witness(), 'AWS::IAM::Policy').find(([id]) => id.startsWith('Grantswitness')) ?? [];
    const bySid = Object.fromEntries(
      statementsOf(grants?.Properties?.PolicyDocument).map((s) => [
        String(s.Sid),
        { actions: actionsOf(s), resources: resourcesOf(s).map(flat) },
      ]),
    );
    expect(bySid).toEqual({
      OwnLogGroup: {
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [expect.stringMatching(/^GetAtt:Logswitness.*\.Arn$/)],
      },
      WitnessState: {
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem'],
        resources: [expect.stringMatching(/^GetAtt:WitnessState.*\.Arn$/)],
      },
      StorageKey: {
        actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey'],
        resources: ['GetAtt:WitnessStorageKey.Arn'],
      },
      Cosign: { actions: ['kms:Sign', 'kms:GetPublicKey'], resources: ['GetAtt:WitnessSigningKey.Arn'] },
      ReadTheLogKey: {
        actions: ['kms:GetPublicKey'],
        resources: [expect.stringMatching(/Keys:ExportsOutputFnGetAttCheckpointKeyArn/)],
      },
    });
  });

  it('trusts this app’s log: its origin from the audit bucket, its checkpoint key by ARN', () => {
    const [, fn] = one(witness(), 'AWS::Lambda::Function');
    const env = envOf(fn);
    const logs = flat(env.VERITRAIL_WITNESS_LOGS);
    expect(logs).toMatch(
      /^\{"logs":\[\{"origin":"veritrail\.aws\/.*Storage:ExportsOutputRefauditBucket.*"keyArns":\["wstack-veritrail-Keys:ExportsOutputFnGetAttCheckpointKeyArn.*"\]\}\]\}$/,
    );
    expect(env.VERITRAIL_WITNESS_NAME).toBe('veritrail.aws/wstack/witness');
    expect(flat(env.VERITRAIL_WITNESS_KEY_ARN)).toBe('GetAtt:WitnessSigningKey.Arn');
  });

  it('gets its vkey from its own function at deploy time, and publishes it with the URL', () => {
    const [, vkey] = one(witness(), 'AWS::CloudFormation::CustomResource');
    const [fnId] = one(witness(), 'AWS::Lambda::Function');
    expect(flat(vkey.Properties?.ServiceToken)).toBe(`GetAtt:${fnId}.Arn`);
    const params = Object.fromEntries(
      resources(witness(), 'AWS::SSM::Parameter')
        .map(([, r]): [string, string] => [String(r.Properties?.Name), flat(r.Properties?.Value)])
        .filter(([name]) => name.startsWith('/veritrail/')),
    );
    expect(params['/veritrail/wstack/witness-vkey']).toBe('GetAtt:WitnessVkey.Vkey');
    expect(params['/veritrail/wstack/witness-url']).toMatch(/^GetAtt:witnessFunctionUrl.*\.FunctionUrl$/);
  });

  it('hands its URL and vkey, and the external witness, to finish, record-failure and reconcile only', () => {
    const fns = resources(stack.Pipeline, 'AWS::Lambda::Function');
    expect(fns).toHaveLength(FUNCTION_NAMES.length);
    const withWitnesses = fns.filter(([, r]) => envOf(r).VERITRAIL_WITNESSES);
    // Logical ids are the function names without "-", then CDK's 8-character hash.
    expect(withWitnesses.map(([id]) => id.slice(0, -8)).sort()).toEqual(
      WITNESSED_FUNCTIONS.map((n) => n.replace(/-/g, '')).sort(),
    );
    for (const [, r] of withWitnesses) {
      const value = envOf(r).VERITRAIL_WITNESSES;
      // {"witnesses":[{"vkey":<Witness stack's vkey>,"url":<its function URL>},{external}]}
      expect(flat(value)).toBe(
        `{"witnesses":[{"vkey":"wstack-veritrail-Witness:ExportsOutputFnGetAttWitnessVkeyVkey${exportSuffix(value, 'WitnessVkeyVkey')}","url":"wstack-veritrail-Witness:ExportsOutputFnGetAttwitnessFunctionUrl${exportSuffix(value, 'witnessFunctionUrl')}"},${JSON.stringify(EXTERNAL)}]}`,
      );
    }
  });

  it('adds no wildcard action, and Resource "*" only where AWS accepts nothing narrower', () => {
    const allows = statementsIn(stack).filter(
      (s) => s.statement.Effect === 'Allow' && s.type !== 'AWS::KMS::Key',
    );
    expect(allows.filter((s) => s.stack === 'Witness').length).toBeGreaterThan(0);
    const wildcardActions = allows
      .filter((s) => !actionsOf(s.statement).includes('sts:AssumeRole'))
      .flatMap((s) => actionsOf(s.statement).filter((a) => a.includes('*')));
    expect(wildcardActions).toEqual([]);
    const star = new Set<string>(RESOURCE_STAR_ONLY_ACTIONS);
    const offenders = allows
      .filter((s) => s.stack === 'Witness' && resourcesOf(s.statement).includes('*'))
      .flatMap((s) => actionsOf(s.statement).filter((a) => !star.has(a)));
    expect(offenders).toEqual([]);
  });
});

/** A function resource's environment variables. */
function envOf(fn: { Properties?: Record<string, Json> }): Record<string, Json> {
  const env = fn.Properties?.Environment as { Variables?: Record<string, Json> } | undefined;
  return env?.Variables ?? {};
}

/** The suffix CDK gives an export name (a hash), read from the value itself. */
function exportSuffix(value: Json | undefined, after: string): string {
  const m = new RegExp(`${after}([A-Za-z0-9]+)`).exec(flat(value));
  return m?.[1] ?? 'missing';
}

describe('a witness alone, for a log in another account (VERITRAIL_WITNESS=only)', () => {
  it('is the whole app: one stack, importing nothing, trusting the PEM it was given for the origin', () => {
    expect(Object.keys(only)).toEqual(['Witness']);
    expect(JSON.stringify(only.Witness)).not.toContain('Fn::ImportValue');
    const [, fn] = one(only.Witness, 'AWS::Lambda::Function');
    const env = envOf(fn);
    expect(env.VERITRAIL_WITNESS_NAME).toBe('witness.example.org/veritrail');
    expect(JSON.parse(String(env.VERITRAIL_WITNESS_LOGS))).toEqual({
      logs: [{ origin: ORIGIN, publicKeys: [readFileSync(LOG_PEM, 'utf8')] }],
    });
    const grants = resources(only.Witness, 'AWS::IAM::Policy').find(([id]) =>
      id.startsWith('Grantswitness'),
    )?.[1];
    expect(statementsOf(grants?.Properties?.PolicyDocument).map((s) => s.Sid)).toEqual([
      'OwnLogGroup',
      'WitnessState',
      'StorageKey',
      'Cosign',
    ]);
  });
});

describe('witness settings', () => {
  const refused = (env: NodeJS.ProcessEnv, message: RegExp) => {
    let error: unknown;
    try {
      witnessSettings(env, work);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StackSettingsError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain('\n');
  };

  it('is off by default, and reads stack, only and external witnesses', () => {
    expect(witnessSettings({}, work)).toEqual({ mode: 'off', external: [] });
    expect(
      witnessSettings({ VERITRAIL_WITNESS: 'stack', VERITRAIL_WITNESS_NAME: 'example.org/w' }, work),
    ).toEqual({
      mode: 'stack',
      name: 'example.org/w',
      external: [],
    });
    expect(
      witnessSettings({ VERITRAIL_EXTERNAL_WITNESSES: JSON.stringify({ witnesses: [EXTERNAL] }) }, work)
        .external,
    ).toEqual([EXTERNAL]);
    const o = witnessSettings(
      {
        VERITRAIL_WITNESS: 'only',
        VERITRAIL_WITNESS_LOG_ORIGIN: ORIGIN,
        VERITRAIL_WITNESS_LOG_KEYS: 'checkpoint.pem',
      },
      work,
    );
    expect(o.log).toEqual({ origin: ORIGIN, publicKeys: [readFileSync(LOG_PEM, 'utf8')] });
  });

  it.each([
    [{ VERITRAIL_WITNESS: 'yes' }, /VERITRAIL_WITNESS must be "off"/],
    [
      { VERITRAIL_WITNESS: 'stack', VERITRAIL_WITNESS_NAME: 'a+b' },
      /VERITRAIL_WITNESS_NAME must be a key name/,
    ],
    [{ VERITRAIL_WITNESS_NAME: 'example.org/w' }, /VERITRAIL_WITNESS is off/],
    [{ VERITRAIL_WITNESS: 'only' }, /needs VERITRAIL_WITNESS_LOG_ORIGIN/],
    [
      {
        VERITRAIL_WITNESS: 'only',
        VERITRAIL_WITNESS_LOG_ORIGIN: ORIGIN,
        VERITRAIL_WITNESS_LOG_KEYS: 'missing.pem',
      },
      /not a readable public key/,
    ],
    [
      { VERITRAIL_WITNESS: 'stack', VERITRAIL_WITNESS_LOG_ORIGIN: ORIGIN },
      /only read with VERITRAIL_WITNESS=only/,
    ],
    [
      { VERITRAIL_EXTERNAL_WITNESSES: '{"witnesses":[{"vkey":"x","url":"https://w/"}]}' },
      /VERITRAIL_EXTERNAL_WITNESSES: /,
    ],
    [
      {
        VERITRAIL_EXTERNAL_WITNESSES: JSON.stringify({
          witnesses: [{ ...EXTERNAL, url: 'http://w.example/' }],
        }),
      },
      /over HTTPS/,
    ],
    [{ VERITRAIL_WITNESS: 'stack', VERITRAIL_VPC_MODE: 'isolated' }, /no route out/],
  ] as [NodeJS.ProcessEnv, RegExp][])('refuses %o in one line', (env, message) => refused(env, message));

  it('refuses a log key that is not P-256', () => {
    const ed = path.join(work, 'ed.pem');
    writeFileSync(
      ed,
      generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    );
    refused(
      { VERITRAIL_WITNESS: 'only', VERITRAIL_WITNESS_LOG_ORIGIN: ORIGIN, VERITRAIL_WITNESS_LOG_KEYS: ed },
      /not an ECDSA P-256/,
    );
  });
});
