import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { VeritrailError } from '../core/errors.js';

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
