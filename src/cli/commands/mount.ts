import type { Command } from 'commander';
import { mountShare, unmountShare, type MountResult, type UnmountResult } from '../../core/devices/mount.js';
import { shellQuote as q } from '../../quote.js';
import { action } from '../app.js';

interface MountFlags {
  readonly?: boolean;
  temp?: boolean;
  force?: boolean;
  restart?: boolean;
  allowSystemDir?: boolean;
}

/** The `vms mount` that mounts a share the definition got while the VM was off, with the flags that still matter. */
function mountAgain(r: MountResult, f: MountFlags): string {
  const flags = [r.readonly && '--readonly', f.force && '--force', f.allowSystemDir && '--allow-system-dir'].filter(
    Boolean,
  );
  return ['vms mount', ...[r.name, r.hostDir, r.guestDir].map(q), ...flags].join(' ');
}

export function describeMount(r: MountResult, f: MountFlags): string {
  const ro = r.readonly ? ' read-only' : '';
  const lines = r.mounted
    ? [
        `${r.hostDir} is mounted${ro} at ${r.guestDir} in ${r.name} (virtiofs tag ${r.tag})`,
        r.fstab
          ? `kept: in ${r.name}'s definition and its /etc/fstab`
          : `until ${r.name} stops (--temp: not in its definition or /etc/fstab)`,
      ]
    : [
        `${r.hostDir} is shared${ro} into ${r.name} (shut off) as ${r.tag}: only its definition changed`,
        `next: vms start ${q(r.name)} && ${mountAgain(r, f)}   # mounts it${ro} in the guest and adds it to /etc/fstab`,
      ];
  if (r.restarted) lines.push(`${r.name} was restarted to give it the shared memory virtiofs needs`);
  if (r.readonly && !f.readonly)
    lines.push(
      `note: read-only, as ${r.name}'s definition keeps this share since it was mounted with --readonly (\`vms umount\` it and mount it again to change that)`,
    );
  if (r.readonly && !r.readonlyOnHost) {
    lines.push(
      'note: read-only in the guest only: libvirt cannot make this virtiofs share read-only on the host (libvirt 9.0 refuses <readonly/> for virtiofs), so root in the guest could remount it writable',
    );
  }
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
    .description(
      "share a host directory into a VM over virtiofs and mount it there (kept in the definition and the guest's /etc/fstab)",
    )
    .argument('<name>', 'VM name')
    .argument('<hostdir>', 'host directory to share (must exist)')
    .argument('<guestdir>', 'absolute path in the guest to mount it at')
    .option('--readonly', 'mount it read-only (kept in the definition: later mounts of this share are read-only too)')
    .option('--temp', 'only until the VM stops: no definition change, no fstab line (VM running)')
    .option('--force', 'mount over a GUESTDIR that has files (hidden until `vms umount`)')
    .option('--restart', 'restart a running VM when virtiofs needs it (to add shared memory)')
    .option(
      '--allow-system-dir',
      "share a system directory (/, /etc, /usr, /var, /boot …) all the same: virtiofsd serves it with root's rights",
    )
    .action(
      action<MountFlags>(async ({ ctx, opts }, name, hostDir, guestDir) => ({
        data: await mountShare(ctx, {
          name: name!,
          hostDir: hostDir!,
          guestDir: guestDir!,
          readonly: Boolean(opts.readonly),
          temp: Boolean(opts.temp),
          force: Boolean(opts.force),
          restart: Boolean(opts.restart),
          allowSystemDir: Boolean(opts.allowSystemDir),
        }),
        human: (r) => describeMount(r, opts),
      })),
    );

  program
    .command('umount')
    .description('unmount a shared folder in the VM and remove the share (live and from the definition)')
    .argument('<name>', 'VM name')
    .argument('<guestdir>', 'where it is mounted in the guest')
    .action(
      action(async ({ ctx }, name, guestDir) => ({
        data: await unmountShare(ctx, name!, guestDir!),
        human: describeUnmount,
      })),
    );
}
