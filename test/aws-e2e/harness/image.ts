/**
 * What `docker run <image> train` would run, read from the image's Dockerfile without building it:
 * ENTRYPOINT + CMD (exec form), with every path a COPY put in the image mapped back to the file in
 * the build context. The job then runs that command on this host (Node 22 from PATH) with
 * VERITRAIL_OPT_ML standing for /opt/ml. Only the exec (JSON array) forms are read; anything else
 * is refused, not guessed.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';

export interface ImageCommand {
  command: string[];
  cwd: string;
}

export function imageCommand(dockerfile: string, args: string[] = ['train']): ImageCommand {
  const context = dirname(dockerfile);
  const lines = readFileSync(dockerfile, 'utf8')
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const copies = new Map<string, string>();
  let entrypoint: string[] | undefined;
  let cmd: string[] = [];
  const execForm = (rest: string, what: string): string[] => {
    try {
      const parsed = JSON.parse(rest) as unknown;
      if (Array.isArray(parsed) && parsed.every((x) => typeof x === 'string')) return parsed;
    } catch {
      // refused below
    }
    throw new Error(`${dockerfile}: ${what} must use the exec form (a JSON array) for the harness to run it`);
  };
  for (const line of lines) {
    const [instruction = '', ...restParts] = line.split(/\s+/);
    const rest = restParts.join(' ');
    switch (instruction.toUpperCase()) {
      case 'COPY': {
        const parts = restParts.filter((p) => !p.startsWith('--'));
        const dest = parts.at(-1);
        if (dest && parts.length === 2 && parts[0])
          copies.set(posix.normalize(dest), join(context, parts[0]));
        break;
      }
      case 'ENTRYPOINT':
        entrypoint = execForm(rest, 'ENTRYPOINT');
        break;
      case 'CMD':
        cmd = execForm(rest, 'CMD');
        break;
      default:
        break;
    }
  }
  if (!entrypoint) throw new Error(`${dockerfile} has no ENTRYPOINT`);
  // `docker run <image> train`: the arguments replace CMD.
  const command = [...entrypoint, ...(args.length ? args : cmd)].map(
    (a) => copies.get(posix.normalize(a)) ?? a,
  );
  return { command, cwd: context };
}
