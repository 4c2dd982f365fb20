// Worker thread: streams files and returns their SHA-256. Plain JavaScript so it runs the same from
// source (tsx) and from dist/ without a loader.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';

// One reusable buffer per worker: constant memory whatever the file size.
const buffer = Buffer.allocUnsafe(4 * 1024 * 1024);

parentPort.on('message', ({ id, path }) => {
  try {
    const fd = openSync(path, 'r');
    const hash = createHash('sha256');
    let size = 0;
    try {
      for (;;) {
        const n = readSync(fd, buffer, 0, buffer.length, null);
        if (n === 0) break;
        hash.update(n === buffer.length ? buffer : buffer.subarray(0, n));
        size += n;
      }
    } finally {
      closeSync(fd);
    }
    parentPort.postMessage({ id, hex: hash.digest('hex'), size });
  } catch (e) {
    parentPort.postMessage({ id, error: { code: e.code, message: e.message } });
  }
});
