import { Tags } from 'aws-cdk-lib';
import type { SSTConfig } from 'sst';
import { Auditor } from './stacks/Auditor.js';
import { Database } from './stacks/Database.js';
import { Deploy } from './stacks/Deploy.js';
import { Identity } from './stacks/Identity.js';
import { Keys } from './stacks/Keys.js';
import { Pipeline } from './stacks/Pipeline.js';
import { Storage } from './stacks/Storage.js';
import { githubDeploy, witnessSettings } from './stacks/settings.js';
import { Triggers } from './stacks/Triggers.js';
import { deployedUnit, UNIT_TAG } from './stacks/units.js';
import { Witness } from './stacks/Witness.js';

/**
 * veritrail on AWS (SST v2 on CDK): `npx sst deploy --stage <name>`; see docs/deploy.md.
 * The stacks are linked with `use()`, in dependency order: roles first, so that the key policies
 * (Keys) can name the exact roles that may sign, then keys, storage, the table, the functions and
 * state machine, and the EventBridge rules that start them.
 */
export default {
  config() {
    return { name: 'veritrail' };
  },
  stacks(app) {
    // A witness of another app's audit log, alone, ideally in another account (VERITRAIL_WITNESS=only).
    const witness = witnessSettings().mode;
    if (witness === 'only') {
      app.stack(Witness);
      return;
    }
    // One stage per business unit (VERITRAIL_UNIT, docs/units.md "On AWS"): every resource says whose it is.
    Tags.of(app).add(UNIT_TAG, deployedUnit().name);
    app.stack(Identity).stack(Keys).stack(Storage).stack(Database).stack(Auditor);
    // This app's own witness (VERITRAIL_WITNESS=stack), before Pipeline: its checkpointing functions ask it.
    if (witness === 'stack') app.stack(Witness);
    app.stack(Pipeline).stack(Triggers);
    // The GitHub Actions deploy role, only when a repository is named; last, since its grants name
    // every stack added before it (docs/deploy.md "Deploying from CI with short-lived credentials").
    if (githubDeploy()) app.stack(Deploy);
  },
} satisfies SSTConfig;
