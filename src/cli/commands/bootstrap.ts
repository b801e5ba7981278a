import chalk from 'chalk';
import type { Command } from 'commander';
import { applyBootstrap, planHost, type BootstrapStep, type HostState } from '../../core/host/bootstrap.js';
import { formatCommand } from '../../runner.js';
import { usageError, VmsError } from '../../errors.js';
import { action } from '../app.js';
import { canPrompt } from '../io.js';

interface Flags {
  yes?: boolean;
  dryRun?: boolean;
  network: boolean;
}

const MANAGER = { arch: 'pacman', debian: 'apt', fedora: 'dnf' } as const;

function renderPlan(state: HostState, steps: BootstrapStep[]): string {
  const width = Math.max(...steps.map((s) => s.name.length));
  const who = state.user ? `for ${state.user}` : 'for root';
  const lines = [`host: ${state.distro} (${MANAGER[state.distro]}), ${state.root ? 'as root' : 'with sudo'}, ${who}`];
  for (const s of steps) {
    const mark = s.commands.length ? chalk.yellow('→') : s.after ? chalk.yellow('!') : chalk.green('✔');
    lines.push(`${mark} ${s.name.padEnd(width)}  ${s.summary}`);
    for (const c of s.commands) lines.push(`    $ ${formatCommand(c[0]!, c.slice(1))}`);
    if (s.after && !s.commands.length) lines.push(`    ${s.after}`);
  }
  return lines.join('\n');
}

export function register(program: Command): void {
  program
    .command('bootstrap')
    .description('install and set up what vms needs on this host (packages, libvirt, group, directories, network)')
    .option('-y, --yes', 'do it without asking')
    .option('--dry-run', 'print the exact plan and change nothing')
    .option('--no-network', "define libvirt's default NAT network but do not start it")
    .action(
      action<Flags>(async ({ ctx, opts, globals, io, prompter }) => {
        const { state, steps } = await planHost(ctx, { network: opts.network });
        const todo = steps.filter((s) => s.commands.length > 0);
        const data = { distro: state.distro, dryRun: Boolean(opts.dryRun), changed: false, steps };
        if (opts.dryRun || todo.length === 0) {
          return {
            data,
            human: () =>
              `${renderPlan(state, steps)}\n\n${todo.length ? `--dry-run: nothing was changed (${todo.length} ${todo.length === 1 ? 'step' : 'steps'} to do)` : 'nothing to do: this host is ready for vms'}`,
          };
        }
        if (!opts.yes && (!canPrompt(io) || globals.json)) {
          throw usageError(
            'vms bootstrap changes this host: add --yes to go ahead without a terminal to ask on',
            '`vms bootstrap --dry-run` shows what it would do',
          );
        }
        if (!globals.json) io.stderr.write(renderPlan(state, steps) + '\n'); // the whole plan, also what needs nothing
        if (!opts.yes && !(await prompter.confirm('Run these commands?')))
          throw new VmsError(
            'conflict',
            'nothing was changed',
            'run it again and answer y, or use --dry-run to see the plan',
          );
        await applyBootstrap(ctx, steps);
        const after = steps.filter((s) => s.after).map((s) => `${s.name}: ${s.after}`);
        return {
          data: { ...data, changed: true },
          human: () => [`done: ${todo.map((s) => s.name).join(', ')}`, ...after].join('\n'),
        };
      }),
    );
}
