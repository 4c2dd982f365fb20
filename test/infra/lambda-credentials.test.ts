/**
 * stacks/bundling.ts lambdaCredentialsOnly: a bundle built with the functions' options still gets
 * credentials from the environment (what Lambda provides), and the providers it leaves out decline
 * so that the SDK's chain moves on instead of failing with an unrelated error.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { sstEsbuild, sstEsbuildOptions } from '../../bench/bundles.js';
import { NODEJS_BUNDLING } from '../../stacks/bundling.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
let bundle = '';

beforeAll(async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'veritrail-creds-'));
  const entry = path.join(dir, 'entry.mjs');
  writeFileSync(
    entry,
    `import { defaultProvider } from '@aws-sdk/credential-provider-node';\n` +
      `try { const c = await defaultProvider()(); console.log(JSON.stringify({ ok: c.accessKeyId })); }\n` +
      `catch (e) { console.log(JSON.stringify({ error: e.name, message: e.message })); }\n`,
  );
  bundle = path.join(dir, 'creds.mjs');
  const esbuild = await sstEsbuild();
  await esbuild.build({
    ...sstEsbuildOptions(entry, NODEJS_BUNDLING, bundle),
    sourcemap: false,
    // The entry lives outside the project: resolve packages from its node_modules.
    nodePaths: [path.join(ROOT, 'node_modules')],
  });
}, 120_000);

const run = (env: Record<string, string>) => {
  const clean: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: tmpdir() };
  return JSON.parse(
    execFileSync(process.execPath, [bundle], {
      env: { ...clean, AWS_EC2_METADATA_DISABLED: 'true', ...env },
      encoding: 'utf8',
    }),
  ) as { ok?: string; error?: string; message?: string };
};

describe('a Lambda bundle’s credential chain', () => {
  it('leaves out the SSO, ini, process and web-identity providers and the clients they carry', () => {
    const js = readFileSync(bundle, 'utf8');
    expect(js).toContain('veritrail Lambda bundle: only environment');
    expect(js).not.toMatch(/sso-oidc|AssumeRoleWithWebIdentity/);
  });

  it('takes the credentials Lambda puts in the environment', () => {
    expect(
      run({ AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret', AWS_SESSION_TOKEN: 'token' }),
    ).toEqual({ ok: 'AKIDEXAMPLE' });
  });

  it('without them, the left-out providers decline and the chain ends in a credentials error', () => {
    const out = run({ AWS_PROFILE: 'someone' });
    expect(out.error).toBe('CredentialsProviderError');
  });
});
