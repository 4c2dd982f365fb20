/**
 * Lineage in the embedded runtime: one JSON file per OpenLineage RunEvent under `<home>/lineage/`,
 * named `<runId>.<eventType>.json` so that emitting the same event again writes nothing.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunEvent } from '../core/lineage.js';
import { redactValue } from '../core/redact.js';
import type { LineageSink } from '../ports.js';
import { homePaths } from './home.js';

/** Job namespace of the embedded runtime's lineage events. */
export const LOCAL_LINEAGE_NAMESPACE = 'veritrail.local';

export class FsLineageSink implements LineageSink {
  readonly dir: string;

  constructor(home: string) {
    this.dir = homePaths(home).lineage;
  }

  /** The file an event is written to. The veritrail run id is in the `veritrail` run facet. */
  fileOf(event: RunEvent): string {
    const runId = String(event.run.facets?.veritrail?.runId ?? event.run.runId);
    return join(this.dir, `${runId.replace(/[^A-Za-z0-9_-]/g, '_')}.${event.eventType}.json`);
  }

  async emit(event: RunEvent): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    try {
      // Exclusive create: the first event of a kind for a run is the one kept.
      // Invariant 7: free text (error messages, facets) redacted before it is written.
      await writeFile(this.fileOf(event), `${JSON.stringify(redactValue(event), null, 2)}\n`, { flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }

  /** Every event written so far, in file-name order. */
  async list(): Promise<RunEvent[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const out: RunEvent[] = [];
    for (const n of names.filter((n) => n.endsWith('.json')).sort()) {
      out.push(JSON.parse(await readFile(join(this.dir, n), 'utf8')) as RunEvent);
    }
    return out;
  }
}
