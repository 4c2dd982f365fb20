import { spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Digest, digestOf } from '../core/digest.js';
import { VeritrailError } from '../core/errors.js';
import { canonicalDigest } from '../core/jcs.js';
import type { PipelineDefinition } from '../core/pipeline.js';

/**
 * The local trainer's environment, as part of the retrain identity and the provenance: the
 * interpreter the command runs (its real path and `--version`) and the list of packages it can
 * import (Python: every installed distribution and version; Node: the runtime's own versions, the
 * code's lockfile being part of the code digest already). On AWS the environment is the image,
 * pinned by digest in the definition.
 */
export interface TrainerEnvironment {
  interpreter: string;
  version: string;
  /** sha256 of the sorted package list (name==version per line), when the interpreter has one. */
  packages?: Digest;
  digest: Digest;
}

const PYTHON_PACKAGES =
  'import importlib.metadata as m\nprint("\\n".join(sorted({"%s==%s" % (d.metadata["Name"], d.version) for d in m.distributions() if d.metadata["Name"]})))';

/** Probes the interpreter of `command` (the first word; `node` is this process's own runtime). */
export function trainerEnvironment(command: readonly string[]): TrainerEnvironment {
  const cmd = command[0] ?? '';
  const exe = cmd === 'node' ? process.execPath : which(cmd);
  const interpreter = exe ? (safeRealpath(exe) ?? exe) : cmd;
  const run = (args: string[]) => {
    const r = spawnSync(interpreter, args, {
      encoding: 'utf8',
      timeout: 30_000,
      env: { PATH: process.env.PATH ?? '' },
    });
    return r.status === 0 ? `${r.stdout}${r.stderr}`.trim() : undefined;
  };
  const version = cmd === 'node' ? process.version : (run(['--version']) ?? 'unknown');
  let packages: Digest | undefined;
  if (/python/i.test(interpreter)) {
    const list = run(['-c', PYTHON_PACKAGES]);
    if (list !== undefined) packages = digestOf(new TextEncoder().encode(`${list}\n`));
  } else if (cmd === 'node') {
    packages = canonicalDigest(process.versions);
  }
  const env = { interpreter, version, ...(packages ? { packages } : {}) };
  return { ...env, digest: canonicalDigest(env) };
}

/**
 * Refuses a trainer or predict command that runs a file outside `trainer.code`: every argument
 * that names an existing path next to the definition must lie inside the code folder, so the code
 * digest covers everything the command runs (a script beside the definition would otherwise change
 * unseen). The interpreter itself is the environment, recorded by {@link trainerEnvironment}.
 */
export function assertConfinedToCode(def: PipelineDefinition, base: string): void {
  const dir = fileURLToPath(base);
  const code = resolve(dir, def.trainer.code);
  for (const [field, command] of [
    ['trainer.command', def.trainer.command],
    ['trainer.predict', def.trainer.predict ?? []],
  ] as const) {
    for (const arg of command.slice(1)) {
      if (arg.startsWith('-') || !/[/\\.]/.test(arg)) continue;
      const path = isAbsolute(arg) ? arg : join(dir, arg);
      const real = safeRealpath(path);
      if (real === undefined) continue;
      const rel = relative(safeRealpath(code) ?? code, real);
      if (rel.startsWith('..') || isAbsolute(rel)) {
        throw new VeritrailError(
          'PIPELINE_INVALID',
          `${field} runs ${arg}, which is outside trainer.code (${def.trainer.code}); move it into the code folder so its digest covers everything the trainer runs`,
          { details: { field, path: arg } },
        );
      }
    }
  }
}

function which(cmd: string): string | undefined {
  if (cmd.includes('/')) return cmd;
  const r = spawnSync('sh', ['-c', 'command -v "$0"', cmd], { encoding: 'utf8' });
  return r.stdout.trim() || undefined;
}

function safeRealpath(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}
