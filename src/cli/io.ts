/** Exit codes shared by every command. */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, REJECTED: 3 } as const;

/** Where a command writes: injectable so tests capture output without spawning. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  env: Record<string, string | undefined>;
  cwd: string;
  /** stderr is a terminal: progress may use colour. */
  tty: boolean;
}

export function processIo(): CliIo {
  return {
    out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
    err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
    env: process.env,
    cwd: process.cwd(),
    tty: Boolean(process.stderr.isTTY),
  };
}
