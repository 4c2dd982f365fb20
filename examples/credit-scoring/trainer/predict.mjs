#!/usr/bin/env node
// The inference contract of this trainer (docs/trainers.md, "Inference contract"): the control
// plane, not the trainer, scores the model on a held-out test split the trainer never saw.
//   stdin    CSV with a header row: the feature columns (no label, no protected attributes)
//   stdout   CSV with a header row `score,prediction`: one row per input row, in order, prediction 0 or 1
//   model    SM_MODEL_DIR (default /opt/ml/model): the unpacked model.tar.gz this trainer wrote
// Locally veritrail runs `node trainer/predict.mjs` in its own sandboxed process; on AWS the image's
// `serve` entrypoint answers POST /invocations with the same predictCsv (SageMaker Batch Transform).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Loads model.json from a model folder. */
export function loadModel(dir = process.env.SM_MODEL_DIR ?? '/opt/ml/model') {
  const model = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  if (model.type !== 'logistic-regression') throw new Error(`unknown model type ${model.type}`);
  return model;
}

/** Scores CSV text (header + feature rows) with the model; returns the predictions CSV text. */
export function predictCsv(text, model) {
  const lines = text.split('\n').filter((l) => l.trim().length > 0);
  const header = (lines[0] ?? '').split(',').map((h) => h.trim());
  const idx = model.features.map((f) => header.indexOf(f));
  const missing = model.features.filter((_, k) => idx[k] < 0);
  if (missing.length > 0) throw new Error(`input lacks feature columns ${missing.join(', ')}`);
  const out = ['score,prediction'];
  for (const line of lines.slice(1)) {
    const r = line.split(',');
    let t = model.bias;
    model.features.forEach((_, j) => {
      t += model.weights[j] * ((Number(r[idx[j]]) - model.mean[j]) / model.std[j]);
    });
    const s = 1 / (1 + Math.exp(-t));
    out.push(`${s.toFixed(6)},${s >= model.threshold ? 1 : 0}`);
  }
  return `${out.join('\n')}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    const model = loadModel();
    process.stdout.write(predictCsv(readFileSync(0, 'utf8'), model));
  } catch (e) {
    process.stderr.write(`predict failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  }
}
