"""veritrail channel check for Python trainers (one file, standard library only).

Copy it next to your training code and call verify_channels() before reading a single row. It checks
every input channel the control plane staged against the digests it recorded (the hyperparameter
veritrail_channel_digests) and raises ChannelError, naming the channel, on any difference. The
control plane re-hashes the channels itself after the trainer exits (sealed inputs); this check is
the trainer's own refusal to train on bytes nobody recorded. Contract: docs/trainers.md.
"""

import hashlib
import json
import os


class ChannelError(Exception):
    def __init__(self, channel, message):
        super().__init__(message)
        self.channel = channel


def _root(env):
    return env.get("VERITRAIL_OPT_ML", "/opt/ml")


def channel_dir(name, env=None):
    """The folder of a channel: SM_CHANNEL_<NAME>, else /opt/ml/input/data/<name>."""
    env = os.environ if env is None else env
    return env.get("SM_CHANNEL_" + name.upper(), os.path.join(_root(env), "input", "data", name))


def read_hyperparameters(env=None):
    """The hyperparameters SageMaker (or veritrail's local trainer) handed in, all strings."""
    env = os.environ if env is None else env
    config = env.get("SM_INPUT_CONFIG_DIR", os.path.join(_root(env), "input", "config"))
    with open(os.path.join(config, "hyperparameters.json"), encoding="utf-8") as f:
        return json.load(f)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def verify_channels(names=None, env=None):
    """Verifies the named channels (default: every recorded one except `code`); returns {name: file path}."""
    env = os.environ if env is None else env
    hp = read_hyperparameters(env)
    try:
        expected = json.loads(hp.get("veritrail_channel_digests", ""))
    except ValueError:
        raise ChannelError("*", "hyperparameter veritrail_channel_digests is missing or not JSON: refusing to train on unverified data")
    wanted = names if names is not None else [n for n in expected if n != "code"]
    files = {}
    for name in wanted:
        digest = expected.get(name)
        if not digest:
            raise ChannelError(name, "no recorded digest for channel %s: refusing to train on unverified data" % name)
        d = channel_dir(name, env)
        try:
            entries = [e for e in os.listdir(d) if not e.startswith(".")]
        except OSError as e:
            raise ChannelError(name, "channel %s cannot be read at %s: %s" % (name, d, e))
        if len(entries) != 1:
            raise ChannelError(name, "channel %s must hold exactly one file, found %d" % (name, len(entries)))
        path = os.path.join(d, entries[0])
        actual = _sha256(path)
        if actual != digest:
            raise ChannelError(name, "channel %s digest mismatch: recorded %s, found %s; refusing to train" % (name, digest, actual))
        files[name] = path
    return files
