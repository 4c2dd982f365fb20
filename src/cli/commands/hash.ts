/** `veritrail hash <file|dir> [--json]`: the content digest HashDataset would record. */

import { resolve } from 'node:path';
import { hexOf } from '../../core/digest.js';
import { isVeritrailError } from '../../core/errors.js';
import { hashPath } from '../../verify/hash-path.js';
import { parseCli, usageError } from '../args.js';
import { type CliIo, EXIT } from '../io.js';

export const summary = 'content digest of a file or a dataset folder';

const USAGE = `usage: veritrail hash <file|dir> [--json]

  a file     prints its SHA-256 as sha256sum does: <hex>  <path>
  a folder   prints the digest of its manifest (sorted relative paths, size and sha256 each,
             RFC 8785 canonical JSON): sha256:<hex>
  --json     prints {"digest": "sha256:<hex>", "size": <bytes>, "files": <count>}`;

/** Input a user can fix: exit 2 with the reason. */
const BAD_INPUT = [
  'PATH_REJECTED',
  'DATASET_MISSING',
  'DATASET_EMPTY',
  'DATASET_UNREADABLE',
  'DATASET_VALUE',
] as const;

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCli(
    args,
    { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    USAGE,
  );
  if (values.help) {
    io.out(USAGE);
    return EXIT.OK;
  }
  if (positionals.length !== 1) throw usageError('name exactly one file or folder', USAGE);
  const given = positionals[0] as string;
  try {
    const d = await hashPath(resolve(io.cwd, given));
    if (values.json) io.out(JSON.stringify({ digest: d.digest, size: d.size, files: d.files }));
    else io.out(d.kind === 'file' ? `${hexOf(d.digest)}  ${given}` : d.digest);
    return EXIT.OK;
  } catch (e) {
    if (BAD_INPUT.some((code) => isVeritrailError(e, code))) {
      io.err(`veritrail hash: ${(e as Error).message}`);
      return EXIT.USAGE;
    }
    throw e;
  }
}
