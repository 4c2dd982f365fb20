/**
 * Business units on AWS, one stage per unit (stacks/units.ts, docs/units.md "On AWS"): the app
 * synthesized twice from one pipelines folder and one units file (test/infra/fixtures/units), for
 * unit credit (stage test-credit) and unit medical (stage test-medical), as `sst deploy` would with
 * VERITRAIL_UNIT set. The two stages share no name, key, bucket or role; no policy of one names the
 * other's resources; each carries its unit's settings; and bad unit settings are refused with one line.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkUnitStage, deployedPipelines, deployedUnit, UNIT_TAG } from '../../stacks/units.js';
import { flat, type Json, statementsIn, type Template } from './helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const FIXTURES = path.join(ROOT, 'test/infra/fixtures/units');
const UNITS_FILE = path.join(FIXTURES, 'units.json');
const PIPELINES = path.join(FIXTURES, 'pipelines');

const UNITS = {
  credit: { stage: 'test-credit', pipeline: 'credit-scoring', retention: 2555 },
  medical: { stage: 'test-medical', pipeline: 'diagnosis', retention: 3650 },
} as const;
type UnitName = keyof typeof UNITS;
const other = (u: UnitName): UnitName => (u === 'credit' ? 'medical' : 'credit');

/** A clean environment: no AWS credentials, no deploy setting of the caller's shell. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('VERITRAIL_') || k.startsWith('AWS_')) delete env[k];
  return { ...env, AWS_EC2_METADATA_DISABLED: 'true', NODE_OPTIONS: '', ...extra };
}

async function synth(
  stage: string,
  env: Record<string, string>,
): Promise<{ stacks: Record<string, Template & { Outputs?: Record<string, Json> }> }> {
  const out = mkdtempSync(path.join(tmpdir(), `vt-units-${stage}-`));
  await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'scripts/synth.ts', '--stage', stage, '--out', out],
    { cwd: ROOT, env: cleanEnv(env), maxBuffer: 64 * 1024 * 1024 },
  );
  const stacks: Record<string, Template> = {};
  for (const f of readdirSync(out).filter((n) => n.endsWith('.template.json')))
    stacks[f.replace(/\.template\.json$/, '')] = JSON.parse(
      readFileSync(path.join(out, f), 'utf8'),
    ) as Template;
  return { stacks };
}

const apps = {} as Record<UnitName, Awaited<ReturnType<typeof synth>>>;
let synthMs = 0;
/** The stderr of a synth for a unit the units file does not declare (it must fail). */
let refusedSynth: string | undefined;

beforeAll(async () => {
  const started = performance.now();
  const [credit, medical, refused] = await Promise.all([
    ...(['credit', 'medical'] as const).map((u) =>
      synth(UNITS[u].stage, {
        VERITRAIL_UNIT: u,
        VERITRAIL_UNITS_FILE: UNITS_FILE,
        VERITRAIL_PIPELINES_DIR: PIPELINES,
      }),
    ),
    synth('test-marketing', {
      VERITRAIL_UNIT: 'marketing',
      VERITRAIL_UNITS_FILE: UNITS_FILE,
      VERITRAIL_PIPELINES_DIR: PIPELINES,
    }).then(
      () => 'the synth of an undeclared unit succeeded',
      (e: { stderr?: string }) => e.stderr ?? '',
    ),
  ]);
  refusedSynth = refused as string;
  apps.credit = credit as (typeof apps)['credit'];
  apps.medical = medical as (typeof apps)['medical'];
  synthMs = performance.now() - started;
}, 180_000);

const resources = (u: UnitName) =>
  Object.entries(apps[u].stacks).flatMap(([stack, t]) =>
    Object.entries(t.Resources).map(([id, r]) => ({ stack, id, type: r.Type, props: r.Properties ?? {} })),
  );
const ofType = (u: UnitName, type: string) => resources(u).filter((r) => r.type === type);

describe('two units, two stages', () => {
  it('synthesizes both units', () => {
    console.info(`[units] synthesized test-credit and test-medical in ${Math.round(synthMs)} ms`);
    for (const u of ['credit', 'medical'] as const) {
      expect(Object.keys(apps[u].stacks).sort()).toEqual(
        ['Auditor', 'Database', 'Identity', 'Keys', 'Pipeline', 'Storage', 'Triggers'].map(
          (s) => `${UNITS[u].stage}-veritrail-${s}`,
        ),
      );
    }
  });

  it('deploys only its own unit’s pipelines', () => {
    for (const u of ['credit', 'medical'] as const) {
      const rules = ofType(u, 'AWS::Events::Rule').map((r) => r.id);
      const landing = rules.filter((id) => id.startsWith('Landing'));
      expect(landing, u).toHaveLength(1);
      expect(landing[0]?.toLowerCase(), u).toContain(UNITS[u].pipeline.replace(/-/g, ''));
      const sagemakerRoles = ofType(u, 'AWS::IAM::Role').filter((r) => r.id.startsWith('SageMaker'));
      expect(
        sagemakerRoles.map((r) => flat(r.props.Description as Json)),
        u,
      ).toEqual([expect.stringContaining(`pipeline ${UNITS[u].pipeline}`)]);
    }
  });

  it('tags every taggable resource veritrail:unit=<unit>', () => {
    for (const u of ['credit', 'medical'] as const) {
      // Resource types whose CloudFormation schema has Tags: every one of them must carry the unit.
      const taggable = [
        'AWS::KMS::Key',
        'AWS::S3::Bucket',
        'AWS::DynamoDB::Table',
        'AWS::IAM::Role',
        'AWS::Lambda::Function',
        'AWS::StepFunctions::StateMachine',
        'AWS::SQS::Queue',
        'AWS::CloudTrail::Trail',
        'AWS::Logs::LogGroup',
        'AWS::Backup::BackupVault',
      ];
      const found = resources(u).filter((r) => taggable.includes(r.type));
      expect(found.length, u).toBeGreaterThan(40);
      for (const r of found) {
        const tags = (r.props.Tags ?? r.props.BackupVaultTags ?? []) as Json;
        const value = Array.isArray(tags)
          ? (tags as { Key: string; Value: string }[]).find((t) => t.Key === UNIT_TAG)?.Value
          : (tags as Record<string, string>)[UNIT_TAG];
        expect(value, `${u}: ${r.stack}/${r.id} (${r.type})`).toBe(u);
      }
    }
  });

  it('share no resource name, key alias, parameter, bucket, table or role', () => {
    const names = (u: UnitName) => {
      const set = new Set<string>();
      for (const r of resources(u)) {
        for (const k of [
          'RoleName',
          'TableName',
          'BucketName',
          'StateMachineName',
          'AliasName',
          'Name',
          'BackupVaultName',
          'TrailName',
          'QueueName',
          'FunctionName',
        ]) {
          const v = r.props[k];
          if (typeof v === 'string') set.add(`${r.type}:${v}`);
        }
      }
      return set;
    };
    const credit = names('credit');
    const medical = names('medical');
    expect(credit.size).toBeGreaterThan(10);
    expect([...credit].filter((n) => medical.has(n))).toEqual([]);
    // Everything else is named by CloudFormation after its stack (`<stage>-veritrail-<Stack>-…`).
    const stackNames = (u: UnitName) => Object.keys(apps[u].stacks);
    expect(stackNames('credit').filter((s) => stackNames('medical').includes(s))).toEqual([]);
  });

  it('no statement of one unit names the other unit’s stage, pipelines or prefixes', () => {
    for (const u of ['credit', 'medical'] as const) {
      const them = UNITS[other(u)];
      const offenders = statementsIn(apps[u].stacks)
        .map((s) => ({ where: `${s.stack}/${s.resource}`, text: flat(s.statement) }))
        .filter(
          ({ text }) =>
            text.includes(them.stage) ||
            text.includes(`veritrail-${them.pipeline}`) ||
            text.includes(`/${them.pipeline}/`) ||
            text.includes(`${them.pipeline}/*`),
        );
      expect(offenders, u).toEqual([]);
      // Cross-stack references go only to this stage's own stacks.
      const imports = JSON.stringify(apps[u].stacks).match(/"Fn::ImportValue":"[^"]+"/g) ?? [];
      expect(imports.length, u).toBeGreaterThan(10);
      expect(
        imports.filter((i) => !i.includes(`"Fn::ImportValue":"${UNITS[u].stage}-veritrail-`)),
        u,
      ).toEqual([]);
    }
  });

  it('the only resource patterns both units’ policies hold are the account-wide SageMaker names, listed in docs/units.md', () => {
    // A wildcard resource matches whatever the account holds under it. Those both stages grant are
    // SageMaker job and model names (`vt-*`, `vts-*`) and SageMaker's own log groups: docs/units.md
    // "What is shared" names them. A new shared pattern fails here until it is written down there.
    // A pattern built on a reference (Ref, Fn::GetAtt, Fn::ImportValue) names this stage's own
    // resource; one built only of literals and pseudo parameters names whatever the account holds.
    const literal = (r: Json | undefined) => {
      const text = JSON.stringify(r ?? null);
      return (
        !/"Fn::(GetAtt|ImportValue)"/.test(text) &&
        [...text.matchAll(/"Ref":"([^"]+)"/g)].every((m) => m[1]?.startsWith('AWS::'))
      );
    };
    const patterns = (u: UnitName) =>
      new Set(
        statementsIn(apps[u].stacks)
          .filter((s) => s.statement.Effect === 'Allow' && s.type !== 'AWS::KMS::Key')
          .flatMap((s) => {
            const r = s.statement.Resource;
            return (Array.isArray(r) ? r : [r]) as Json[];
          })
          .filter((r) => literal(r))
          .map((r) => flat(r))
          .filter((r) => r.includes('*') && r !== '*'),
      );
    const credit = patterns('credit');
    const shared = [...patterns('medical')]
      .filter((p) => credit.has(p))
      .map((p) => p.replace(/^.*?:\d{12}:/, ''));
    expect(shared.sort()).toEqual([
      'log-group:/aws/sagemaker/TrainingJobs:*',
      'log-group:/aws/sagemaker/TransformJobs:*',
      'model/vts-*',
      'training-job/vt-*',
      'transform-job/vts-*',
    ]);
    const units = readFileSync(path.join(ROOT, 'docs/units.md'), 'utf8');
    for (const p of ['training-job/vt-*', 'transform-job/vts-*', 'model/vts-*', '/aws/sagemaker/'])
      expect(units, `docs/units.md names ${p}`).toContain(p);
  });

  it('each unit’s signing keys may be used only by that unit’s roles', () => {
    for (const u of ['credit', 'medical'] as const) {
      const keys = ofType(u, 'AWS::KMS::Key');
      expect(keys.map((k) => k.id).sort()).toEqual(['AttestationKey', 'CheckpointKey', 'DataKey']);
      for (const k of keys) {
        const doc = flat(k.props.KeyPolicy as Json);
        expect(doc, `${u} ${k.id}`).not.toContain(UNITS[other(u)].stage);
        expect(doc, `${u} ${k.id}`).toContain(`${UNITS[u].stage}-veritrail-Identity`);
      }
      const aliases = ofType(u, 'AWS::KMS::Alias')
        .map((a) => String(a.props.AliasName))
        .sort();
      expect(aliases).toEqual(
        ['attestation', 'checkpoint', 'data'].map((k) => `alias/veritrail/${UNITS[u].stage}/${k}`),
      );
    }
  });

  it('locks each unit’s audit entries, trail and backups for that unit’s auditRetentionDays', () => {
    for (const u of ['credit', 'medical'] as const) {
      const days = UNITS[u].retention;
      const locked = ofType(u, 'AWS::S3::Bucket').filter((b) => b.props.ObjectLockEnabled);
      expect(locked.length, u).toBe(2); // audit and trail
      for (const b of locked)
        expect(
          (b.props.ObjectLockConfiguration as { Rule: { DefaultRetention: { Days: number; Mode: string } } })
            .Rule.DefaultRetention,
          `${u} ${b.id}`,
        ).toEqual({ Mode: 'COMPLIANCE', Days: days });
      const vault = ofType(u, 'AWS::Backup::BackupVault')[0];
      expect(
        (vault?.props.LockConfiguration as { MinRetentionDays?: number } | undefined)?.MinRetentionDays,
      ).toBe(days);
      for (const fn of ofType(u, 'AWS::Lambda::Function')) {
        const env = (fn.props.Environment as { Variables: Record<string, Json> }).Variables;
        expect(env.VERITRAIL_AUDIT_RETENTION_DAYS, `${u} ${fn.id}`).toBe(String(days));
      }
    }
  });

  it('publishes the unit (and its approvers) under /veritrail/<stage>/', () => {
    const params = (u: UnitName) =>
      Object.fromEntries(
        ofType(u, 'AWS::SSM::Parameter').map((p) => [String(p.props.Name), p.props.Value as Json]),
      );
    expect(params('credit')['/veritrail/test-credit/unit']).toBe('credit');
    expect(params('credit')['/veritrail/test-credit/unit-approvers']).toBe(
      'arn:aws:iam::123456789012:role/credit-model-risk,risk-officer@example.com',
    );
    expect(params('credit')).toHaveProperty(['/veritrail/test-credit/model-approval-role-arn']);
    expect(params('medical')['/veritrail/test-medical/unit']).toBe('medical');
    expect(params('medical')['/veritrail/test-medical/unit-approvers']).toBe('clinical-safety@example.com');
    // No approver of medical is an IAM principal: recorded only, no approval role.
    expect(params('medical')).not.toHaveProperty(['/veritrail/test-medical/model-approval-role-arn']);
    expect(ofType('medical', 'AWS::IAM::Role').filter((r) => r.id.startsWith('ModelApproval'))).toEqual([]);
  });

  it('gives credit’s approvers a role only they may assume, able to approve only credit’s model versions', () => {
    const role = ofType('credit', 'AWS::IAM::Role').find((r) => r.id.startsWith('ModelApproval'));
    expect(role).toBeDefined();
    const trust = (role?.props.AssumeRolePolicyDocument as { Statement?: Record<string, Json>[] } | undefined)
      ?.Statement;
    expect(trust).toEqual([
      {
        Action: 'sts:AssumeRole',
        Effect: 'Allow',
        Principal: { AWS: 'arn:aws:iam::123456789012:role/credit-model-risk' },
      },
    ]);
    const policy = ofType('credit', 'AWS::IAM::Policy').find((p) => p.id.startsWith('Grantsmodelapproval'));
    const statements = (policy?.props.PolicyDocument as { Statement?: Record<string, Json>[] } | undefined)
      ?.Statement;
    expect(statements?.map((s) => [s.Action, flat(s.Resource)])).toEqual([
      [
        ['sagemaker:UpdateModelPackage', 'sagemaker:DescribeModelPackage'],
        expect.stringMatching(/:model-package\/veritrail-credit-scoring\/\*$/),
      ],
      [
        'sagemaker:DescribeModelPackageGroup',
        expect.stringMatching(/:model-package-group\/veritrail-credit-scoring$/),
      ],
    ]);
    // The register function of each unit registers only in its own unit's groups.
    for (const u of ['credit', 'medical'] as const) {
      const register = statementsIn(apps[u].stacks).find((s) => s.statement.Sid === 'RegisterModels');
      expect(flat(register?.statement.Resource), u).toContain(
        `model-package-group/veritrail-${UNITS[u].pipeline}`,
      );
      expect(flat(register?.statement.Resource), u).not.toContain('veritrail-*');
    }
  });
});

describe('unit settings refused with one line', () => {
  const env = (extra: Record<string, string>): NodeJS.ProcessEnv => ({
    VERITRAIL_UNITS_FILE: UNITS_FILE,
    VERITRAIL_PIPELINES_DIR: PIPELINES,
    ...extra,
  });
  const refusal = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      const message = (e as Error).message;
      expect(message.split('\n')).toHaveLength(1);
      expect((e as { name?: string }).name).toBe('StackSettingsError');
      return message;
    }
    throw new Error('not refused');
  };

  it('an unknown VERITRAIL_UNIT', () => {
    expect(refusal(() => deployedUnit(env({ VERITRAIL_UNIT: 'marketing' })))).toMatch(
      /^VERITRAIL_UNIT=marketing is not a unit declared in .*units\.json \(declared: credit, medical, fraud\)\. Set it to one of them, or declare it there\.$/,
    );
    expect(refusal(() => deployedUnit(env({ VERITRAIL_UNIT: 'Credit!' })))).toMatch(
      /^VERITRAIL_UNIT "Credit!"/,
    );
    // Without a units file only `default` exists.
    expect(refusal(() => deployedUnit({ VERITRAIL_UNIT: 'credit', VERITRAIL_UNITS_FILE: '' }))).toMatch(
      /there is no units file .* only the unit "default" exists/,
    );
  });

  it('a pipeline naming an undeclared unit (and one naming none once units are declared)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vt-units-undeclared-'));
    const def = JSON.parse(readFileSync(path.join(PIPELINES, 'diagnosis.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    writeFileSync(
      path.join(dir, 'campaigns.json'),
      JSON.stringify({ ...def, name: 'campaigns', unit: 'marketing' }),
    );
    writeFileSync(
      path.join(dir, 'credit-scoring.json'),
      readFileSync(path.join(PIPELINES, 'credit-scoring.json')),
    );
    expect(
      refusal(() => deployedPipelines(env({ VERITRAIL_UNIT: 'credit', VERITRAIL_PIPELINES_DIR: dir }))),
    ).toMatch(
      /^pipeline campaigns \(.*campaigns\.json\) names unit "marketing", which .*units\.json does not declare\. Declare it there, or set the pipeline's "unit" to a declared unit\.$/,
    );
    const { unit: _unit, ...unitless } = def;
    const dir2 = mkdtempSync(path.join(tmpdir(), 'vt-units-unitless-'));
    writeFileSync(path.join(dir2, 'diagnosis.json'), JSON.stringify(unitless));
    expect(
      refusal(() => deployedPipelines(env({ VERITRAIL_UNIT: 'credit', VERITRAIL_PIPELINES_DIR: dir2 }))),
    ).toMatch(
      /^pipeline diagnosis .* names no unit, so belongs to unit "default", which .* does not declare/,
    );
    // Without a units file, a pipeline naming a unit is refused too.
    const dir3 = mkdtempSync(path.join(tmpdir(), 'vt-units-nofile-'));
    mkdirSync(path.join(dir3, 'diagnosis'));
    writeFileSync(path.join(dir3, 'diagnosis', 'pipeline.json'), JSON.stringify(def));
    expect(
      refusal(() => deployedPipelines({ VERITRAIL_PIPELINES_DIR: dir3, VERITRAIL_UNITS_FILE: '' })),
    ).toMatch(/^pipeline diagnosis .* names unit "medical", but there is no units file/);
  });

  it('a unit with no pipeline', () => {
    expect(refusal(() => deployedPipelines(env({ VERITRAIL_UNIT: 'fraud' })))).toMatch(
      /^unit fraud has no pipeline among the 2 definition\(s\) of the pipelines folder \(none with "unit": "fraud"\)\. Add one, or deploy another unit \(VERITRAIL_UNIT\)\.$/,
    );
  });

  it('a missing units file named by VERITRAIL_UNITS_FILE, a retention that contradicts the units file, an approver ARN that is not a principal, a stage without the unit’s name', () => {
    expect(refusal(() => deployedUnit({ VERITRAIL_UNITS_FILE: '/nonexistent/units.json' }))).toMatch(
      /^VERITRAIL_UNITS_FILE \/nonexistent\/units\.json does not exist/,
    );
    expect(
      refusal(() => deployedUnit(env({ VERITRAIL_UNIT: 'credit', VERITRAIL_AUDIT_RETENTION_DAYS: '30' }))),
    ).toMatch(/^VERITRAIL_AUDIT_RETENTION_DAYS=30 contradicts unit credit's auditRetentionDays 2555/);
    expect(
      deployedUnit(env({ VERITRAIL_UNIT: 'credit', VERITRAIL_AUDIT_RETENTION_DAYS: '2555' }))
        .auditRetentionDays,
    ).toBe(2555);
    const dir = mkdtempSync(path.join(tmpdir(), 'vt-units-arn-'));
    const bad = path.join(dir, 'units.json');
    writeFileSync(
      bad,
      JSON.stringify({
        apiVersion: 'veritrail.dev/v1',
        units: [{ name: 'credit', approvers: ['arn:aws:sts::123456789012:assumed-role/risk/alice'] }],
      }),
    );
    expect(refusal(() => deployedUnit({ VERITRAIL_UNIT: 'credit', VERITRAIL_UNITS_FILE: bad }))).toMatch(
      /^approver "arn:aws:sts::123456789012:assumed-role\/risk\/alice" of unit credit .* is an ARN but not an IAM role or user ARN/,
    );
    writeFileSync(bad, '{"apiVersion":"veritrail.dev/v1","units":[{"name":"credit"}]}');
    expect(refusal(() => deployedUnit({ VERITRAIL_UNIT: 'credit', VERITRAIL_UNITS_FILE: bad }))).toMatch(
      /^units file .* is invalid at units\.0\.approvers/,
    );
    expect(refusal(() => checkUnitStage({ name: 'medical' }, 'prod-credit'))).toMatch(
      /^VERITRAIL_UNIT=medical with stage "prod-credit": a unit's stage must carry its name/,
    );
    for (const stage of ['medical', 'prod-medical', 'medical-dev'])
      checkUnitStage({ name: 'medical' }, stage);
    checkUnitStage({ name: 'default' }, 'prod');
  });

  it('without a units file: the default unit, today’s retention setting', () => {
    const unit = deployedUnit({ VERITRAIL_UNITS_FILE: '', VERITRAIL_AUDIT_RETENTION_DAYS: '30' });
    expect(unit).toMatchObject({
      name: 'default',
      declared: ['default'],
      auditRetentionDays: 30,
      approvers: [],
    });
  });

  it('refuses the synth itself with that one line', () => {
    expect(refusedSynth).toMatch(/VERITRAIL_UNIT=marketing is not a unit declared in .*units\.json/);
  });
});
