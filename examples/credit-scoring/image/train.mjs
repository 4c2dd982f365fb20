#!/usr/bin/env node
// veritrail's training entrypoint: a plain runtime image under the SageMaker training container
// contract, as SageMaker gives it to any image (no SageMaker Python toolkit, no SM_* variables).
// SageMaker runs the image as `docker run <image> train` (SageMaker Developer Guide, "How Amazon
// SageMaker Runs Your Training Image") after laying out /opt/ml:
//   /opt/ml/input/config/hyperparameters.json   every value a string
//   /opt/ml/input/config/inputdataconfig.json   one entry per channel
//   /opt/ml/input/config/resourceconfig.json    hosts of the job
//   /opt/ml/input/data/<channel>/               the channel's S3 objects (File mode)
//   /opt/ml/model/                              packed by SageMaker as model.tar.gz
//   /opt/ml/output/data/                        packed by SageMaker as output.tar.gz
//   /opt/ml/output/failure                      the failure reason SageMaker reports
// The exit code says how the job ended: 0 Completed, anything else Failed.
//
// What this entrypoint adds: before anything runs, every channel's file is checked against the
// digest veritrail recorded (hyperparameter veritrail_channel_digests); the `code` channel is the
// training code CheckCode scanned, a tar.gz that is unpacked to /opt/ml/code and in which the
// pipeline's trainer.command (hyperparameter veritrail_command, a JSON array) runs, exactly as the
// local trainer runs it next to the definition. VERITRAIL_OPT_ML moves /opt/ml (tests only).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  createReadStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

const root = process.env.VERITRAIL_OPT_ML ?? '/opt/ml';
const paths = {
  config: join(root, 'input', 'config'),
  data: join(root, 'input', 'data'),
  code: join(root, 'code'),
  model: join(root, 'model'),
  output: join(root, 'output'),
};

/** Writes the reason where SageMaker reads it, and ends the job as Failed. */
function fail(reason, code = 1) {
  try {
    mkdirSync(paths.output, { recursive: true });
    writeFileSync(join(paths.output, 'failure'), `${reason}\n`);
  } catch {}
  process.stderr.write(`veritrail train: ${reason}\n`);
  process.exit(code);
}

function readJson(name) {
  const file = join(paths.config, name);
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return fail(`cannot read ${file}: ${e.message}`);
  }
}

/** The one file of a channel folder: veritrail gives each channel one content-addressed object. */
function channelFile(name) {
  const dir = join(paths.data, name);
  let files;
  try {
    files = readdirSync(dir).filter((f) => !f.startsWith('.'));
  } catch (e) {
    return fail(`channel ${name} is missing (${dir}): ${e.message}`);
  }
  if (files.length !== 1) fail(`channel ${name} must hold exactly one file, found ${files.length}`);
  const file = join(dir, files[0]);
  if (!statSync(file).isFile()) fail(`channel ${name}: ${files[0]} is not a regular file`);
  return file;
}

async function sha256(file) {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk);
  return `sha256:${h.digest('hex')}`;
}

/** What `serve` runs: written into the model by a training job whose pipeline has trainer.predict. */
const SERVE_FILE = 'veritrail-serve.json';

/**
 * `serve`: the SageMaker inference contract (SageMaker Developer Guide, "Use your own inference
 * code with batch transform"): an HTTP server on SAGEMAKER_BIND_TO_PORT (default 8080) with
 * GET /ping and POST /invocations. Each invocation runs the pipeline's trainer.predict from the
 * copy of the scanned code the model carries (/opt/ml/model/code), the request body on stdin,
 * SM_MODEL_DIR=/opt/ml/model, and answers with its stdout (Batch Transform, SplitType None).
 */
function serve() {
  const port = Number(process.env.SAGEMAKER_BIND_TO_PORT ?? 8080);
  const spec = () => JSON.parse(readFileSync(join(paths.model, SERVE_FILE), 'utf8'));
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/ping') {
      const ready = existsSync(join(paths.model, SERVE_FILE));
      res.writeHead(ready ? 200 : 500, { 'content-type': 'text/plain' });
      res.end(ready ? 'ok\n' : `no ${SERVE_FILE} in the model: it was trained without trainer.predict\n`);
      return;
    }
    if (req.method !== 'POST' || req.url !== '/invocations') {
      res.writeHead(404).end();
      return;
    }
    const body = [];
    req.on('data', (c) => body.push(c));
    req.on('end', () => {
      let predict;
      try {
        predict = spec().predict;
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`cannot read ${SERVE_FILE}: ${e.message}\n`);
        return;
      }
      const [cmd, ...args] = predict;
      const child = spawn(cmd === 'node' ? process.execPath : cmd, args, {
        cwd: join(paths.model, 'code'),
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SM_MODEL_DIR: paths.model },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const out = [];
      let err = '';
      child.stdout.on('data', (c) => out.push(c));
      child.stderr.on('data', (c) => {
        err += c;
      });
      child.on('error', (e) => res.writeHead(500).end(`cannot start ${cmd}: ${e.message}\n`));
      child.on('close', (code) => {
        if (code === 0) res.writeHead(200, { 'content-type': 'text/csv' }).end(Buffer.concat(out));
        else
          res
            .writeHead(500, { 'content-type': 'text/plain' })
            .end(`predict exited with ${code}: ${err.slice(-400)}\n`);
      });
      child.stdin.end(Buffer.concat(body));
    });
  });
  server.listen(port, () => process.stderr.write(`veritrail serve: listening on ${port}\n`));
}

const mode = process.argv[2] ?? 'train';
if (mode === 'serve') {
  serve();
} else if (mode !== 'train') {
  process.stderr.write(`veritrail: "${mode}" is not a mode of this image: use train or serve\n`);
  process.exit(64);
} else {
  await train();
}

async function train() {
  const hp = readJson('hyperparameters.json');
  const inputs = readJson('inputdataconfig.json');
  let expected;
  try {
    expected = JSON.parse(hp.veritrail_channel_digests ?? '');
  } catch {
    fail(
      'hyperparameter veritrail_channel_digests is missing or not JSON: refusing to run unverified inputs',
    );
  }
  // Every channel SageMaker provided must have a recorded digest, and every recorded one must be there.
  const channels = [...new Set([...Object.keys(inputs), ...Object.keys(expected)])].sort();
  for (const name of channels) {
    if (!(name in inputs)) fail(`channel ${name} has a recorded digest but SageMaker did not provide it`);
    if (typeof expected[name] !== 'string') fail(`no recorded digest for channel ${name}: refusing to run`);
    const actual = await sha256(channelFile(name));
    if (actual !== expected[name]) {
      fail(`channel ${name} digest mismatch: recorded ${expected[name]}, found ${actual}; refusing to run`);
    }
  }

  if (!('code' in inputs)) fail('no code channel: veritrail passes the training code as the "code" channel');
  let command;
  try {
    command = JSON.parse(hp.veritrail_command ?? '');
  } catch {}
  if (!Array.isArray(command) || command.length === 0 || !command.every((a) => typeof a === 'string')) {
    fail('hyperparameter veritrail_command must be the trainer command as a JSON array of strings');
  }

  rmSync(paths.code, { recursive: true, force: true });
  mkdirSync(paths.code, { recursive: true });
  // GNU tar refuses members that leave the folder (absolute names, ..) by default.
  const untar = spawnSync('tar', ['-xzf', channelFile('code'), '-C', paths.code, '--no-same-owner'], {
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  if (untar.error || untar.status !== 0) {
    fail(`cannot unpack the code channel: ${untar.error?.message ?? String(untar.stderr).trim()}`);
  }
  for (const dir of [paths.model, join(paths.output, 'data')]) mkdirSync(dir, { recursive: true });
  rmSync(join(paths.output, 'failure'), { force: true });

  const [cmd, ...args] = command;
  const run = spawnSync(cmd === 'node' ? process.execPath : cmd, args, {
    cwd: paths.code,
    stdio: 'inherit',
    env: process.env,
  });
  if (run.error) fail(`cannot start ${cmd}: ${run.error.message}`);
  if (run.status !== 0) {
    const why = run.signal ? `signal ${run.signal}` : `code ${run.status}`;
    let reason = '';
    try {
      reason = readFileSync(join(paths.output, 'failure'), 'utf8').trim();
    } catch {}
    // Keep the trainer's own reason; write one when it left none.
    fail(reason || `the trainer (${command.join(' ')}) exited with ${why}`, run.status || 1);
  }
  // The model carries the code its inference command runs (the very files CheckCode scanned) and
  // the command itself, so that `serve` needs nothing but model.tar.gz.
  let predict;
  try {
    predict = hp.veritrail_predict === undefined ? undefined : JSON.parse(hp.veritrail_predict);
  } catch {}
  if (hp.veritrail_predict !== undefined) {
    if (!Array.isArray(predict) || predict.length === 0 || !predict.every((a) => typeof a === 'string')) {
      fail('hyperparameter veritrail_predict must be the inference command as a JSON array of strings');
    }
    cpSync(paths.code, join(paths.model, 'code'), { recursive: true });
    writeFileSync(join(paths.model, SERVE_FILE), `${JSON.stringify({ predict })}\n`);
  }
}
