/**
 * src/aws/deployed.ts: finding a deployed stage through its SSM parameters, reading its run table,
 * and starting a run through its start function, against aws-sdk-client-mock (SSM, Lambda, DynamoDB).
 */
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { GetParametersByPathCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  findStage,
  openDeployedRuns,
  operatorStartPayload,
  parseDatasetArgument,
  startDeployed,
} from '../../src/aws/deployed.js';
import { parseOperatorStart } from '../../src/core/events/operator.js';
import { awsError, codeOf, errorOf } from './aws/helpers.js';

const ssmMock = mockClient(SSMClient);
const lambdaMock = mockClient(LambdaClient);
const ddbMock = mockClient(DynamoDBClient);
const clients = () => ({
  ssm: new SSMClient({ region: 'eu-west-1' }),
  lambda: new LambdaClient({ region: 'eu-west-1' }),
  dynamodb: new DynamoDBClient({ region: 'eu-west-1' }),
});
const ENV = { AWS_REGION: 'eu-west-1' };

const P = '/veritrail/prod';
const PARAMS = {
  'table-name': 'prod-veritrail-Database-runsTable-1A2B3C',
  'state-machine-arn': 'arn:aws:states:eu-west-1:111122223333:stateMachine:prod-veritrail-training-pipeline',
  'start-function-name': 'prod-veritrail-Pipeline-start-4D5E6F',
  'landing-bucket': 'prod-veritrail-storage-landingbucket-abc123',
  'artifacts-bucket': 'prod-veritrail-storage-artifactsbucket-abc123',
  'audit-bucket': 'prod-veritrail-storage-auditbucket-abc123',
  'attestation-key-arn': 'arn:aws:kms:eu-west-1:111122223333:key/att',
  'checkpoint-key-arn': 'arn:aws:kms:eu-west-1:111122223333:key/cp',
  'data-key-arn': 'arn:aws:kms:eu-west-1:111122223333:key/data',
};
const asParameters = (entries: [string, string][]) =>
  entries.map(([name, value]) => ({ Name: `${P}/${name}`, Value: value, Type: 'String' as const }));

/** The parameters over two pages, as GetParametersByPath returns at most 10 per page. */
function deployed(params: Record<string, string> = PARAMS) {
  const entries = Object.entries(params);
  ssmMock
    .on(GetParametersByPathCommand, { Path: P, NextToken: undefined })
    .resolves({ Parameters: asParameters(entries.slice(0, 5)), NextToken: 'page-2' })
    .on(GetParametersByPathCommand, { Path: P, NextToken: 'page-2' })
    .resolves({ Parameters: asParameters(entries.slice(5)) });
}

const invokeResponse = (value: unknown, functionError?: string) => ({
  StatusCode: 200,
  ...(functionError ? { FunctionError: functionError } : {}),
  Payload: new TextEncoder().encode(JSON.stringify(value)) as never,
});

beforeEach(() => {
  ssmMock.reset();
  lambdaMock.reset();
  ddbMock.reset();
});

describe('findStage', () => {
  it('reads every parameter under /veritrail/<stage>/, across pages', async () => {
    deployed();
    const stage = await findStage('prod', ENV, clients());
    expect(stage).toMatchObject({
      stage: 'prod',
      tableName: PARAMS['table-name'],
      stateMachineArn: PARAMS['state-machine-arn'],
      startFunctionName: PARAMS['start-function-name'],
      landingBucket: PARAMS['landing-bucket'],
      artifactsBucket: PARAMS['artifacts-bucket'],
      auditBucket: PARAMS['audit-bucket'],
      attestationKeyArn: PARAMS['attestation-key-arn'],
      checkpointKeyArn: PARAMS['checkpoint-key-arn'],
      dataKeyArn: PARAMS['data-key-arn'],
    });
    expect(stage.parameters).toEqual(PARAMS);
    const calls = ssmMock.commandCalls(GetParametersByPathCommand).map((c) => c.args[0].input);
    expect(calls).toEqual([
      { Path: P, Recursive: false, WithDecryption: false },
      { Path: P, Recursive: false, WithDecryption: false, NextToken: 'page-2' },
    ]);
  });

  describe('when the stage is not deployed', () => {
    it('says so, naming the stage and the deploy command', async () => {
      ssmMock.on(GetParametersByPathCommand).resolves({ Parameters: [] });
      const e = await errorOf(findStage('staging', ENV, clients()));
      expect(e).toMatchObject({ code: 'USAGE', details: { stage: 'staging' } });
      expect((e as Error).message).toContain('"staging"');
      expect((e as Error).message).toContain('npx sst deploy --stage staging');
    });
  });

  describe('when the stage is partly deployed', () => {
    it('names the missing parameters', async () => {
      const { 'start-function-name': _s, ...rest } = PARAMS;
      ssmMock.on(GetParametersByPathCommand).resolves({ Parameters: asParameters(Object.entries(rest)) });
      const e = await errorOf(findStage('prod', ENV, clients()));
      expect(e).toMatchObject({ code: 'USAGE', details: { missing: ['start-function-name'] } });
    });
  });

  it('refuses a stage name that is not one before calling AWS', async () => {
    for (const bad of ['', 'prod/other', '../x', 'a b']) {
      expect(await codeOf(findStage(bad, ENV, clients())), bad).toBe('USAGE');
    }
    expect(ssmMock.calls()).toHaveLength(0);
  });

  it('translates access denied and throttling at the boundary', async () => {
    ssmMock.on(GetParametersByPathCommand).rejects(awsError('AccessDeniedException', 400));
    const e = await errorOf(findStage('prod', ENV, clients()));
    expect(e).toMatchObject({ code: 'ACCESS_DENIED' });
    expect((e as Error).message).toContain('ssm:GetParametersByPath');
    ssmMock.on(GetParametersByPathCommand).rejects(awsError('ThrottlingException', 400));
    expect(await codeOf(findStage('prod', ENV, clients()))).toBe('TRANSIENT');
  });
});

describe('openDeployedRuns', () => {
  it('is the run store over the deployed table', async () => {
    deployed();
    ddbMock.on(GetItemCommand).resolves({});
    const c = clients();
    const runs = await openDeployedRuns('prod', ENV, c);
    await expect(runs.get('r-abcdefghijklmnopqrstuvwxyz')).resolves.toBeUndefined();
    expect(ddbMock.commandCalls(GetItemCommand)[0]?.args[0].input.TableName).toBe(PARAMS['table-name']);
  });
});

describe('parseDatasetArgument', () => {
  it('reads s3://bucket/key and s3://bucket/key?versionId=id', () => {
    expect(parseDatasetArgument('s3://landing/credit-scoring/applications.csv')).toEqual({
      uri: 's3://landing/credit-scoring/applications.csv',
    });
    expect(
      parseDatasetArgument(
        's3://landing/credit-scoring/applications.csv?versionId=3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY',
      ),
    ).toEqual({
      uri: 's3://landing/credit-scoring/applications.csv',
      versionId: '3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY',
    });
    expect(parseDatasetArgument('s3://b/k?versionId=a%2Bb').versionId).toBe('a+b');
  });

  it.each([
    'landing/credit-scoring/a.csv',
    'file:///tmp/a.csv',
    's3://landing',
    's3://landing/',
    's3:///key',
    's3://b/k?versionId=',
    's3://b/k?versionid=abc',
    's3://b/k?versionId=a&force=true',
    's3://b/k?versionId=a&versionId=b',
    's3://b/k?x=1',
    's3://b/k?versionId=%E0%A4%A',
    's3://b/k#frag',
  ])('refuses %j with USAGE', (text) => {
    expect(() => parseDatasetArgument(text)).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });
});

describe('startDeployed', () => {
  const request = {
    pipeline: 'credit-scoring',
    dataset: `s3://${PARAMS['landing-bucket']}/credit-scoring/applications.csv?versionId=v7`,
    requestId: 'cli-2026-01-01-1',
  };

  it('invokes the deployed start function with an operator start and returns what it started', async () => {
    deployed();
    lambdaMock.on(InvokeCommand).resolves(
      invokeResponse({
        status: 'started',
        runId: 'r-x',
        pipeline: 'credit-scoring',
        executionName: 'credit-scoring-operator-r-x',
        idempotencyKey: 'k',
        trigger: 'operator',
      }),
    );
    await expect(startDeployed('prod', ENV, request, clients())).resolves.toEqual({
      runId: 'r-x',
      executionArn:
        'arn:aws:states:eu-west-1:111122223333:execution:prod-veritrail-training-pipeline:credit-scoring-operator-r-x',
      alreadyStarted: false,
      status: 'started',
    });
    const input = lambdaMock.commandCalls(InvokeCommand)[0]?.args[0].input;
    expect(input?.FunctionName).toBe(PARAMS['start-function-name']);
    expect(input?.InvocationType).toBe('RequestResponse');
    const payload = JSON.parse(new TextDecoder().decode(input?.Payload as Uint8Array));
    expect(payload).toEqual({
      pipeline: 'credit-scoring',
      dataset: { uri: `s3://${PARAMS['landing-bucket']}/credit-scoring/applications.csv`, versionId: 'v7' },
      force: false,
      requestId: 'cli-2026-01-01-1',
    });
    // It is exactly what the start function's schema accepts.
    expect(parseOperatorStart(payload)).toMatchObject({ pipeline: 'credit-scoring', force: false });
  });

  it('reports a run the same request already started', async () => {
    deployed();
    lambdaMock.on(InvokeCommand).resolves(
      invokeResponse({
        status: 'duplicate',
        runId: 'r-x',
        pipeline: 'credit-scoring',
        executionName: 'credit-scoring-operator-r-x',
        runStatus: 'RUNNING',
        relaunched: false,
      }),
    );
    await expect(startDeployed('prod', ENV, { ...request, force: true }, clients())).resolves.toMatchObject({
      runId: 'r-x',
      alreadyStarted: true,
      status: 'duplicate',
      runStatus: 'RUNNING',
    });
  });

  it('reports a skip: nothing changed since a successful run', async () => {
    deployed();
    lambdaMock.on(InvokeCommand).resolves(
      invokeResponse({
        status: 'skipped',
        runId: 'r-y',
        pipeline: 'credit-scoring',
        sinceRunId: 'r-x',
        reason: 'no change since run r-x',
        bundleKey: 'sha256/abc',
      }),
    );
    await expect(startDeployed('prod', ENV, request, clients())).resolves.toEqual({
      runId: 'r-y',
      alreadyStarted: false,
      status: 'skipped',
      reason: 'no change since run r-x',
      sinceRunId: 'r-x',
    });
  });

  it('turns a rejection into the domain error it names', async () => {
    deployed();
    lambdaMock.on(InvokeCommand).resolves(
      invokeResponse({
        status: 'rejected',
        error: { code: 'DATASET_MISSING', message: 'no object at s3://l/k version v7' },
        pipeline: 'credit-scoring',
      }),
    );
    const e = await errorOf(startDeployed('prod', ENV, request, clients()));
    expect(e).toMatchObject({ code: 'DATASET_MISSING', message: 'no object at s3://l/k version v7' });
  });

  it('refuses a bad request before reading the stage or invoking anything', async () => {
    expect(await codeOf(startDeployed('prod', ENV, { ...request, dataset: 's3://b/k?v=1' }, clients()))).toBe(
      'USAGE',
    );
    expect(
      await codeOf(startDeployed('prod', ENV, { ...request, pipeline: 'Bad Name!' }, clients())),
    ).toMatch(/EVENT_INVALID|PIPELINE_INVALID|USAGE/);
    expect(ssmMock.calls()).toHaveLength(0);
    expect(lambdaMock.calls()).toHaveLength(0);
  });

  describe('when the start function throws', () => {
    it('keeps the domain code of a Veritrail.<code> error', async () => {
      deployed();
      lambdaMock.on(InvokeCommand).resolves(
        invokeResponse(
          {
            errorType: 'Veritrail.DATASET_MISSING',
            errorMessage: JSON.stringify({
              code: 'DATASET_MISSING',
              message: 'no object at s3://l/k version v7',
            }),
            trace: [],
          },
          'Unhandled',
        ),
      );
      const e = await errorOf(startDeployed('prod', ENV, request, clients()));
      expect(e).toMatchObject({ code: 'DATASET_MISSING' });
      expect((e as Error).message).toContain('no object at s3://l/k version v7');
    });

    it('reports any other error as INTERNAL with its message', async () => {
      deployed();
      lambdaMock
        .on(InvokeCommand)
        .resolves(invokeResponse({ errorType: 'TypeError', errorMessage: 'x is undefined' }, 'Unhandled'));
      const e = await errorOf(startDeployed('prod', ENV, request, clients()));
      expect(e).toMatchObject({ code: 'INTERNAL' });
      expect((e as Error).message).toContain('x is undefined');
    });
  });

  it('says to deploy again when the answer is not a start result', async () => {
    deployed();
    lambdaMock
      .on(InvokeCommand)
      .resolves(invokeResponse({ runId: 'r-x', alreadyStarted: false, status: 'PENDING' }));
    const e = await errorOf(startDeployed('prod', ENV, request, clients()));
    expect(e).toMatchObject({ code: 'INTERNAL' });
    expect((e as Error).message).toContain('npx sst deploy --stage prod');
  });

  it('says what IAM action was denied', async () => {
    deployed();
    lambdaMock.on(InvokeCommand).rejects(awsError('AccessDeniedException', 403));
    const e = await errorOf(startDeployed('prod', ENV, request, clients()));
    expect((e as Error).message).toContain('lambda:InvokeFunction');
  });
});

describe('operatorStartPayload', () => {
  it('leaves out what was not given', () => {
    expect(operatorStartPayload({ pipeline: 'fraud', dataset: 's3://acme-landing/incoming/x.csv' })).toEqual({
      pipeline: 'fraud',
      dataset: { uri: 's3://acme-landing/incoming/x.csv' },
      force: false,
    });
  });
});
