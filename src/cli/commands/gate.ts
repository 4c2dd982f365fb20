/**
 * `veritrail gate --policy <file> --input <facts.json> [--json]`: evaluate a gate policy offline,
 * exactly as the pipeline's Gate step does, so that a policy can be tried before it is deployed.
 * Exit 0 allow, 3 deny, 2 usage error, malformed policy (with its line) or malformed facts.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isVeritrailError, VeritrailError } from '../../core/errors.js';
import {
  DEFAULT_POLICY_TEXT,
  evaluateGate,
  type GateFacts,
  gateFactsFrom,
  parseGateFacts,
} from '../../core/gate/index.js';
import { parseOrExit } from '../args.js';
import { type CliIo, EXIT } from '../io.js';

export const summary = 'evaluate a gate policy offline';

const USAGE = `usage: veritrail gate --input <facts.json> [--policy <file.cedar>] [--pipeline <name>] [--model <digest>] [--json]

  --input     the facts to decide on (JSON; model in docs/gates.md). "worst" may be left out:
              it is then computed from "attributes".
  --policy    Cedar policy file; default: the shipped policies/default.cedar
  --pipeline  principal id, Veritrail::Pipeline::"<name>" (default "pipeline")
  --model     resource id, Veritrail::Model::"<digest>" (default "unknown")
  --json      print {"decision", "reasons", "policies", "diagnostics"} as JSON

exit status: 0 allow, 3 deny, 2 usage error or malformed policy / facts`;

interface Options {
  input: string;
  policy: string | undefined;
  pipeline: string | undefined;
  model: string | undefined;
  json: boolean;
}

function parseOptions(args: string[]): Options | 'help' {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      policy: { type: 'string' },
      input: { type: 'string' },
      pipeline: { type: 'string' },
      model: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return 'help';
  if (positionals.length > 0)
    throw new VeritrailError('USAGE', `unexpected argument "${positionals[0] as string}"`);
  if (values.input === undefined) throw new VeritrailError('USAGE', '--input <facts.json> is required');
  return {
    input: values.input,
    policy: values.policy,
    pipeline: values.pipeline,
    model: values.model,
    json: values.json === true,
  };
}

export async function run(args: string[], io: CliIo): Promise<number> {
  const parsed = parseOrExit(io, 'gate', USAGE, () => parseOptions(args));
  if (!parsed.ok) return parsed.exitCode;
  if (parsed.value === 'help') {
    io.out(USAGE);
    return EXIT.OK;
  }
  const opts: Options = parsed.value;

  try {
    const policyText =
      opts.policy === undefined ? DEFAULT_POLICY_TEXT : await readText(io, opts.policy, 'policy');
    const facts = toFacts(parseJson(await readText(io, opts.input, 'facts'), opts.input), opts.input);
    const decision = evaluateGate({
      policyText,
      policyFile: opts.policy ?? 'policies/default.cedar',
      facts,
      pipeline: opts.pipeline,
      model: opts.model,
    });
    if (opts.json) {
      io.out(JSON.stringify(decision, null, 2));
    } else {
      io.out(decision.decision === 'allow' ? 'ALLOW' : 'DENY');
      decision.reasons.forEach((reason, i) => {
        const id = decision.policies[i];
        io.out(`  - ${reason}${id === undefined ? '' : `  [${id}]`}`);
      });
      for (const d of decision.diagnostics ?? []) io.err(`veritrail gate: ${d}`);
    }
    return decision.decision === 'allow' ? EXIT.OK : EXIT.REJECTED;
  } catch (e) {
    if (isVeritrailError(e, 'USAGE') || isVeritrailError(e, 'POLICY_INVALID')) {
      io.err(`veritrail gate: ${e.message}`);
      return EXIT.USAGE;
    }
    throw e;
  }
}

async function readText(io: CliIo, file: string, what: string): Promise<string> {
  try {
    return await readFile(resolve(io.cwd, file), 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new VeritrailError(
      'USAGE',
      `cannot read the ${what} file ${file}${code === undefined ? '' : ` (${code})`}`,
    );
  }
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new VeritrailError('USAGE', `${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Full GateFacts, or the same without "worst", which is then computed from the attributes. */
function toFacts(value: unknown, file: string): GateFacts {
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && !('worst' in value)) {
    const partial = parseGateFacts(
      {
        ...value,
        worst: {
          disparateImpactMin: 0,
          disparateImpactMax: 0,
          equalizedOddsDifference: 0,
          demographicParityDifference: 0,
        },
      },
      file,
    );
    return gateFactsFrom(partial);
  }
  return parseGateFacts(value, file);
}
