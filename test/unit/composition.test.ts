/**
 * The composition roots (src/aws/runtime.ts `composeAws`) and the middlewares every Lambda shares
 * (src/aws/handler.ts): a function gets exactly the ports it names, a port it did not name fails
 * loudly, the runtime is composed once per cold start unless the invocation brings its own, and a
 * state-machine task's errors reach Step Functions under the names the ASL matches.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { plainHandler } from '../../src/aws/handler.js';
import { AWS_STEP_PORTS, awsSigner, composeAws } from '../../src/aws/runtime.js';
import { VeritrailError } from '../../src/core/errors.js';
import { type Runtime, runtimeOf } from '../../src/runtime.js';

const ENV: Record<string, string> = {
  VERITRAIL_TABLE: 'veritrail-dev-runs',
  VERITRAIL_LANDING_BUCKET: 'acme-landing',
  VERITRAIL_ARTIFACTS_BUCKET: 'acme-artifacts',
  VERITRAIL_AUDIT_BUCKET: 'acme-audit',
  VERITRAIL_DATA_KEY_ARN: 'arn:aws:kms:eu-west-1:111122223333:key/data',
  VERITRAIL_SIGNING_KEY_ARN: 'arn:aws:kms:eu-west-1:111122223333:key/sign',
  VERITRAIL_CHECKPOINT_KEY_ARN: 'arn:aws:kms:eu-west-1:111122223333:key/checkpoint',
  VERITRAIL_STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:111122223333:stateMachine:veritrail',
  AWS_REGION: 'eu-west-1',
};

const fakeRuntime = (): Runtime =>
  runtimeOf('test', { actor: 'tester', mode: 'local', now: () => new Date(0) }, {});

describe('composeAws', () => {
  it('builds the named ports and leaves the others as guards that name the function and the port', () => {
    const rt = composeAws('functions/gate.ts', { ...AWS_STEP_PORTS, signer: awsSigner })(ENV);
    expect(rt.mode).toBe('aws');
    expect(rt.signer.keyId).toBe(ENV.VERITRAIL_SIGNING_KEY_ARN);
    expect(typeof rt.objects.put).toBe('function');
    expect(typeof rt.audit.append).toBe('function');
    expect(rt.lineage).toBeUndefined();
    // Reading a missing port is harmless (spread, passed on); using it is an INTERNAL error.
    const { trainer } = { ...rt };
    expect(() => trainer.start).toThrow(
      expect.objectContaining({
        code: 'INTERNAL',
        message: expect.stringMatching(/functions\/gate\.ts was composed without the "trainer" port/),
      }),
    );
    expect(() => rt.registry.register).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });

  it('adds the AWS-only extras a function asks for', () => {
    const rt = composeAws('functions/x.ts', {}, (ctx) => ({ bucket: ctx.config.buckets.artifacts }))(ENV);
    expect(rt.bucket).toBe('acme-artifacts');
  });

  it('names every missing environment variable with USAGE', () => {
    expect(() => composeAws('functions/x.ts', AWS_STEP_PORTS)({})).toThrow(
      expect.objectContaining({ code: 'USAGE', message: expect.stringMatching(/VERITRAIL_TABLE/) }),
    );
  });
});

describe('the ports middleware', () => {
  const saved = { ...process.env };
  beforeEach(() => {
    Object.assign(process.env, ENV);
  });
  afterEach(() => {
    for (const k of Object.keys(ENV)) delete process.env[k];
    Object.assign(process.env, saved);
  });

  it('composes once per cold start, from process.env', async () => {
    const compose = vi.fn(() => fakeRuntime());
    const handler = plainHandler(async (rt) => rt.actor, compose);
    expect(await handler({}, {} as never)).toBe('tester');
    expect(await handler({}, {} as never)).toBe('tester');
    expect(compose).toHaveBeenCalledTimes(1);
    expect(compose).toHaveBeenCalledWith(process.env);
  });

  it('retries a composition that failed instead of keeping the failure', async () => {
    let calls = 0;
    const handler = plainHandler(
      async (rt) => rt.actor,
      () => {
        calls++;
        if (calls === 1) throw new VeritrailError('USAGE', 'missing environment variable VERITRAIL_TABLE');
        return fakeRuntime();
      },
    );
    await expect(handler({}, {} as never)).rejects.toMatchObject({ name: 'Veritrail.USAGE' });
    expect(await handler({}, {} as never)).toBe('tester');
  });

  it('uses the runtime the invocation carries and composes nothing (the local runner)', async () => {
    const compose = vi.fn(() => fakeRuntime());
    const handler = plainHandler(async (rt) => rt.mode, compose);
    const local = { ...fakeRuntime(), mode: 'local' as const };
    expect(await handler({}, { runtime: local } as never)).toBe('local');
    expect(compose).not.toHaveBeenCalled();
  });
});

describe('task errors', () => {
  it('leave a state-machine task as Veritrail.<CODE>, which the ASL Retry and Catch match', async () => {
    const handler = plainHandler(
      async () => {
        throw new VeritrailError('TRANSIENT', 'dynamodb:UpdateItem was throttled');
      },
      () => fakeRuntime(),
    );
    await expect(handler({}, {} as never)).rejects.toMatchObject({
      name: 'Veritrail.TRANSIENT',
      info: { code: 'TRANSIENT', message: 'dynamodb:UpdateItem was throttled' },
    });
  });
});
