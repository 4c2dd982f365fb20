import { join, resolve } from 'node:path';

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
