import { spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * How the embedded trainer confines a training (or predict) process, strongest first:
 *
 * - `bubblewrap`: Debian's `bwrap`. New user, PID, network, IPC and UTS namespaces (no network, its
 *   own /proc: the parent's environment and memory are out of sight); a root made only of the
 *   system folders, the trainer code (read-only), the staged channels (read-only) and its output
 *   folders. The state dir, the signing key and the operator's home are not in it at all.
 * - `unshare`: util-linux `unshare` as an unprivileged user: no network and its own PID namespace
 *   and /proc, but the whole file system stays visible (file modes are the only guard).
 * - `none`: a plain child process; only the scrubbed environment and a working folder outside the
 *   state dir separate it from the operator.
 *
 * The level actually used is recorded in the model's SLSA provenance, so an auditor can tell.
 */
export type IsolationLevel = 'bubblewrap' | 'unshare' | 'none';

export interface Isolation {
  level: IsolationLevel;
  /** What the level means, in the provenance's words. */
  network: boolean;
  ownProcNamespace: boolean;
  stateDirVisible: boolean;
  /** Why a stronger level was not used, when it was not. */
  note?: string;
}

/** Folders bound read-only into a bubblewrap root when they exist (programs, libraries, certificates). */
const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
const SYSTEM_FILES = [
  '/etc/alternatives',
  '/etc/ld.so.cache',
  '/etc/ld.so.conf',
  '/etc/ld.so.conf.d',
  '/etc/localtime',
  '/etc/ssl',
  '/etc/ca-certificates',
  '/etc/python3',
  '/etc/passwd',
  '/etc/group',
  '/etc/nsswitch.conf',
];

let probed: Map<IsolationLevel, boolean> | undefined;

function works(cmd: string, args: string[]): boolean {
  try {
    const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
    return r.status === 0;
  } catch {
    return false;
  }
}

/** Which levels this machine offers (probed once: a binary may exist while user namespaces are off). */
function available(): Map<IsolationLevel, boolean> {
  if (!probed) {
    probed = new Map<IsolationLevel, boolean>([
      [
        'bubblewrap',
        works('bwrap', [
          '--unshare-all',
          '--die-with-parent',
          '--ro-bind',
          '/',
          '/',
          '--proc',
          '/proc',
          '--dev',
          '/dev',
          'true',
        ]),
      ],
      [
        'unshare',
        works('unshare', ['--user', '--map-root-user', '--net', '--pid', '--fork', '--mount-proc', 'true']),
      ],
      ['none', true],
    ]);
  }
  return probed;
}

/**
 * The isolation level to use: the strongest available, or the one VERITRAIL_SANDBOX names (`bubblewrap`,
 * `unshare`, `none`), which may only weaken it; asking for one that is not available falls back and
 * says so in `note`.
 */
export function chooseIsolation(requested: string | undefined = process.env.VERITRAIL_SANDBOX): Isolation {
  const order: IsolationLevel[] = ['bubblewrap', 'unshare', 'none'];
  const want = order.includes(requested as IsolationLevel) ? (requested as IsolationLevel) : 'bubblewrap';
  const avail = available();
  const start = order.indexOf(want);
  const skipped: string[] = [];
  for (const level of order.slice(start)) {
    if (avail.get(level)) {
      return {
        level,
        network: level === 'none',
        ownProcNamespace: level !== 'none',
        stateDirVisible: level !== 'bubblewrap',
        ...(skipped.length > 0
          ? {
              note: `${skipped.join(', ')} not available on this machine (install Debian's bubblewrap, or allow unprivileged user namespaces)`,
            }
          : want !== 'bubblewrap'
            ? { note: `VERITRAIL_SANDBOX=${want} asked for a weaker level` }
            : {}),
      };
    }
    skipped.push(level);
  }
  return { level: 'none', network: true, ownProcNamespace: false, stateDirVisible: true };
}

export interface SandboxMounts {
  /** Bound read-only at the same path (the trainer code folder, staged channels, the model). */
  readOnly: string[];
  /** Bound writable at the same path (model and output folders). */
  writable: string[];
  /** The working directory inside the sandbox. */
  cwd: string;
}

/**
 * The argv that runs `cmd args…` at `level` with these mounts. For bubblewrap nothing outside the
 * mounts and the system folders exists inside; for unshare and none the mounts are advisory.
 */
export function sandboxCommand(
  level: IsolationLevel,
  cmd: string,
  args: string[],
  mounts: SandboxMounts,
): { cmd: string; args: string[] } {
  if (level === 'none') return { cmd, args };
  if (level === 'unshare') {
    return {
      cmd: 'unshare',
      args: [
        '--user',
        '--map-root-user',
        '--net',
        '--pid',
        '--fork',
        '--mount-proc',
        '--kill-child',
        cmd,
        ...args,
      ],
    };
  }
  const b: string[] = ['--unshare-all', '--die-with-parent', '--new-session', '--cap-drop', 'ALL'];
  for (const d of SYSTEM_DIRS) b.push('--ro-bind-try', d, d);
  for (const f of SYSTEM_FILES) b.push('--ro-bind-try', f, f);
  b.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp');
  // The interpreter may live outside the system folders (node from node_modules, a virtualenv),
  // even under /tmp (a checkout there): bound after the private /tmp, which would hide it.
  const exe = resolveExecutable(cmd);
  if (exe && !SYSTEM_DIRS.some((d) => exe.startsWith(`${d}/`))) {
    const dir = dirname(exe);
    b.push('--ro-bind', dir, dir);
  }
  for (const p of mounts.readOnly) b.push('--ro-bind', p, p);
  for (const p of mounts.writable) b.push('--bind', p, p);
  b.push('--chdir', mounts.cwd, '--setenv', 'HOME', '/tmp', '--', cmd, ...args);
  return { cmd: 'bwrap', args: b };
}

function resolveExecutable(cmd: string): string | undefined {
  try {
    if (cmd.includes('/')) return realpathSync(cmd);
    const r = spawnSync('sh', ['-c', 'command -v "$0"', cmd], { encoding: 'utf8' });
    const found = r.stdout.trim();
    return found ? realpathSync(found) : undefined;
  } catch {
    return undefined;
  }
}
