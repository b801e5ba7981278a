import { basename } from 'node:path';
import type { Command } from 'commander';
import { listVms } from '../../core/vm/list.js';
import { action } from '../app.js';
import { colorState, size, table } from '../format.js';

export function register(program: Command): void {
  program
    .command('list')
    .alias('ls')
    .description('list VMs (clones with the VM they were cloned from)')
    .action(
      action(async ({ ctx }) => {
        const vms = await listVms(ctx);
        return {
          data: vms,
          human: () =>
            vms.length === 0
              ? 'no VMs yet: `vms create NAME` makes one'
              : table(
                  ['NAME', 'STATE', 'PROFILE', 'MEMORY', 'CPUS', 'DISK', 'FROM'],
                  vms.map((v) => [
                    v.name,
                    colorState(v.state),
                    v.pending ? `${v.profile ?? '-'} (unfinished)` : (v.profile ?? '-'),
                    size(v.memory),
                    String(v.cpus),
                    size(v.disk),
                    v.createdFrom ? basename(v.createdFrom) : '-',
                  ]),
                ),
        };
      }),
    );
}
