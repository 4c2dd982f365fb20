/**
 * `veritrail scan [path…] [--staged] [--json]`: the secret scanner CheckCode runs on training code
 * (src/core/code-scan.ts), for any folder or for what is about to be committed. Findings name the
 * file, line, column and kind, never the secret (docs/design.md invariant 7), so the output is safe to
 * show in a terminal, a CI log or a pre-commit message.
 */
import { execFileSync } from 'node:child_process';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import {
  describeSecretFinding,
  type SecretFinding,
  type SourceFile,
  scanFilesForSecrets,
} from '../../core/code-scan.js';
import { parseCli, usageError } from '../args.js';
import { type CliIo, EXIT } from '../io.js';

export const summary = 'find hard-coded credentials in files, folders or staged changes';

const USAGE = `usage: veritrail scan [<file|dir>…] [--staged] [--json]

  <file|dir>  what to scan (default: the current folder); folders are walked without following
              symbolic links, skipping .git, node_modules and .veritrail
  --staged    scan the staged content of the files staged for commit (a git pre-commit hook)
  --json      print {"findings": [...], "skipped": [...], "files": <count>}

Exit 0 when nothing is found, 1 when a credential is found, 2 on a usage error. A line holding
"veritrail:allow-secret" is not reported (a known false positive).`;

/** Folders never worth scanning: version control, installed packages, veritrail's own state. */
const SKIPPED_DIRS = new Set(['.git', 'node_modules', '.veritrail']);

/** Files larger than this are not read (a credential in a 64 MiB file is not source code). */
const MAX_FILE_BYTES = 64 * 1024 * 1024;

async function* walk(root: string, base: string): AsyncGenerator<SourceFile> {
  const info = await lstat(root);
  if (info.isSymbolicLink()) return;
  if (info.isFile()) {
    if (info.size <= MAX_FILE_BYTES)
      yield { path: relative(base, root) || root, bytes: await readFile(root) };
    return;
  }
  if (!info.isDirectory()) return;
  const entries = await readdir(root, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.isDirectory() && SKIPPED_DIRS.has(e.name)) continue;
    yield* walk(join(root, e.name), base);
  }
}

function git(cwd: string, args: string[]): Buffer {
  return execFileSync('git', args, { cwd, maxBuffer: 256 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The staged blob of every added, copied, modified or renamed file: what the commit will hold. */
function* staged(cwd: string): Generator<SourceFile> {
  let names: string[];
  try {
    names = git(cwd, ['diff', '--cached', '--name-only', '--diff-filter=ACMR', '-z'])
      .toString('utf8')
      .split('\0')
      .filter(Boolean);
  } catch (e) {
    throw usageError(`--staged needs a git repository: ${(e as Error).message.split('\n')[0]}`, USAGE);
  }
  for (const name of names) {
    const bytes = git(cwd, ['show', `:${name}`]);
    if (bytes.length <= MAX_FILE_BYTES) yield { path: name, bytes };
  }
}

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCli(
    args,
    { staged: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    USAGE,
  );
  if (values.help) {
    io.out(USAGE);
    return EXIT.OK;
  }
  if (values.staged && positionals.length > 0) throw usageError('give paths or --staged, not both', USAGE);

  const files: SourceFile[] = [];
  if (values.staged) {
    files.push(...staged(io.cwd));
  } else {
    for (const given of positionals.length > 0 ? positionals : ['.']) {
      const path = resolve(io.cwd, given);
      try {
        await lstat(path);
      } catch {
        throw usageError(`${given} does not exist`, USAGE);
      }
      // Paths are reported relative to where the command runs, as editors and git print them.
      for await (const f of walk(path, io.cwd)) files.push({ ...f, path: f.path.split(sep).join('/') });
    }
  }
  const { findings, skipped } = scanFilesForSecrets(files);
  if (values.json) {
    io.out(JSON.stringify({ findings, skipped, files: files.length }));
  } else {
    for (const f of findings) io.out(describeSecretFinding(f));
    io.err(summaryLine(findings, files.length));
  }
  return findings.length > 0 ? EXIT.FAILED : EXIT.OK;
}

function summaryLine(findings: readonly SecretFinding[], files: number): string {
  if (findings.length === 0) return `veritrail scan: no credential found in ${files} file(s)`;
  return `veritrail scan: ${findings.length} hard-coded credential(s) found in ${files} file(s); remove them and read credentials from the environment or a secrets manager (or mark a known false positive with "veritrail:allow-secret")`;
}
