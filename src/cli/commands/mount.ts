import type { Command } from 'commander';
import { mountShare, unmountShare, type MountResult, type UnmountResult } from '../../core/mount.js';
import { action } from '../app.js';

function describeMount(r: MountResult): string {
  const ro = r.readonly ? ' read-only' : '';
  if (!r.mounted) {
    return [
      `${r.hostDir} is shared into ${r.name} (shut off) as ${r.tag}: only its definition changed`,
      `next: vms start ${r.name} && vms mount ${r.name} ${r.hostDir} ${r.guestDir}   # mounts it${ro} in the guest and adds it to /etc/fstab`,
    ].join('\n');
  }
  const lines = [`${r.hostDir} is mounted${ro} at ${r.guestDir} in ${r.name} (virtiofs tag ${r.tag})`];
  lines.push(r.fstab ? `kept: in ${r.name}'s definition and its /etc/fstab` : `until ${r.name} stops (--temp: not in its definition or /etc/fstab)`);
  if (r.restarted) lines.push(`${r.name} was restarted to give it the shared memory virtiofs needs`);
  if (r.readonly && !r.readonlyOnHost) lines.push('note: read-only in the guest only: this libvirt cannot make a virtiofs share read-only on the host (root in the guest could remount it writable)');
  return lines.join('\n');
}

function describeUnmount(r: UnmountResult): string {
  if (r.guest) return `${r.guestDir} is unmounted in ${r.name} and the share removed`;
  return [
    `the share at ${r.guestDir} is removed from ${r.name}'s definition (shut off)`,
    `note: the guest's /etc/fstab keeps its line for ${r.tag} (nofail: the guest boots anyway); remove it in the guest`,
  ].join('\n');
}

export function register(program: Command): void {
  program
    .command('mount')
    .description('share a host directory into a VM over virtiofs and mount it there (kept in the definition and the guest\'s /etc/fstab)')
    .argument('<name>', 'VM name')
    .argument('<hostdir>', 'host directory to share (must exist)')
    .argument('<guestdir>', 'absolute path in the guest to mount it at')
    .option('--readonly', 'mount it read-only')
    .option('--temp', 'only until the VM stops: no definition change, no fstab line (VM running)')
    .option('--force', 'mount over a GUESTDIR that has files (hidden until `vms umount`)')
    .option('--restart', 'restart a running VM when virtiofs needs it (to add shared memory)')
    .action(
      action<{ readonly?: boolean; temp?: boolean; force?: boolean; restart?: boolean }>(async ({ ctx, opts }, name, hostDir, guestDir) => ({
        data: await mountShare(ctx, {
          name: name!,
          hostDir: hostDir!,
          guestDir: guestDir!,
          readonly: Boolean(opts.readonly),
          temp: Boolean(opts.temp),
          force: Boolean(opts.force),
          restart: Boolean(opts.restart),
        }),
        human: describeMount,
      })),
    );

  program
    .command('umount')
    .description('unmount a shared folder in the VM and remove the share (live and from the definition)')
    .argument('<name>', 'VM name')
    .argument('<guestdir>', 'where it is mounted in the guest')
    .action(action(async ({ ctx }, name, guestDir) => ({ data: await unmountShare(ctx, name!, guestDir!), human: describeUnmount })));
}
