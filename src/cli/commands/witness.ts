/**
 * `veritrail witness serve|key`: a c2sp.org/tlog-witness witness. It cosigns a log's checkpoints
 * only after checking a consistency proof from the size it last cosigned, so it refuses a
 * truncated, rolled-back or forked log (docs/audit-log.md, "Witnesses").
 */
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdir, open, readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Witness } from '../../audit/witness/core.js';
import { FsWitnessStore } from '../../audit/witness/fs-store.js';
import { witnessServer } from '../../audit/witness/http.js';
import { formatVkey, witnessKeyOf } from '../../core/cosignature.js';
import { VeritrailError } from '../../core/errors.js';
import { type CliIo, EXIT } from '../io.js';

export const summary = 'a tlog-witness: cosigns audit log checkpoints after a consistency check';

const DEFAULT_ORIGIN = 'veritrail.local/audit';

const USAGE = `usage: veritrail witness <subcommand>

  serve --key <file> --state <dir> --log-key <pem> [--log-key <pem>…] [--origin <origin>]
        [--name <witness name>] [--listen <host:port>]
                      run the witness: POST /add-checkpoint, GET /<sha256(origin)>/checkpoint
                      (c2sp.org/tlog-witness). Keep --state outside the log's state dir: a witness
                      whose state is rolled back with the log witnesses nothing.
  key --key <file> [--name <witness name>]
                      print the witness's verifier key (name+keyid+key), creating the key if absent

  --key <file>        Ed25519 private key (PKCS#8 PEM, mode 0600), created on first use
  --log-key <pem>     a public key the log signs checkpoints with (repeat for rotation)
  --origin <origin>   the log's origin line (default ${DEFAULT_ORIGIN})
  --name <name>       the witness's key name (default veritrail.local/witness)
  --listen <h:p>      address to listen on (default 127.0.0.1:7380)`;

/** Reads the witness key, creating an Ed25519 key (0600) if the file does not exist. */
async function witnessKeyFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const fh = await open(path, 'wx', 0o600);
  try {
    await fh.writeFile(pem);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await chmod(path, 0o600);
  return pem;
}

function usageError(message: string): VeritrailError {
  return new VeritrailError('USAGE', `${message}\n${USAGE}`);
}

export async function run(args: string[], io: CliIo, signal?: AbortSignal): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (e) {
    throw usageError(e instanceof Error ? e.message : String(e));
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    io.out(USAGE);
    return EXIT.OK;
  }
  const sub = positionals[0];
  if (sub !== 'serve' && sub !== 'key')
    throw usageError(sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`);
  if (values.key === undefined) throw usageError('--key <file> is required');
  const name = values.name ?? 'veritrail.local/witness';
  const privateKeyPem = await witnessKeyFile(resolve(io.cwd, values.key));
  const vkey = formatVkey(witnessKeyOf(name, privateKeyPem));
  if (sub === 'key') {
    io.out(vkey);
    return EXIT.OK;
  }
  if (values.state === undefined) throw usageError('--state <dir> is required');
  const logKeys = values['log-key'] ?? [];
  if (logKeys.length === 0) throw usageError('--log-key <pem> is required (the log key the witness trusts)');
  const origin = values.origin ?? DEFAULT_ORIGIN;
  const pems = await Promise.all(logKeys.map((p) => readFile(resolve(io.cwd, p), 'utf8')));
  const store = await FsWitnessStore.open(resolve(io.cwd, values.state));
  const witness = new Witness({ name, privateKeyPem, logs: new Map([[origin, pems]]), store });
  const [host, portText] = (values.listen ?? '127.0.0.1:7380').split(':');
  const server = witnessServer(witness, [origin]);
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(Number(portText ?? 7380), host ?? '127.0.0.1', () => ok());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : Number(portText);
  io.out(`witness ${vkey}\nlistening on http://${host}:${port}/ for log "${origin}"`);
  await new Promise<void>((done) => {
    const stop = () => done();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    signal?.addEventListener('abort', stop, { once: true });
  });
  await new Promise((r) => server.close(() => r(undefined)));
  await store.close();
  return EXIT.OK;
}

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      key: { type: 'string' },
      state: { type: 'string' },
      'log-key': { type: 'string', multiple: true },
      origin: { type: 'string' },
      name: { type: 'string' },
      listen: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
