/** moto_server on a free 127.0.0.1 port, as test/conformance/aws.conformance.test.ts starts it. */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function onPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface Moto {
  endpoint: string;
  stop(): Promise<void>;
}

/** Python start-up patches of the moto_server process (KMS DIGEST signing). */
const MOTO_PATCHES = join(dirname(fileURLToPath(import.meta.url)), 'moto-patches');

export async function startMoto(binary: string): Promise<Moto> {
  const port = await freePort();
  const child: ChildProcess = spawn(binary, ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: 'ignore',
    env: {
      ...process.env,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      // KMS Sign with MessageType DIGEST as AWS does it (moto 5.2 hashes the digest again):
      // moto-patches/sitecustomize.py, loaded by Python at start-up in this process only.
      PYTHONPATH: [MOTO_PATCHES, process.env.PYTHONPATH].filter(Boolean).join(delimiter),
    },
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      await fetch(`${endpoint}/moto-api/`);
      break;
    } catch (e) {
      if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}`);
      if (Date.now() > until)
        throw new Error(`moto_server did not answer on ${endpoint} within 30 s`, { cause: e });
      await new Promise((r) => setTimeout(r, 150));
    }
  }
  return {
    endpoint,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
