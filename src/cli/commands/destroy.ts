import type { Command } from 'commander';
import { destroyVm, planDestroy, type DestroyPlan } from '../../core/vm/destroy.js';
import { usageError, VmsError } from '../../errors.js';
import { action } from '../app.js';
import { canPrompt, type Io, type Prompter } from '../io.js';

async function confirm(io: Io, prompter: Prompter, plan: DestroyPlan): Promise<boolean> {
  const lines = [
    `This removes VM ${plan.name} (powered off first if it runs) and deletes:`,
    ...plan.remove.map((p) => `  ${p}`),
    `  ${plan.dir}`,
    ...plan.keep.map((k) => `It keeps ${k.path} (${k.reason}).`),
    ...(plan.unreadable.length
      ? [`warning: ${plan.unreadable.join(', ')} cannot be read; every base they may stand on is kept`]
      : []),
  ];
  io.stderr.write(lines.join('\n') + '\n');
  return prompter.confirm('Destroy it?');
}

export function register(program: Command): void {
  program
    .command('destroy')
    .alias('rm')
    .description('remove a VM, its NVRAM and its own disks (a base goes only when nothing uses it)')
    .argument('<name>', 'VM name')
    .option('-y, --yes', 'do not ask')
    .action(
      action<{ yes?: boolean }>(async ({ ctx, opts, io, prompter }, name) => {
        let result;
        if (opts.yes) result = await destroyVm(ctx, name!);
        else {
          if (!canPrompt(io))
            throw usageError(`refusing to destroy ${name} without confirmation`, 'add --yes (no terminal to ask on)');
          const plan = await planDestroy(ctx, name!);
          if (!(await confirm(io, prompter, plan)))
            throw new VmsError('conflict', 'not destroyed', 'nothing was changed');
          // Planned again under the VM's lock: what is removed must be what the user agreed to, even if a clone appeared meanwhile.
          result = await destroyVm(ctx, name!, plan);
        }
        return {
          data: result,
          human: () =>
            [
              `${result.name} destroyed`,
              ...result.removed.map((p) => `  deleted ${p}`),
              ...result.kept.map((k) => `  kept ${k.path} (${k.reason})`),
            ].join('\n'),
        };
      }),
    );
}
