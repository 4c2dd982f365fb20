import { hostname, userInfo } from 'node:os';
import { startDeployed } from '../../aws/deployed.js';
import type { StartOutcome } from '../../core/start.js';
import { toFileUri } from '../../local/fs-dataset-source.js';
import { resolveHome } from '../../local/home.js';
import { controlSocketPath, sendStart } from '../../local/serve-channel.js';
import { parseCli, usageError } from '../args.js';
import { type CliIo, EXIT } from '../io.js';

export const summary = 'start a run on the control plane (local serve, or AWS with --stage)';

const USAGE =
  'usage: veritrail start --pipeline <name> --dataset <path|s3://bucket/key> [--force] [--request-id <id>] [--home <dir> | --stage <stage>] [--json]';

function actor(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `unknown@${hostname()}`;
  }
}

export async function run(args: string[], io: CliIo): Promise<number> {
  const { values } = parseCli(
    args,
    {
      pipeline: { type: 'string' },
      dataset: { type: 'string' },
      force: { type: 'boolean' },
      'request-id': { type: 'string' },
      home: { type: 'string' },
      stage: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (values.help) {
    io.out(USAGE);
    return EXIT.OK;
  }
  if (!values.pipeline) throw usageError('--pipeline <name> is required', USAGE);
  if (!values.dataset) throw usageError('--dataset <path> is required', USAGE);
  const force = values.force ?? false;

  if (values.stage !== undefined) {
    if (values.home !== undefined) throw usageError('--stage and --home exclude each other', USAGE);
    const result = await startDeployed(values.stage, io.env, {
      pipeline: values.pipeline,
      dataset: values.dataset,
      force,
      ...(values['request-id'] !== undefined ? { requestId: values['request-id'] } : {}),
      actor: actor(),
    });
    if (values.json) io.out(JSON.stringify(result));
    else {
      const what =
        result.status === 'started'
          ? `run ${result.runId} started`
          : result.status === 'duplicate'
            ? `already started as run ${result.runId} (${result.runStatus ?? 'unknown'}); nothing new started${result.runStatus === 'FAILED' ? `; it FAILED: see \`veritrail runs show ${result.runId} --stage ${values.stage}\`, fix the cause, then start with --force --request-id <new id>` : ''}`
            : `retraining skipped: ${result.reason ?? ''}; use --force to train anyway`;
      io.err(`veritrail start: ${what}${result.executionArn ? ` (${result.executionArn})` : ''}`);
    }
    return EXIT.OK;
  }

  const uri = values.dataset.startsWith('s3://') ? values.dataset : toFileUri(values.dataset, io.cwd);
  const home = resolveHome(values.home, io.env, io.cwd);
  const outcome = await sendStart(controlSocketPath(home), {
    pipeline: values.pipeline,
    dataset: { uri },
    force,
    // A double-click repeats nothing: without --request-id, the same dataset is the same start.
    ...(values['request-id'] !== undefined ? { requestId: values['request-id'] } : {}),
    actor: actor(),
  });
  if (values.json) io.out(JSON.stringify(outcome));
  else io.err(`veritrail start: ${describe(outcome)}`);
  return outcome.status === 'rejected' ? EXIT.USAGE : EXIT.OK;
}

export function describe(
  o: StartOutcome | { status: 'error'; error: { code: string; message: string } },
): string {
  switch (o.status) {
    case 'started':
      return `run ${o.runId} of ${o.pipeline} started`;
    case 'duplicate':
      return o.runStatus === 'FAILED'
        ? `already started as run ${o.runId}, which FAILED (\`veritrail runs show ${o.runId}\` says why); nothing new started. To train on it again once the cause is fixed: \`veritrail runs retry ${o.runId} --pipeline <definition.json>\``
        : `already started as run ${o.runId} (${o.runStatus}); nothing new started`;
    case 'skipped':
      return `retraining skipped: ${o.reason} (signed statement ${o.bundleKey}); use --force to train anyway`;
    case 'rejected':
    case 'error':
      return `rejected: ${o.error.code}: ${o.error.message}`;
    case 'ignored':
      return `ignored: ${o.reason}`;
  }
}
