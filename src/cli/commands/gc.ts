import type { Command } from 'commander';
import { collectGarbage, planGc, type GcFile, type GcPlan } from '../../core/storage/gc.js';
import { usageError, VmsError } from '../../errors.js';
import { formatSize } from '../../size.js';
import { action } from '../app.js';
import { canPrompt } from '../io.js';

const fileLine = (f: GcFile) => `  ${f.path}  ${formatSize(f.bytes)}  (made for ${f.madeFor.join(', ')})`;

/** What the plan keeps and why: said whether or not anything is removed. */
const keptLines = (plan: GcPlan) => plan.keep.map((k) => `kept ${k.path}: ${k.reason}`);

function renderPlan(plan: GcPlan, verb: string): string {
  if (plan.remove.length === 0)
    return [
      ...keptLines(plan),
      plan.keep.length ? 'nothing removed' : 'nothing to remove: every file vms made is in use',
    ].join('\n');
  return [
    `${verb} ${plan.remove.length} file(s) vms made that no VM uses any more:`,
    ...plan.remove.map(fileLine),
    ...keptLines(plan),
  ].join('\n');
}

export function register(program: Command): void {
  program
    .command('gc')
    .description(
      'remove files vms made (in the images and state dirs) that no VM uses any more, e.g. a detached data disk; shows them and asks first',
    )
    .option('-y, --yes', 'do not ask')
    .option('--dry-run', 'only show what would be removed')
    .action(
      action<{ yes?: boolean; dryRun?: boolean }>(async ({ ctx, opts, io, prompter }) => {
        const plan = await planGc(ctx);
        if (opts.dryRun || plan.remove.length === 0) {
          return {
            data: { ...plan, removed: [], dryRun: Boolean(opts.dryRun) },
            human: () => renderPlan(plan, 'would remove'),
          };
        }
        let result;
        if (opts.yes) result = await collectGarbage(ctx, plan);
        else {
          if (!canPrompt(io))
            throw usageError(
              'refusing to remove files without confirmation',
              'add --yes (no terminal to ask on), or --dry-run to see what would go',
            );
          io.stderr.write(renderPlan(plan, 'This removes') + '\n');
          if (!(await prompter.confirm('Remove them?')))
            throw new VmsError('conflict', 'nothing removed', 'nothing was changed');
          // Planned again under the locks: what is removed must be what the user agreed to, even if a VM took up a file meanwhile.
          result = await collectGarbage(ctx, plan, true);
        }
        return {
          data: { ...result, dryRun: false },
          human: () =>
            [
              ...result.remove.map((f) => `removed ${f.path} (${formatSize(f.bytes)})`),
              ...keptLines(result),
              ...result.notUpdated.map((n) => `warning: ${n.vm}'s metadata still lists removed files: ${n.reason}`),
            ].join('\n'),
        };
      }),
    );
}
