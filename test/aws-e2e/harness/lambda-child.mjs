// One Lambda function's execution environment: a Node 22 process that imports the deployed bundle
// from its task root (a temp folder with no node_modules above it) and runs the handler for each
// invocation it receives over IPC, one at a time, as a Lambda sandbox does. A thrown error comes
// back as the Lambda runtime reports it: errorType (the error's name), errorMessage, trace.
//
// As Lambda's nodejs22.x runtime: the function's layers are on NODE_PATH (the host sets it to the
// emulated Powertools layer) and ES module imports resolve through it (lambda-node-path.mjs); each
// invocation's X-Ray trace header is in process.env._X_AMZN_TRACE_ID while it runs.
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

register('./lambda-node-path.mjs', import.meta.url);

if (!process.version.startsWith('v22.')) {
  process.send?.({
    type: 'fatal',
    error: `the function host must run on Node 22 (the nodejs22.x runtime), this is ${process.version}`,
  });
  process.exit(3);
}

const root = process.env.LAMBDA_TASK_ROOT;
const handlerSpec = process.env._HANDLER;
const dot = handlerSpec.lastIndexOf('.');
const file = `${root}/${handlerSpec.slice(0, dot)}.mjs`;
const exportName = handlerSpec.slice(dot + 1);

let handler;
try {
  const mod = await import(pathToFileURL(file).href);
  handler = mod[exportName];
  if (typeof handler !== 'function') throw new Error(`${file} exports no function "${exportName}"`);
  process.send({ type: 'ready', version: process.version });
} catch (e) {
  process.send({ type: 'fatal', error: `Runtime.ImportModuleError: ${e?.stack ?? e}` });
  process.exit(2);
}

// The host is gone (test ended or killed): a sandbox does not outlive its service.
process.on('disconnect', () => process.exit(0));

let queue = Promise.resolve();
process.on('message', (msg) => {
  if (msg?.type !== 'invoke') return;
  queue = queue.then(async () => {
    const started = Date.now();
    if (msg.traceId) process.env._X_AMZN_TRACE_ID = msg.traceId;
    else delete process.env._X_AMZN_TRACE_ID;
    const context = {
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      functionVersion: '$LATEST',
      invokedFunctionArn: msg.functionArn,
      memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      awsRequestId: msg.requestId,
      logGroupName: `/aws/lambda/${process.env.AWS_LAMBDA_FUNCTION_NAME}`,
      getRemainingTimeInMillis: () => Math.max(0, msg.timeoutMs - (Date.now() - started)),
      callbackWaitsForEmptyEventLoop: true,
    };
    try {
      const result = await handler(msg.event, context);
      process.send({
        type: 'result',
        id: msg.id,
        result: result === undefined ? null : JSON.parse(JSON.stringify(result)),
      });
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      process.send({
        type: 'error',
        id: msg.id,
        errorType: err.name || 'Error',
        errorMessage: err.message,
        trace: String(err.stack ?? '').split('\n'),
      });
    }
  });
});
