/**
 * The model report in a real browser: headless Chromium (Debian's `chromium`), driven over the
 * DevTools protocol on --remote-debugging-pipe with node built-ins only, networking disabled.
 * The page must load with no console error, no exception and no request at all beyond the file
 * itself; a screenshot and a PDF (the "print to PDF" path) are taken. Skips where Chromium is absent.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildModelReportStatement, signStatement, statementDigest } from '../../src/core/attest/index.js';
import type { FairnessPredicate } from '../../src/core/attest/predicates.js';
import { buildReportFacts } from '../../src/core/report/facts.js';
import { openFileSigner } from '../../src/local/file-signer.js';
import { renderReportHtml } from '../../src/report/html.js';
import { reportEvidence } from '../helpers/report-fixture.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
if (!CHROMIUM)
  console.warn('report-browser.test.ts: skipped, Chromium is not installed (apt-get install chromium)');

/** A DevTools protocol client over the pipe: NUL-terminated JSON messages on fds 3 (in) and 4 (out). */
class Cdp {
  private next = 1;
  private buf = '';
  private readonly pending = new Map<number, { ok: (v: unknown) => void; ko: (e: Error) => void }>();
  readonly events: { method: string; params: Record<string, unknown>; sessionId?: string }[] = [];
  private waiters: { method: string; resolve: () => void }[] = [];

  constructor(
    private readonly toBrowser: Writable,
    fromBrowser: Readable,
  ) {
    fromBrowser.setEncoding('utf8');
    fromBrowser.on('data', (chunk: string) => {
      this.buf += chunk;
      for (let i = this.buf.indexOf('\0'); i >= 0; i = this.buf.indexOf('\0')) {
        const msg = JSON.parse(this.buf.slice(0, i)) as {
          id?: number;
          result?: unknown;
          error?: { message: string };
          method?: string;
          params?: Record<string, unknown>;
          sessionId?: string;
        };
        this.buf = this.buf.slice(i + 1);
        if (msg.id !== undefined) {
          const p = this.pending.get(msg.id);
          this.pending.delete(msg.id);
          if (msg.error) p?.ko(new Error(msg.error.message));
          else p?.ok(msg.result);
        } else if (msg.method) {
          this.events.push({
            method: msg.method,
            params: msg.params ?? {},
            ...(msg.sessionId ? { sessionId: msg.sessionId } : {}),
          });
          const waiting = this.waiters.filter((w) => w.method === msg.method);
          this.waiters = this.waiters.filter((w) => w.method !== msg.method);
          for (const w of waiting) w.resolve();
        }
      }
    });
  }

  send<T = Record<string, unknown>>(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
  ): Promise<T> {
    const id = this.next++;
    this.toBrowser.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    return new Promise<T>((ok, ko) => this.pending.set(id, { ok: ok as (v: unknown) => void, ko }));
  }

  once(method: string): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ method, resolve }));
  }
}

let dir: string;
let htmlPath: string;
let browser: ChildProcess | undefined;
let cdp: Cdp;

beforeAll(async () => {
  if (!CHROMIUM) return;
  dir = mkdtempSync(join(tmpdir(), 'veritrail-browser-'));
  const e = reportEvidence();
  const fairness = e.fairness as FairnessPredicate;
  const withDi: FairnessPredicate = {
    ...fairness,
    metrics: [
      ...fairness.metrics,
      {
        name: 'disparateImpact',
        attribute: 'sex',
        value: 0.91,
        interval: { lower: 0.8, upper: 1.05 },
        threshold: { min: 0.8, max: 1.25 },
        passed: true,
      },
      {
        name: 'equalizedOddsDifference',
        attribute: 'sex',
        value: 0.04,
        threshold: { max: 0.1 },
        passed: true,
      },
    ],
  };
  const statement = buildModelReportStatement(buildReportFacts({ ...e, fairness: withDi }));
  const signer = await openFileSigner(join(dir, 'signing.key'));
  const signed = await signStatement(statement, signer);
  htmlPath = join(dir, 'report.html');
  writeFileSync(
    htmlPath,
    await renderReportHtml({ statement, statementDigest: statementDigest(statement), bundle: signed.bundle }),
  );
  browser = spawn(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-extensions',
      // Networking off: every host resolves nowhere and every connection goes to a closed port.
      '--host-resolver-rules=MAP * ~NOTFOUND',
      '--proxy-server=127.0.0.1:9',
      `--user-data-dir=${join(dir, 'profile')}`,
      '--remote-debugging-pipe',
      'about:blank',
    ],
    { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] },
  );
  cdp = new Cdp(browser.stdio[3] as Writable, browser.stdio[4] as Readable);
}, 60_000);

afterAll(async () => {
  if (browser && browser.exitCode === null) {
    const exited = new Promise((r) => browser?.once('exit', r));
    await cdp.send('Browser.close').catch(() => undefined);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (browser.exitCode === null) browser.kill();
  }
  if (dir) rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
});

describe.skipIf(!CHROMIUM)('the model report in headless Chromium, offline', () => {
  it('loads with no console error and no request beyond the file; screenshot and PDF are taken', async () => {
    const { targetInfos } = await cdp.send<{ targetInfos: { targetId: string; type: string }[] }>(
      'Target.getTargets',
    );
    const page = targetInfos.find((t) => t.type === 'page');
    expect(page).toBeDefined();
    const { sessionId } = await cdp.send<{ sessionId: string }>('Target.attachToTarget', {
      targetId: page?.targetId,
      flatten: true,
    });
    for (const m of ['Runtime.enable', 'Log.enable', 'Network.enable', 'Page.enable'])
      await cdp.send(m, {}, sessionId);
    await cdp.send(
      'Network.emulateNetworkConditions',
      { offline: true, latency: 0, downloadThroughput: -1, uploadThroughput: -1 },
      sessionId,
    );
    const loaded = cdp.once('Page.loadEventFired');
    const url = pathToFileURL(htmlPath).href;
    await cdp.send('Page.navigate', { url }, sessionId);
    await loaded;
    const { result } = await cdp.send<{ result: { value: number } }>(
      'Runtime.evaluate',
      { expression: 'document.querySelectorAll("svg").length', returnByValue: true },
      sessionId,
    );
    expect(result.value).toBeGreaterThanOrEqual(3);

    const ev = cdp.events.filter((e) => e.sessionId === sessionId);
    const consoleErrors = ev.filter(
      (e) =>
        (e.method === 'Runtime.consoleAPICalled' && e.params.type === 'error') ||
        e.method === 'Runtime.exceptionThrown' ||
        (e.method === 'Log.entryAdded' && (e.params.entry as { level?: string }).level === 'error'),
    );
    expect(consoleErrors).toEqual([]);
    const requests = ev
      .filter((e) => e.method === 'Network.requestWillBeSent')
      .map((e) => (e.params.request as { url: string }).url);
    expect(requests).toEqual([url]);
    expect(ev.filter((e) => e.method === 'Network.loadingFailed')).toEqual([]);

    const shot = await cdp.send<{ data: string }>(
      'Page.captureScreenshot',
      { format: 'png', captureBeyondViewport: true },
      sessionId,
    );
    const png = Buffer.from(shot.data, 'base64');
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    writeFileSync(join(tmpdir(), 'veritrail-report-screenshot.png'), png);
    const pdf = await cdp.send<{ data: string }>('Page.printToPDF', { printBackground: false }, sessionId);
    expect(Buffer.from(pdf.data, 'base64').subarray(0, 5).toString()).toBe('%PDF-');
  }, 60_000);
});
