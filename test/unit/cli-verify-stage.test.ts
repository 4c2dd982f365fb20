/**
 * `veritrail verify <runId> --stage <stage>`: the options that make no sense together get one line,
 * and an undeployed stage says how to deploy it (the verification itself runs in
 * test/aws-e2e/pipeline.e2e.test.ts (g), as the auditor role, through the IAM replay).
 */
import { GetParametersByPathCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyDeployedRun } from '../../src/aws/verify.js';
import { main } from '../../src/cli/main.js';
import { captureIo } from '../helpers/workspace.js';

async function cli(...args: string[]) {
  const io = captureIo(process.cwd(), { AWS_REGION: 'eu-west-1' });
  const exit = await main(args, io);
  return { exit, err: io.stderr.join('') };
}

describe('verify --stage', () => {
  const ssm = mockClient(SSMClient);
  afterEach(() => ssm.reset());

  it('refuses --trust-stage-keys without --stage, and --trust-state-keys with it', async () => {
    const a = await cli('verify', 'r-1', '--trust-stage-keys');
    expect(a.exit).toBe(2);
    expect(a.err).toContain('--trust-stage-keys needs --stage <stage>');
    const b = await cli('verify', 'r-1', '--stage', 'prod', '--trust-state-keys');
    expect(b.exit).toBe(2);
    expect(b.err).toContain('with --stage, use --trust-stage-keys');
  });

  it('a stage without published parameters is a usage error naming the deploy command', async () => {
    ssm.on(GetParametersByPathCommand).resolves({ Parameters: [] });
    await expect(
      verifyDeployedRun(
        'prod',
        'r-1',
        { stageKeys: true },
        { AWS_REGION: 'eu-west-1' },
        { ssm: new SSMClient({}) },
      ),
    ).rejects.toThrow(/npx sst deploy --stage prod/);
  });

  it('a stage deployed before the artifacts bucket and checkpoint key were published says to deploy again', async () => {
    const p = (name: string, value: string) => ({ Name: `/veritrail/prod/${name}`, Value: value });
    ssm.on(GetParametersByPathCommand).resolves({
      Parameters: [
        p('table-name', 't'),
        p('state-machine-arn', 'arn:aws:states:eu-west-1:111122223333:stateMachine:x'),
        p('start-function-name', 'f'),
        p('landing-bucket', 'l'),
        p('audit-bucket', 'a'),
        p('attestation-key-arn', 'arn:aws:kms:eu-west-1:111122223333:key/k'),
      ],
    });
    await expect(
      verifyDeployedRun(
        'prod',
        'r-1',
        { stageKeys: true },
        { AWS_REGION: 'eu-west-1' },
        { ssm: new SSMClient({}) },
      ),
    ).rejects.toThrow(
      /does not publish \/veritrail\/prod\/artifacts-bucket, \/veritrail\/prod\/checkpoint-key-arn; deploy it again/,
    );
  });
});
