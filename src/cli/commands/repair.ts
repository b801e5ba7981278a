import type { Command } from 'commander';
import { interruptedOperations, repairInterrupted, type RepairReport } from '../../core/ops/repair.js';
import { action } from '../app.js';

function render(reports: RepairReport[], dryRun: boolean): string {
  if (reports.length === 0) return 'nothing to repair: no vms command was left half-done';
  return reports
    .map((r) => {
      const head = `vms ${r.command} (pid ${r.pid}, started ${r.started}) on ${r.vms.join(', ') || 'the host'}`;
      const lines = [
        ...r.done.map((d) => `  ${dryRun ? 'to do' : 'done'}: ${d}`),
        ...r.failed.map((f) => `  failed: ${f}`),
        ...r.unknown.map((u) => `  cannot be undone by vms (check by hand): ${u}`),
      ];
      return [r.skipped ? `${head}: another vms command is on it` : head, ...lines].join('\n');
    })
    .join('\n');
}

export function register(program: Command): void {
  program
    .command('repair')
    .description('finish what vms commands that were killed left half-done (every command also does this first)')
    .option('-n, --dry-run', 'only say what is left')
    .action(
      action<{ dryRun?: boolean }>(async ({ ctx, opts }) => {
        const reports: RepairReport[] = opts.dryRun
          ? (await interruptedOperations(ctx)).map((j) => ({
              operation: j.id,
              command: j.command,
              pid: j.pid,
              vms: j.vms,
              started: j.started,
              done: [
                ...(j.finish ? [j.finish.what] : []),
                ...j.steps
                  .filter((s) => s.action)
                  .map((s) => s.what)
                  .reverse(),
              ],
              failed: [],
              unknown: j.steps.filter((s) => !s.action).map((s) => s.what),
            }))
          : await repairInterrupted(ctx);
        const failed = reports.some((r) => r.failed.length > 0);
        return {
          data: { operations: reports },
          human: () => render(reports, Boolean(opts.dryRun)),
          exitCode: failed ? 1 : 0,
        };
      }),
    );
}
