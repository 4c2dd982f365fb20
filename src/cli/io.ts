/** Exit codes shared by every command. */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, REJECTED: 3, INTERRUPTED: 130, TERMINATED: 143 } as const;

/** Where a command writes: injectable so tests capture output without spawning. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  env: Record<string, string | undefined>;
  cwd: string;
  /** stderr is a terminal: progress may use colour. */
  tty: boolean;
}

/**
 * A write to a stream whose reader has gone (`veritrail run … | head -3`, a `serve` whose log pipe
 * closed) is dropped: output is for the reader, and losing the reader must never stop a run.
 */
function tolerantWriter(stream: NodeJS.WriteStream): (text: string) => void {
  let gone = false;
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED' || e.code === 'ECONNRESET') {
      gone = true;
      return;
    }
    gone = true;
  });
  return (t) => {
    if (gone || stream.destroyed) return;
    try {
      stream.write(t.endsWith('\n') ? t : `${t}\n`);
    } catch {
      gone = true;
    }
  };
}

let shared: { out: (t: string) => void; err: (t: string) => void } | undefined;

export function processIo(): CliIo {
  shared ??= { out: tolerantWriter(process.stdout), err: tolerantWriter(process.stderr) };
  return {
    out: shared.out,
    err: shared.err,
    env: process.env,
    cwd: process.cwd(),
    tty: Boolean(process.stderr.isTTY),
  };
}
