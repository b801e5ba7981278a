import type { Command } from 'commander';
import { cloneVm } from '../../core/vm/clone.js';
import { action } from '../app.js';
import { renderVmInfo } from '../vm-view.js';

export function register(program: Command): void {
  program
    .command('clone')
    .description("instant linked clone: SRC's disk becomes a read-only base under both VMs")
    .argument('<src>', 'VM to clone (running or shut off)')
    .argument('<new>', 'name of the clone')
    .option('--full', 'an independent full copy instead (SRC must be shut off)')
    .option('--start', 'start the clone')
    .action(
      action<{ full?: boolean; start?: boolean }>(async ({ ctx, opts }, source, name) => {
        const vm = await cloneVm(ctx, {
          source: source!,
          name: name!,
          full: Boolean(opts.full),
          start: Boolean(opts.start),
        });
        return {
          data: vm,
          human: () =>
            renderVmInfo(vm) +
            (vm.linked
              ? `\n\n${source} and ${name} now both stand on ${vm.frozen.join(', ')}${vm.writable.length ? '' : ' (read-only)'}${vm.quiesced ? '; filesystems were quiesced' : ''}`
              : ''),
        };
      }),
    );
}
