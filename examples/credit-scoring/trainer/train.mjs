#!/usr/bin/env node
// Logistic-regression trainer that follows the SageMaker training container contract, so the
// same code runs as a local child process or inside a SageMaker training job. It reads the
// SM_* variables when they are set (veritrail's local trainer, SageMaker's Python toolkit) and
// otherwise the fixed /opt/ml layout that SageMaker gives any plain image (VERITRAIL_OPT_ML moves
// that root, for tests):
//   SM_CHANNEL_TRAIN, SM_CHANNEL_VALIDATION   /opt/ml/input/data/{train,validation}  CSV, header row
//   SM_INPUT_CONFIG_DIR                       /opt/ml/input/config   hyperparameters.json (strings)
//   SM_MODEL_DIR                              /opt/ml/model          packed as model.tar.gz
//   SM_OUTPUT_DATA_DIR                        /opt/ml/output/data    validation-set predictions (a
//                                             self-report: the control plane scores the model itself
//                                             on a test split through predict.mjs)
//   SM_OUTPUT_DIR                             /opt/ml/output         `failure`: one-line reason
// Any failure writes the reason to <output>/failure and exits non-zero (SageMaker marks the job
// Failed and reports that reason). Before reading a single row it checks every channel file
// against the digests the control plane recorded (veritrail-channels.mjs, the one-file helper of
// trainer-kit/) and refuses to train on any mismatch.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readHyperparameters, verifyChannels } from './veritrail-channels.mjs';

const env = process.env;
const root = env.VERITRAIL_OPT_ML ?? '/opt/ml';
const outputDir = env.SM_OUTPUT_DIR ?? join(root, 'output');
const modelDir = env.SM_MODEL_DIR ?? join(root, 'model');
const dataDir = env.SM_OUTPUT_DATA_DIR ?? join(outputDir, 'data');

function fail(reason) {
  try {
    mkdirSync(outputDir, { recursive: true });
    writeFileSync(join(outputDir, 'failure'), `${reason}\n`);
  } catch {}
  process.stderr.write(`training failed: ${reason}\n`);
  process.exit(2);
}

function parseCsv(text) {
  // Processed channels are written by veritrail's Preprocess step: plain numeric CSV, no quoting.
  const lines = text.split('\n').filter((l) => l.length > 0);
  const header = lines[0].split(',');
  return { header, rows: lines.slice(1).map((l) => l.split(',')) };
}

// Any error not caught below (an unreadable file, bad JSON) still ends as a reported failure.
process.on('uncaughtException', (e) => fail(e instanceof Error ? e.message : String(e)));
process.on('unhandledRejection', (e) => fail(e instanceof Error ? e.message : String(e)));

const hp = readHyperparameters();
// The shared one-file helper (trainer-kit/): every channel against its recorded digest, or fail.
let files;
try {
  files = await verifyChannels(['train', 'validation']);
} catch (e) {
  fail(e.message);
}

const label = hp.veritrail_label;
const features = String(hp.veritrail_features ?? '')
  .split(',')
  .filter(Boolean);
if (!label || features.length === 0)
  fail('hyperparameters veritrail_label and veritrail_features are required');
const epochs = Number(hp.epochs ?? 300);
const lr = Number(hp.learning_rate ?? 0.1);
const l2 = Number(hp.l2 ?? 0.001);
const threshold = Number(hp.threshold ?? 0.5);

function load(path) {
  const { header, rows } = parseCsv(readFileSync(path, 'utf8'));
  const idx = features.map((f) => header.indexOf(f));
  const li = header.indexOf(label);
  if (li < 0 || idx.some((i) => i < 0)) fail(`${path}: missing label or feature columns`);
  const x = rows.map((r) => idx.map((i) => Number(r[i])));
  const y = rows.map((r) => Number(r[li]));
  return { x, y };
}

const train = load(files.train);
const validation = load(files.validation);
const d = features.length;
const mean = new Array(d).fill(0);
const std = new Array(d).fill(0);
for (const row of train.x) for (let j = 0; j < d; j++) mean[j] += row[j] / train.x.length;
for (const row of train.x) for (let j = 0; j < d; j++) std[j] += (row[j] - mean[j]) ** 2 / train.x.length;
for (let j = 0; j < d; j++) std[j] = Math.sqrt(std[j]) || 1;
const z = (row) => row.map((v, j) => (v - mean[j]) / std[j]);
const xs = train.x.map(z);

// Full-batch gradient descent: deterministic, so the same data gives the same model bytes.
const w = new Array(d).fill(0);
let b = 0;
const sigmoid = (t) => 1 / (1 + Math.exp(-t));
for (let e = 0; e < epochs; e++) {
  const gw = new Array(d).fill(0);
  let gb = 0;
  for (let i = 0; i < xs.length; i++) {
    const row = xs[i];
    let t = b;
    for (let j = 0; j < d; j++) t += w[j] * row[j];
    const err = sigmoid(t) - train.y[i];
    for (let j = 0; j < d; j++) gw[j] += err * row[j];
    gb += err;
  }
  for (let j = 0; j < d; j++) w[j] -= lr * (gw[j] / xs.length + l2 * w[j]);
  b -= lr * (gb / xs.length);
}

const score = (row) => {
  const r = z(row);
  let t = b;
  for (let j = 0; j < d; j++) t += w[j] * r[j];
  return sigmoid(t);
};
mkdirSync(modelDir, { recursive: true });
mkdirSync(dataDir, { recursive: true });
const r6 = (v) => Number(v.toFixed(6));
writeFileSync(
  join(modelDir, 'model.json'),
  `${JSON.stringify({ type: 'logistic-regression', features, label, threshold, mean: mean.map(r6), std: std.map(r6), weights: w.map(r6), bias: r6(b) }, null, 2)}\n`,
);
const lines = ['row,score,prediction'];
let correct = 0;
validation.x.forEach((row, i) => {
  const s = score(row);
  const p = s >= threshold ? 1 : 0;
  if (p === validation.y[i]) correct++;
  lines.push(`${i},${s.toFixed(6)},${p}`);
});
writeFileSync(join(dataDir, 'predictions.csv'), `${lines.join('\n')}\n`);
process.stdout.write(
  `trained on ${xs.length} rows; validation accuracy ${(correct / validation.x.length).toFixed(4)}\n`,
);
