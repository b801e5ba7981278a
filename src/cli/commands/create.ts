import type { Command } from 'commander';
import { parseCpus } from '../../config.js';
import { createVm, createXml, parseFirmware, parseNetwork, type CreateOptions } from '../../core/create.js';
import { usageError } from '../../errors.js';
import { DISK_RANGE, MEMORY_RANGE, parseSize } from '../../size.js';
import { action } from '../app.js';
import { renderVmInfo } from '../vm-view.js';

interface Flags {
  bare?: boolean;
  iso?: string;
  memory?: string;
  cpus?: string;
  disk?: string;
  firmware: string;
  network: string;
  graphics: boolean;
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  start?: boolean;
  printXml?: boolean;
}

export function toCreateOptions(name: string, f: Flags): CreateOptions {
  if (!f.bare && !f.printXml) {
    throw usageError('only `vms create NAME --bare` is available so far: the unattended Arch install is not built yet', 'add --bare for a disk + definition you install yourself (with --iso)');
  }
  if ((f.initrd || f.cmdline) && !f.kernel) throw usageError('--initrd and --cmdline need --kernel');
  return {
    name,
    memory: f.memory === undefined ? undefined : parseSize(f.memory, MEMORY_RANGE),
    cpus: f.cpus === undefined ? undefined : parseCpus(f.cpus),
    disk: f.disk === undefined ? undefined : parseSize(f.disk, DISK_RANGE),
    firmware: parseFirmware(f.firmware),
    network: parseNetwork(f.network),
    iso: f.iso,
    kernelBoot: f.kernel ? { kernel: f.kernel, initrd: f.initrd, cmdline: f.cmdline } : undefined,
    graphics: f.graphics,
    start: Boolean(f.start),
  };
}

export function register(program: Command): void {
  program
    .command('create')
    .description('create a VM: a qcow2 disk and a libvirt definition')
    .argument('<name>', 'VM name')
    .option('--bare', 'disk and definition only, no install')
    .option('--iso <path>', 'attach an ISO as cdrom (a name is looked up in the ISO dir)')
    .option('--memory <size>', 'memory, e.g. 4G (default from `vms config`)')
    .option('--cpus <n>', 'virtual CPUs')
    .option('--disk <size>', 'disk size, e.g. 40G')
    .option('--firmware <kind>', 'bios or efi', 'bios')
    .option('--network <net>', 'a libvirt network name, user, or none', 'default')
    .option('--no-graphics', 'no SPICE display (serial console only)')
    .option('--kernel <path>', 'boot this kernel directly')
    .option('--initrd <path>', 'initrd for --kernel')
    .option('--cmdline <args>', 'kernel command line for --kernel')
    .option('--start', 'start the VM once it is defined')
    .option('--print-xml', 'print the domain XML and change nothing')
    .action(
      action<Flags>(async ({ ctx, opts }, name) => {
        const options = toCreateOptions(name!, opts);
        if (opts.printXml) {
          const xml = await createXml(ctx, options);
          return { data: { name, xml }, human: () => xml.trimEnd() };
        }
        const vm = await createVm(ctx, options);
        return { data: vm, human: () => `${renderVmInfo(vm)}\n\nnext: vms ${vm.state === 'running' ? 'console' : 'start'} ${vm.name}` };
      }),
    );
}
