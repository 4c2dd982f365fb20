import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DEFAULT_ORIGIN } from '../audit/layout.js';
import { VeritrailError } from '../core/errors.js';
import { DEFAULT_UNIT } from '../core/unit.js';

/** The state dir: `--home`, else VERITRAIL_HOME, else `.veritrail/` in the working directory. */
export function resolveHome(
  flag: string | undefined,
  env: Record<string, string | undefined>,
  cwd: string,
): string {
  return resolve(cwd, flag ?? env.VERITRAIL_HOME ?? '.veritrail');
}

export function homePaths(home: string) {
  return {
    home,
    objects: join(home, 'objects'),
    dynamodb: join(home, 'dynamodb'),
    jobs: join(home, 'jobs'),
    signingKey: join(home, 'keys', 'signing.key'),
    auditKey: join(home, 'keys', 'audit.key'),
    lineage: join(home, 'lineage'),
  };
}

/** Where one business unit's keys, witnesses and audit log are (docs/units.md). */
export interface UnitPaths {
  unit: string;
  /** The folder holding the unit's `keys/` and `witnesses.json`. */
  root: string;
  signingKey: string;
  auditKey: string;
  witnesses: string;
  /** Key prefix of the unit's log in the `audit` bucket. */
  auditPrefix: string;
  /** The unit's log identity: the first line of its checkpoints and their key name. */
  auditOrigin: string;
}

/**
 * The default unit keeps the layout veritrail had before units (`<home>/keys/`, `<home>/witnesses.json`,
 * the log at `log/` with origin `veritrail.local/audit`), so existing state dirs stay valid; unit U has
 * `<home>/units/U/keys/`, `<home>/units/U/witnesses.json` and its own log at `units/U/log/` with
 * origin `veritrail.local/audit/U`. `unit` must be a unit name (src/core/unit.ts): it becomes a path.
 */
export function unitPaths(home: string, unit: string): UnitPaths {
  const isDefault = unit === DEFAULT_UNIT;
  const root = isDefault ? home : join(home, 'units', unit);
  return {
    unit,
    root,
    signingKey: join(root, 'keys', 'signing.key'),
    auditKey: join(root, 'keys', 'audit.key'),
    witnesses: join(root, 'witnesses.json'),
    auditPrefix: isDefault ? 'log/' : `units/${unit}/log/`,
    auditOrigin: isDefault ? DEFAULT_ORIGIN : `${DEFAULT_ORIGIN}/${unit}`,
  };
}

/** The units this state dir holds: the default unit, and every unit whose folder has been made. */
async function unitsIn(home: string): Promise<string[]> {
  const entries = await readdir(join(home, 'units'), { withFileTypes: true }).catch(() => []);
  return [
    DEFAULT_UNIT,
    ...entries
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort(),
  ];
}

/**
 * A unit named on the command line must be one this state dir holds (its folder is made when its
 * first run starts): a typo is one line naming the units there, never an empty answer.
 */
export async function assertUnitKnown(home: string, unit: string): Promise<void> {
  const known = await unitsIn(home);
  if (!known.includes(unit))
    throw new VeritrailError(
      'USAGE',
      `unit "${unit}" has nothing in state dir ${home} (units here: ${known.join(', ')}); check --unit, or run a pipeline of that unit first`,
    );
}

/**
 * The state dir can be used: it is a directory, or it does not exist yet and can be created (unless
 * `mustExist`, for commands that only read). A file in its place is a usage error, not an ENOTDIR.
 */
export async function assertHomeUsable(home: string, options: { mustExist?: boolean } = {}): Promise<void> {
  let s: Awaited<ReturnType<typeof stat>> | undefined;
  try {
    s = await stat(home);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR')
      throw new VeritrailError(
        'USAGE',
        `state dir ${home} is inside a file, not a folder; give --home a folder`,
      );
    if (code !== 'ENOENT')
      throw new VeritrailError('USAGE', `cannot use state dir ${home}: ${(e as Error).message}`);
  }
  if (s === undefined) {
    if (options.mustExist)
      throw new VeritrailError(
        'USAGE',
        `no state dir at ${home}: nothing has run here yet; check --home (or VERITRAIL_HOME), or start with \`veritrail run\``,
      );
    return;
  }
  if (!s.isDirectory())
    throw new VeritrailError('USAGE', `state dir ${home} is a file, not a folder; give --home a folder`);
}
