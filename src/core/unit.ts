import { z } from 'zod';
import { VeritrailError } from './errors.js';

/**
 * A business unit (credit scoring, fraud, diagnosis…): the boundary of isolation. Each pipeline
 * belongs to one unit; each unit has its own signing and audit keys, its own audit log and its
 * own data, so one unit's runs cannot read another's data, sign with its keys or write to its log,
 * and one unit's auditor verifies that unit's trail with that unit's public keys only
 * (docs/units.md). A pipeline that names no unit belongs to {@link DEFAULT_UNIT}.
 */

/** The unit of a pipeline that names none: the state dir's own keys and log, as before units. */
export const DEFAULT_UNIT = 'default';

/** A unit name: used in key paths, log origins, stack stages and S3 prefixes, so kept plain. */
export const unitName = z
  .string()
  .regex(
    /^[a-z][a-z0-9-]{1,22}[a-z0-9]$/,
    'must be 3-24 lowercase letters, digits or dashes, starting with a letter',
  );

/** One unit's own settings, declared by the platform team (units.json). */
const UnitSettingsSchema = z.strictObject({
  name: unitName,
  description: z.string().max(1024).optional(),
  /** How long the unit's audit entries are locked (S3 Object Lock, COMPLIANCE), in days. */
  auditRetentionDays: z.number().int().min(1).max(36_500).default(2555),
  /**
   * Who may approve the unit's models in the registry (IAM principal ARNs or e-mail addresses):
   * recorded with every registered model version, and the only principals the unit's approval
   * role trusts on AWS.
   */
  approvers: z.array(z.string().min(3).max(2048)).min(1, 'name at least one approver'),
});
export type UnitSettings = z.infer<typeof UnitSettingsSchema>;

const UnitsFileSchema = z.strictObject({
  apiVersion: z.literal('veritrail.dev/v1'),
  units: z.array(UnitSettingsSchema).min(1, 'declare at least one unit'),
});

/**
 * Parses a units declaration (`{"apiVersion":"veritrail.dev/v1","units":[…]}`); USAGE naming
 * `where` and the field on a bad value, or on two units with one name.
 */
export function parseUnits(value: unknown, where = 'units declaration'): UnitSettings[] {
  const r = UnitsFileSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const at = issue?.path.length ? issue.path.join('.') : '(top level)';
    throw new VeritrailError('USAGE', `${where} is invalid at ${at}: ${issue?.message ?? 'invalid'}; fix it`);
  }
  const seen = new Set<string>();
  for (const u of r.data.units) {
    if (seen.has(u.name))
      throw new VeritrailError('USAGE', `${where} declares unit "${u.name}" twice; keep one`);
    seen.add(u.name);
  }
  return r.data.units;
}

/** The unit a pipeline belongs to. */
export function unitOf(def: { unit?: string | undefined }): string {
  return def.unit ?? DEFAULT_UNIT;
}

/** A unit name given on a command line (`--unit`); USAGE with the rule when it is not one. */
export function parseUnitName(value: string, where = '--unit'): string {
  const r = unitName.safeParse(value);
  if (!r.success)
    throw new VeritrailError('USAGE', `${where} "${value}" ${r.error.issues[0]?.message ?? 'is invalid'}`);
  return r.data;
}
