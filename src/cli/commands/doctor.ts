import chalk from 'chalk';
import type { Command } from 'commander';
import { doctor, type CheckResult } from '../../core/host/doctor.js';
import { action } from '../app.js';

const MARK = { pass: chalk.green('✔'), warn: chalk.yellow('!'), fail: chalk.red('✗') };

function render(checks: CheckResult[]): string {
  const width = Math.max(...checks.map((c) => c.check.length));
  const lines = checks.flatMap((c) => [
    `${MARK[c.status]} ${c.check.padEnd(width)}  ${c.message}`,
    ...(c.fix ? [`  ${' '.repeat(width)}  fix: ${c.fix}`] : []),
  ]);
  const count = (s: CheckResult['status']) => checks.filter((c) => c.status === s).length;
  return [...lines, '', `${count('pass')} passed, ${count('warn')} warnings, ${count('fail')} failed`].join('\n');
}

export function register(program: Command): void {
  program
    .command('doctor')
    .description('check this host for what vms needs, and say how to fix what is missing')
    .action(
      action(async ({ ctx }) => {
        const checks = await doctor(ctx);
        const failed = checks.some((c) => c.status === 'fail');
        return { data: { ok: !failed, checks }, human: () => render(checks), exitCode: failed ? 1 : 0 };
      }),
    );
}
