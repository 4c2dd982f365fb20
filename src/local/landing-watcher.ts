/**
 * The local landing folder: `<landing>/<pipeline name>/`. A file is handed on only once it is
 * complete — its size and modification time unchanged across two polls (a file renamed into place
 * is complete at once and is picked up at the next poll) — and temporary names that downloaders and
 * editors use while writing are never looked at. The same content under another name is the start
 * service's business (content identity), not the watcher's.
 */

import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { hashStream } from '../cas.js';
import { digestFromHex } from '../core/digest.js';
import type { PipelineDefinition } from '../core/pipeline.js';
import type { LandingIndex, PinnedDataset } from '../ports.js';

/** Dotfiles and the temporary names of partial downloads and editors. */
export function isTemporaryName(name: string): boolean {
  return name.startsWith('.') || /\.(part|tmp|crdownload|swp)$/i.test(name) || name.endsWith('~');
}

export interface LandedCandidate {
  pipeline: string;
  path: string;
  size: number;
  mtimeMs: number;
}

interface Seen {
  size: number;
  mtimeMs: number;
  /** Handed on already (in this process). */
  done: boolean;
}

export interface LandingWatcherOptions {
  landingDir: string;
  pipelines: readonly string[];
  /** Poll interval; default 1000 ms. */
  pollMs?: number;
  /** Called once per complete file version; errors are reported through `onError`. */
  onFile(file: LandedCandidate): Promise<void>;
  onError?(e: unknown, path: string): void;
}

export class LandingWatcher implements LandingIndex {
  private readonly seen = new Map<string, Seen>();
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: LandingWatcherOptions) {}

  folderOf(pipeline: string): string {
    return join(this.options.landingDir, pipeline);
  }

  /** Creates the folders, scans at once (files that arrived while nothing ran) and then polls. */
  async start(): Promise<void> {
    for (const p of this.options.pipelines) await mkdir(this.folderOf(p), { recursive: true });
    await this.scan();
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.scan().finally(() => this.schedule());
    }, this.options.pollMs ?? 1000);
  }

  /** Stops polling and waits for the scan under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.scanning;
  }

  /** One poll of every landing folder (exposed for tests and the first scan). */
  scan(): Promise<void> {
    this.scanning ??= this.scanAll().finally(() => {
      this.scanning = undefined;
    });
    return this.scanning;
  }

  private async entriesOf(pipeline: string): Promise<LandedCandidate[]> {
    const dir = this.folderOf(pipeline);
    const names = await readdir(dir).catch(() => [] as string[]);
    const out: LandedCandidate[] = [];
    for (const name of names) {
      if (isTemporaryName(name)) continue;
      const path = join(dir, name);
      // lstat: a symbolic link is ignored, not followed (it could point anywhere on the machine,
      // and the start path refuses it anyway: ignoring it here starts no run that must fail).
      const st = await lstat(path).catch(() => undefined);
      // Regular files only: links, folders, sockets and FIFOs in the landing folder are not datasets.
      if (st?.isFile() !== true) continue;
      out.push({ pipeline, path, size: st.size, mtimeMs: st.mtimeMs });
    }
    return out;
  }

  private async scanAll(): Promise<void> {
    const present = new Set<string>();
    for (const pipeline of this.options.pipelines) {
      for (const c of await this.entriesOf(pipeline)) {
        if (this.stopped) return;
        present.add(c.path);
        const prev = this.seen.get(c.path);
        if (prev === undefined || prev.size !== c.size || prev.mtimeMs !== c.mtimeMs) {
          // New, or still changing: look again at the next poll.
          this.seen.set(c.path, { size: c.size, mtimeMs: c.mtimeMs, done: false });
          continue;
        }
        if (prev.done) continue;
        prev.done = true;
        try {
          await this.options.onFile(c);
        } catch (e) {
          this.options.onError?.(e, c.path);
        }
      }
    }
    for (const path of this.seen.keys()) if (!present.has(path)) this.seen.delete(path);
  }

  /** True when the watcher has seen this file and it is not yet complete. */
  private inProgress(c: LandedCandidate): boolean {
    const s = this.seen.get(c.path);
    return s === undefined || !s.done || s.size !== c.size || s.mtimeMs !== c.mtimeMs;
  }

  /**
   * The newest complete file of a pipeline (scheduled retraining), pinned by its content digest.
   * Files still being written are passed over.
   */
  async latest(def: PipelineDefinition): Promise<PinnedDataset | undefined> {
    const files = (await this.entriesOf(def.name)).filter((c) => !this.inProgress(c));
    files.sort((a, b) => b.mtimeMs - a.mtimeMs || (a.path < b.path ? 1 : -1));
    const [newest] = files;
    if (newest === undefined) return undefined;
    const { hex } = await hashStream(createReadStream(newest.path));
    return { uri: pathToFileURL(newest.path).href, digest: digestFromHex(hex) };
  }
}
