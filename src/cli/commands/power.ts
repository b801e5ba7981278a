import type { Command } from 'commander';
import { killVm, startVm, stopVm, type PowerResult } from '../../core/vm/power.js';
import { usageError } from '../../errors.js';
import { action } from '../app.js';

const say = (verb: string, unchanged: string) => (r: PowerResult) =>
  r.changed
    ? `${r.name} ${verb}${r.wasPaused ? ' (forced off: it was paused)' : r.forced ? ' (forced off after the timeout)' : ''}`
    : `${r.name} is already ${unchanged}`;

export function register(program: Command): void {
  program
    .command('start')
    .description('start a VM')
    .argument('<name>', 'VM name')
    .action(action(async ({ ctx }, name) => ({ data: await startVm(ctx, name!), human: say('started', 'running') })));

  program
    .command('stop')
    .description('shut a VM down cleanly (ACPI) and wait for it to power off')
    .argument('<name>', 'VM name')
    .option('--timeout <seconds>', 'how long to wait for the guest', '60')
    .option('--force', 'power it off when it does not shut down in time')
    .action(
      action<{ timeout: string; force?: boolean }>(async ({ ctx, opts }, name) => {
        const timeoutSeconds = Number(opts.timeout);
        if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 0)
          throw usageError(`invalid --timeout '${opts.timeout}'`, 'give whole seconds, e.g. --timeout 120');
        return {
          data: await stopVm(ctx, name!, { timeoutSeconds, force: Boolean(opts.force) }),
          human: say('stopped', 'shut off'),
        };
      }),
    );

  program
    .command('kill')
    .description('power a VM off at once (like pulling the plug)')
    .argument('<name>', 'VM name')
    .action(
      action(async ({ ctx }, name) => ({ data: await killVm(ctx, name!), human: say('powered off', 'shut off') })),
    );
}
