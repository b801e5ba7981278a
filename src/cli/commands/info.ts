import type { Command } from 'commander';
import { vmInfo } from '../../core/vm/info.js';
import { action } from '../app.js';
import { renderVmInfo } from '../vm-view.js';

export function register(program: Command): void {
  program
    .command('info')
    .description("show a VM's settings, disks and state")
    .argument('<name>', 'VM name')
    .action(action(async ({ ctx }, name) => ({ data: await vmInfo(ctx, name!), human: renderVmInfo })));
}
