import type { Command } from 'commander';
import { attachTerminal } from '../../console/terminal.js';
import { consoleTarget, viewerPlan } from '../../core/vm/attach.js';
import { VmsError } from '../../errors.js';
import { action } from '../app.js';

export function register(program: Command): void {
  program
    .command('console')
    .description('attach to the serial console (Ctrl-] leaves)')
    .argument('<name>', 'VM name')
    .action(
      action(async ({ ctx, io }, name) => {
        const target = await consoleTarget(ctx, name!);
        if (!io.stdinIsTTY || !io.stdoutIsTTY) {
          throw new VmsError(
            'usage',
            'vms console needs an interactive terminal',
            target.log ? `the console transcript is in ${target.log}` : undefined,
          );
        }
        await attachTerminal(
          target.socket,
          { input: io.stdin, output: io.stdout },
          `Connected to ${name}'s serial console`,
        );
        return { data: target };
      }),
    );

  program
    .command('viewer')
    .description('open the graphical display (SPICE) in virt-viewer')
    .argument('<name>', 'VM name')
    .action(
      action(async ({ ctx }, name) => {
        const plan = await viewerPlan(ctx, name!);
        if (plan.launch) {
          const code = await ctx.runner.interactive(plan.launch.cmd, plan.launch.args);
          if (code !== 0) throw new VmsError('failed', `${plan.launch.cmd} exited with status ${code}`);
        }
        return { data: plan, human: () => (plan.launch ? '' : `${plan.uri}\nhint: ${plan.reason}`) };
      }),
    );
}
