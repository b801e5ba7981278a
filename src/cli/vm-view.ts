import type { VmInfo } from '../core/vm/info.js';
import { colorState, fields, size } from './format.js';
import { shellQuote as q } from '../quote.js';

/** The human view of one VM, shared by info, create and clone. */
export function renderVmInfo(vm: VmInfo): string {
  const disks = vm.disks.map((d) =>
    d.device === 'disk'
      ? `${d.target} ${d.path} (${size(d.capacity)}${d.backing ? `, on ${d.backing}` : ''})`
      : `${d.target} ${d.device} ${d.path ?? '(empty)'}`,
  );
  return fields([
    ['name', vm.name],
    ['state', colorState(vm.state)],
    ['uuid', vm.uuid],
    ['profile', vm.profile],
    ['created from', vm.createdFrom],
    ['unfinished', vm.pending && `the ${vm.pending} step: \`vms create ${q(vm.name)} --resume\` goes on`],
    ['created', vm.created],
    ['memory', size(vm.memory)],
    ['cpus', vm.cpus],
    ['firmware', vm.firmware],
    ['disks', disks.join('\n')],
    ['network', vm.networks.join(', ') || 'none'],
    ['console', vm.serialSocket],
    ['transcript', vm.serialLog],
    ['display', vm.display ?? vm.graphics],
    ['bases', vm.bases.join(', ')],
    ['notes', vm.notes],
  ]);
}
