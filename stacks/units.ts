/**
 * Business units on AWS (docs/units.md "On AWS"): one stage per unit. A deployment is for exactly
 * one unit (VERITRAIL_UNIT, default `default`), deploys only that unit's pipelines, and gets its
 * own roles, keys, buckets, table and audit log, so nothing its roles can name belongs to another
 * unit. Units are declared with their own settings in a units file (VERITRAIL_UNITS_FILE, default
 * `units.json` at the project root, src/core/unit.ts parseUnits); without one only the unit
 * `default` exists, with the deploy settings veritrail had before units. Read at synth time only.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_UNIT, parseUnitName, parseUnits, type UnitSettings, unitOf } from '../src/core/unit.js';
import {
  auditRetentionDays,
  DEFAULT_PIPELINES_DIR,
  type DeployedPipeline,
  loadPipelines,
  StackSettingsError,
} from './settings.js';

/** The units file read when VERITRAIL_UNITS_FILE is unset, relative to the project root. */
export const DEFAULT_UNITS_FILE = 'units.json';

/** The tag every resource of a unit's stage carries (`veritrail:unit=<unit>`). */
export const UNIT_TAG = 'veritrail:unit';

/** An approver named by an IAM role or user ARN: the unit's model-approval role trusts exactly these. */
const IAM_PRINCIPAL_ARN = /^arn:aws[a-z-]*:iam::\d{12}:(role|user)\/[\w+=,.@/-]{1,512}$/;

/** The unit a deployment is for, with the settings it deploys with. */
export interface DeployedUnit {
  name: string;
  /** Where the units were declared; undefined when there is no units file (only `default` exists). */
  unitsFile?: string;
  /** The names of every declared unit (just `default` without a units file). */
  declared: readonly string[];
  /** Object Lock COMPLIANCE retention of the unit's audit entries (and trail, and backups), in days. */
  auditRetentionDays: number;
  /** The approvers as declared (IAM principal ARNs or e-mail addresses); empty without a units file. */
  approvers: readonly string[];
  /** The approvers that are IAM role or user ARNs: the principals the model-approval role trusts. */
  approverArns: readonly string[];
}

function readUnitsFile(env: NodeJS.ProcessEnv): { file: string; units: UnitSettings[] } | undefined {
  const given = env.VERITRAIL_UNITS_FILE || undefined;
  const file = path.resolve(given ?? DEFAULT_UNITS_FILE);
  if (!existsSync(file)) {
    if (given === undefined) return undefined;
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_UNITS_FILE ${file} does not exist. Point it at the units declaration ({"apiVersion":"veritrail.dev/v1","units":[…]}) or unset it.`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (cause) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      `units file ${file} is not valid JSON. Fix it and deploy again.`,
      {
        cause,
      },
    );
  }
  try {
    return { file, units: parseUnits(raw, `units file ${file}`) };
  } catch (cause) {
    throw new StackSettingsError('SETTING_INVALID', (cause as Error).message, { cause });
  }
}

/**
 * The unit this deployment is for (VERITRAIL_UNIT) and its settings. Refuses, with one line: a name
 * that is not a unit name, a unit the units file does not declare (any unit but `default` without a
 * units file), an approver that is an ARN but not an IAM role or user, and
 * VERITRAIL_AUDIT_RETENTION_DAYS set for a declared unit (its retention is the units file's).
 */
export function deployedUnit(env: NodeJS.ProcessEnv = process.env): DeployedUnit {
  const requested = env.VERITRAIL_UNIT || DEFAULT_UNIT;
  let name: string;
  try {
    name = parseUnitName(requested, 'VERITRAIL_UNIT');
  } catch (cause) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      `${(cause as Error).message}; set it to a declared unit.`,
      {
        cause,
      },
    );
  }
  const declaration = readUnitsFile(env);
  if (!declaration) {
    if (name !== DEFAULT_UNIT) {
      throw new StackSettingsError(
        'SETTING_INVALID',
        `VERITRAIL_UNIT=${name}, but there is no units file (${DEFAULT_UNITS_FILE} or VERITRAIL_UNITS_FILE): only the unit "${DEFAULT_UNIT}" exists. Declare the unit in a units file, or unset VERITRAIL_UNIT.`,
      );
    }
    return {
      name,
      declared: [DEFAULT_UNIT],
      auditRetentionDays: auditRetentionDays(env.VERITRAIL_AUDIT_RETENTION_DAYS),
      approvers: [],
      approverArns: [],
    };
  }
  const { file, units } = declaration;
  const settings = units.find((u) => u.name === name);
  if (!settings) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_UNIT=${name} is not a unit declared in ${file} (declared: ${units.map((u) => u.name).join(', ')}). Set it to one of them, or declare it there.`,
    );
  }
  const envRetention = env.VERITRAIL_AUDIT_RETENTION_DAYS || undefined;
  if (envRetention !== undefined && auditRetentionDays(envRetention) !== settings.auditRetentionDays) {
    throw new StackSettingsError(
      'SETTING_INVALID',
      `VERITRAIL_AUDIT_RETENTION_DAYS=${envRetention} contradicts unit ${name}'s auditRetentionDays ${settings.auditRetentionDays} in ${file}: a declared unit's retention is set in the units file. Unset VERITRAIL_AUDIT_RETENTION_DAYS or change the units file.`,
    );
  }
  for (const approver of settings.approvers) {
    if (approver.startsWith('arn:') && !IAM_PRINCIPAL_ARN.test(approver)) {
      throw new StackSettingsError(
        'SETTING_INVALID',
        `approver "${approver}" of unit ${name} in ${file} is an ARN but not an IAM role or user ARN (arn:aws:iam::<account>:role/<name>): name the role or user the approvers sign in as, or an e-mail address (recorded only).`,
      );
    }
  }
  return {
    name,
    unitsFile: file,
    declared: units.map((u) => u.name),
    auditRetentionDays: settings.auditRetentionDays,
    approvers: settings.approvers,
    approverArns: settings.approvers.filter((a) => IAM_PRINCIPAL_ARN.test(a)),
  };
}

/**
 * The pipelines of `unit` among all the definitions of the pipelines folder. Every definition must
 * name a declared unit (one that names none belongs to `default`), and the unit must have at least
 * one: a stage without a pipeline would be an empty shell with its own keys and buckets.
 */
export function unitPipelines(all: readonly DeployedPipeline[], unit: DeployedUnit): DeployedPipeline[] {
  for (const p of all) {
    const of = unitOf(p.definition);
    if (unit.declared.includes(of)) continue;
    const named = p.definition.unit === undefined ? 'names no unit, so belongs to' : 'names';
    throw new StackSettingsError(
      'SETTING_INVALID',
      unit.unitsFile
        ? `pipeline ${p.definition.name} (${p.file}) ${named} unit "${of}", which ${unit.unitsFile} does not declare. Declare it there, or set the pipeline's "unit" to a declared unit.`
        : `pipeline ${p.definition.name} (${p.file}) names unit "${of}", but there is no units file (${DEFAULT_UNITS_FILE} or VERITRAIL_UNITS_FILE): only the unit "${DEFAULT_UNIT}" exists. Declare the units in a units file, or remove "unit" from the pipeline.`,
    );
  }
  const mine = all.filter((p) => unitOf(p.definition) === unit.name);
  if (mine.length === 0) {
    throw new StackSettingsError(
      'PIPELINES_NOT_FOUND',
      `unit ${unit.name} has no pipeline among the ${all.length} definition(s) of the pipelines folder (none with "unit": "${unit.name}"). Add one, or deploy another unit (VERITRAIL_UNIT).`,
    );
  }
  return mine;
}

/** The pipelines this deployment deploys: those of its unit (VERITRAIL_PIPELINES_DIR, VERITRAIL_UNIT). */
export function deployedPipelines(env: NodeJS.ProcessEnv = process.env): DeployedPipeline[] {
  return unitPipelines(
    loadPipelines(env.VERITRAIL_PIPELINES_DIR ?? DEFAULT_PIPELINES_DIR),
    deployedUnit(env),
  );
}

/**
 * A unit's stage must carry the unit's name (`credit`, `prod-credit`, `credit-prod`): deploying unit
 * B to unit A's stage would update A's stacks in place, B's pipelines on A's buckets and keys. The
 * default unit keeps any stage name, as before units.
 */
export function checkUnitStage(unit: Pick<DeployedUnit, 'name'>, stage: string): void {
  if (unit.name === DEFAULT_UNIT) return;
  if (stage === unit.name || stage.endsWith(`-${unit.name}`) || stage.startsWith(`${unit.name}-`)) return;
  throw new StackSettingsError(
    'SETTING_INVALID',
    `VERITRAIL_UNIT=${unit.name} with stage "${stage}": a unit's stage must carry its name (${unit.name}, <env>-${unit.name} or ${unit.name}-<env>, e.g. --stage prod-${unit.name}), so that two units never deploy over each other's stacks.`,
  );
}
