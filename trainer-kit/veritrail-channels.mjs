// veritrail channel check for Node trainers (one file, no dependencies): copy it next to your
// training code and call verifyChannels() before reading a single row. It checks every input
// channel the control plane staged against the digests it recorded (the hyperparameter
// veritrail_channel_digests) and throws, naming the channel, on any difference. The control plane
// re-hashes the channels itself after the trainer exits (sealed inputs); this check is the
// trainer's own refusal to train on bytes nobody recorded. Contract: docs/trainers.md.
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export class ChannelError extends Error {
  constructor(channel, message) {
    super(message);
    this.name = 'ChannelError';
    this.channel = channel;
  }
}

function root(env) {
  return env.VERITRAIL_OPT_ML ?? '/opt/ml';
}

/** The folder of a channel: SM_CHANNEL_<NAME>, else /opt/ml/input/data/<name>. */
export function channelDir(name, env = process.env) {
  return env[`SM_CHANNEL_${name.toUpperCase()}`] ?? join(root(env), 'input', 'data', name);
}

/** The hyperparameters SageMaker (or veritrail's local trainer) handed in, all strings. */
export function readHyperparameters(env = process.env) {
  const dir = env.SM_INPUT_CONFIG_DIR ?? join(root(env), 'input', 'config');
  return JSON.parse(readFileSync(join(dir, 'hyperparameters.json'), 'utf8'));
}

async function sha256(path) {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk);
  return `sha256:${h.digest('hex')}`;
}

/**
 * Verifies the named channels (default: every channel with a recorded digest except `code`, which
 * is a bundle the image unpacks) and returns { <channel>: <path of its one file> }.
 */
export async function verifyChannels(names, env = process.env) {
  const hp = readHyperparameters(env);
  let expected;
  try {
    expected = JSON.parse(hp.veritrail_channel_digests ?? '');
  } catch {
    throw new ChannelError(
      '*',
      'hyperparameter veritrail_channel_digests is missing or not JSON: refusing to train on unverified data',
    );
  }
  const wanted = names ?? Object.keys(expected).filter((n) => n !== 'code');
  const files = {};
  for (const name of wanted) {
    const digest = expected[name];
    if (!digest)
      throw new ChannelError(
        name,
        `no recorded digest for channel ${name}: refusing to train on unverified data`,
      );
    const dir = channelDir(name, env);
    let entries;
    try {
      entries = readdirSync(dir).filter((f) => !f.startsWith('.'));
    } catch (e) {
      throw new ChannelError(name, `channel ${name} cannot be read at ${dir}: ${e.message}`);
    }
    if (entries.length !== 1)
      throw new ChannelError(name, `channel ${name} must hold exactly one file, found ${entries.length}`);
    const path = join(dir, entries[0]);
    const actual = await sha256(path);
    if (actual !== digest) {
      throw new ChannelError(
        name,
        `channel ${name} digest mismatch: recorded ${digest}, found ${actual}; refusing to train`,
      );
    }
    files[name] = path;
  }
  return files;
}
