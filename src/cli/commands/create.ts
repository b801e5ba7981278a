import type { Command } from 'commander';
import { parseCpus } from '../../config.js';
import { createVm, createXml, parseFirmware, type CreateOptions } from '../../core/vm/create.js';
import { checkKernelBoot } from '../../core/vm/validate.js';
import { parseNetwork } from '../../core/devices/network.js';
import { usageError } from '../../errors.js';
import { DISK_RANGE, MEMORY_RANGE, parseSize } from '../../size.js';
import { installVm, resumeInstall, type InstallOptions, type InstallResult } from '../../core/guest/install.js';
import { action } from '../app.js';
import { renderVmInfo } from '../vm-view.js';
import { shellQuote as q } from '../../quote.js';

interface Flags {
  bare?: boolean;
  profile: string;
  user?: string;
  sshKey?: string;
  keepFailed?: boolean;
  resume?: boolean;
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

/** The options of a bare create (disk + definition, you install it yourself). */
export function toCreateOptions(name: string, f: Flags): CreateOptions {
  const kernelBoot = checkKernelBoot({ kernel: f.kernel, initrd: f.initrd, cmdline: f.cmdline });
  if (f.kernel && !f.bare && !f.printXml)
    throw usageError('--kernel is for `vms create --bare`', "the install boots the ISO's own kernel");
  return {
    name,
    memory: f.memory === undefined ? undefined : parseSize(f.memory, MEMORY_RANGE),
    cpus: f.cpus === undefined ? undefined : parseCpus(f.cpus),
    disk: f.disk === undefined ? undefined : parseSize(f.disk, DISK_RANGE),
    firmware: parseFirmware(f.firmware),
    network: parseNetwork(f.network),
    iso: f.iso,
    kernelBoot,
    graphics: f.graphics,
    start: Boolean(f.start),
  };
}

/** The options of the unattended install. */
export function toInstallOptions(name: string, f: Flags): InstallOptions {
  const { memory, cpus, disk, firmware, network, iso, graphics } = toCreateOptions(name, f);
  if (f.start) throw usageError('--start is for --bare', 'an installed VM is left running anyway');
  return {
    name,
    profile: f.profile,
    memory,
    cpus,
    disk,
    firmware,
    network,
    iso,
    graphics,
    user: f.user,
    sshKey: f.sshKey,
    keepFailed: Boolean(f.keepFailed),
  };
}

function renderInstalled(vm: InstallResult): string {
  const next = [`vms console ${q(vm.name)}     # serial console; log in as root or ${vm.user}`];
  if (vm.graphics) next.push(`vms viewer ${q(vm.name)}      # SPICE display`);
  return `${renderVmInfo(vm)}\n\npassword for root and ${vm.user}: in ${vm.passwordFile}\ninstall transcript: ${vm.transcript}\n\nnext:\n  ${next.join('\n  ')}`;
}

export function register(program: Command): void {
  program
    .command('create')
    .description('create a VM and install Arch Linux in it unattended (or, with --bare, only a disk and a definition)')
    .argument('<name>', 'VM name')
    .option(
      '-p, --profile <name>',
      'what to set up after the install: minimal, gui, browser, telegram, dev, or your own',
      'minimal',
    )
    .option(
      '--iso <path>',
      'the Arch ISO (default: archlinux-x86_64.iso in the ISO dir); with --bare, any ISO as cdrom',
    )
    .option('--user <name>', 'the user made in the guest (default: you)')
    .option('--ssh-key <file>', 'public key for the guest (default: ~/.ssh/id_ed25519.pub, id_ecdsa.pub or id_rsa.pub)')
    .option('--keep-failed', 'when the install fails, keep the VM for inspection and `--resume`')
    .option('--resume', 'go on with a create that failed with --keep-failed')
    .option('--bare', 'disk and definition only, no install')
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
        if (opts.printXml) {
          const xml = await createXml(ctx, toCreateOptions(name!, opts));
          return { data: { name, xml }, human: () => xml.trimEnd() };
        }
        if (opts.resume) {
          const given = (
            [
              'bare',
              'iso',
              'memory',
              'cpus',
              'disk',
              'user',
              'sshKey',
              'keepFailed',
              'kernel',
              'start',
              'printXml',
            ] as const
          ).filter((k) => opts[k] !== undefined);
          if (given.length || opts.profile !== 'minimal') {
            throw usageError(
              '--resume takes no other options',
              'it goes on with what the VM was created with (its profile is in its metadata)',
            );
          }
          return { data: await resumeInstall(ctx, name!), human: renderInstalled };
        }
        if (!opts.bare) return { data: await installVm(ctx, toInstallOptions(name!, opts)), human: renderInstalled };
        const vm = await createVm(ctx, toCreateOptions(name!, opts));
        return {
          data: vm,
          human: () => `${renderVmInfo(vm)}\n\nnext: vms ${vm.state === 'running' ? 'console' : 'start'} ${q(vm.name)}`,
        };
      }),
    );
}
