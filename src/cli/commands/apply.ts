import type { Command } from 'commander';
import { applyProfile, type ApplyResult } from '../../core/guest/apply.js';
import { action } from '../app.js';

export function register(program: Command): void {
  program
    .command('apply')
    .description('run a profile (and its parents) on an existing VM; it is left running or shut off as it was')
    .argument('<name>', 'VM name')
    .argument('<profile>', 'profile name')
    .action(
      action(async ({ ctx }, name, profile) => ({
        data: await applyProfile(ctx, name!, profile!),
        human: (r: ApplyResult) =>
          `applied ${r.applied.join(' → ')} to ${r.name} (now ${r.state})\ntranscript: ${r.transcript}`,
      })),
    );
}
