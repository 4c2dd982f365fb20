/**
 * Lambda on an EventBridge schedule (every 5 minutes, stacks/Triggers.ts): closes runs whose
 * execution ended without recording it, finishes Train steps whose SageMaker event never came, and
 * keeps waiting Train states alive with heartbeats. The work is src/aws/reconcile.ts.
 */
import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import { eventHandler } from '../src/aws/handler.js';
import {
  type ReconcileReport,
  type ReconcileRuntime,
  reconcileOrThrow,
  SageMakerTrainingJobs,
} from '../src/aws/reconcile.js';
import { AWS_STEP_PORTS, awsLineage, awsSigner, awsStepFunctions, composeAws } from '../src/aws/runtime.js';

/**
 * Composition root: the runs and claims, the audit log, Step Functions, SageMaker, lineage for closed
 * runs, and the attestation signer for the model report of a run it closes.
 */
export const handler = eventHandler<ReconcileReport, ReconcileRuntime>(
  async (rt) => reconcileOrThrow(rt),
  composeAws(
    'functions/reconcile.ts',
    { ...AWS_STEP_PORTS, signer: awsSigner, lineage: awsLineage },
    (ctx) => ({
      stepFunctions: awsStepFunctions(ctx),
      config: ctx.config,
      trainingJobs: new SageMakerTrainingJobs(
        ctx.clients.get('sagemaker', (retry) => new SageMakerClient(retry)),
      ),
    }),
  ),
);
