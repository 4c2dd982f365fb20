import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { StartPipeline } from '../../app/start/service.js';
import { VeritrailError } from '../../core/errors.js';
import { DEFAULT_UNIT, unitOf } from '../../core/unit.js';
import { LocalControlPlane } from '../../local/control-plane.js';
import { assertHomeUsable, resolveHome } from '../../local/home.js';
import { openLocalRuntime } from '../../local/runtime.js';
import { controlSocketPath, listenControlChannel } from '../../local/serve-channel.js';
import { loadPipelineFile, preflightPipeline } from '../../local/start-run.js';
import { parseCli, usageError } from '../args.js';
import { type CliIo, EXIT } from '../io.js';

export const summary = 'the local control plane: landing folder, schedules, operator starts';

const USAGE =
  'usage: veritrail serve [--home <dir>] [--landing <dir>] (--pipeline <definition.json>)... [--pipelines <dir>] [--concurrency <n>] [--poll-ms <ms>]';

/** Loads every `--pipeline` file and every `*.json` of `--pipelines`; names must be unique. */
export async function loadServedPipelines(
  files: string[],
  dir: string | undefined,
  cwd: string,
): Promise<StartPipeline[]> {
  const paths = [...files];
  if (dir !== undefined) {
    const abs = resolve(cwd, dir);
    const names = await readdir(abs).catch((e: Error) => {
      throw new VeritrailError('PIPELINE_INVALID', `cannot read --pipelines ${abs}: ${e.message}`, {
        cause: e,
      });
    });
    for (const n of names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort())
      paths.push(join(abs, n));
  }
  if (paths.length === 0)
    throw usageError('give at least one --pipeline <definition.json> or --pipelines <dir>', USAGE);
  const loaded = await Promise.all(paths.map((p) => loadPipelineFile(p, cwd)));
  // Trainer code, gate policy and schedule are checked before serving anything.
  for (const p of loaded) await preflightPipeline(p);
  const seen = new Map<string, string>();
  for (const p of loaded) {
    const other = seen.get(p.def.name);
    if (other !== undefined && other !== p.path) {
      throw new VeritrailError(
        'PIPELINE_INVALID',
        `pipelines ${other} and ${p.path} are both named "${p.def.name}"; names must be unique`,
      );
    }
    seen.set(p.def.name, p.path);
  }
  // The same file given twice is loaded once.
  return [...new Map(loaded.map((p) => [p.def.name, p])).values()];
}

/** Resolves when SIGINT or SIGTERM arrives (or `signal` aborts, in tests). */
function untilStopped(signal?: AbortSignal): Promise<string> {
  return new Promise((resolvePromise) => {
    const done = (why: string) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolvePromise(why);
    };
    const onInt = () => done('SIGINT');
    const onTerm = () => done('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    signal?.addEventListener('abort', () => done('abort'), { once: true });
  });
}

export async function run(
  args: string[],
  io: CliIo,
  options: { signal?: AbortSignal } = {},
): Promise<number> {
  const { values } = parseCli(
    args,
    {
      home: { type: 'string' },
      landing: { type: 'string' },
      pipeline: { type: 'string', multiple: true },
      pipelines: { type: 'string' },
      concurrency: { type: 'string' },
      'poll-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (values.help) {
    io.out(USAGE);
    return EXIT.OK;
  }
  const concurrency = Number(values.concurrency ?? '2');
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw usageError('--concurrency must be a whole number from 1 to 64', USAGE);
  }
  const pollMs = Number(values['poll-ms'] ?? '1000');
  if (!Number.isInteger(pollMs) || pollMs < 10)
    throw usageError('--poll-ms must be a whole number of at least 10', USAGE);
  const pipelines = await loadServedPipelines(values.pipeline ?? [], values.pipelines, io.cwd);
  const home = resolveHome(values.home, io.env, io.cwd);
  const landingDir = resolve(io.cwd, values.landing ?? join(home, 'landing'));
  const log = (line: string) => io.err(`veritrail serve: ${line}`);

  await assertHomeUsable(home);
  const rt = await openLocalRuntime(home, { log });
  const plane = new LocalControlPlane({ rt, pipelines, landingDir, concurrency, pollMs, log });
  const socket = controlSocketPath(home);
  let channel: Awaited<ReturnType<typeof listenControlChannel>> | undefined;
  try {
    await plane.start();
    channel = await listenControlChannel(socket, (body) => plane.submit(body));
    // Each run is signed and logged as its pipeline's unit (docs/units.md); the default unit goes unnamed.
    const named = pipelines.map((p) =>
      unitOf(p.def) === DEFAULT_UNIT ? p.def.name : `${p.def.name} (unit ${unitOf(p.def)})`,
    );
    log(
      `serving ${named.join(', ')}; landing ${landingDir}; control ${socket}; up to ${concurrency} run(s) at once`,
    );
    const why = await untilStopped(options.signal);
    log(`${why}: no new work accepted; waiting for ${plane.load.running} run(s) under way`);
  } finally {
    await channel?.close();
    await plane.stop();
    await rt.close();
  }
  log('stopped');
  return EXIT.OK;
}
