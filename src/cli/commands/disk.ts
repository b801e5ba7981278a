import type { Command } from 'commander';
import {
  addDisk,
  attachDisk,
  detachDisk,
  listDisks,
  resizeDisk,
  type AttachedDisk,
  type DetachResult,
  type DiskRow,
  type ResizeResult,
} from '../../core/devices/disk.js';
import { usageError, VmsError } from '../../errors.js';
import { DISK_BUSES, parseBus } from '../../libvirt/disk-xml.js';
import { DISK_RANGE, formatSize, parseSize } from '../../size.js';
import { action } from '../app.js';
import { size, table } from '../format.js';
import { shellQuote as q } from '../../quote.js';

/** parseSize, with an example that fits where the size was given. */
function diskSize(text: string, example: string): number {
  try {
    return parseSize(text, DISK_RANGE);
  } catch (err) {
    if (err instanceof VmsError) throw usageError(err.message, `for example ${example}`);
    throw err;
  }
}

const pluggedWhere = (d: { live: boolean }) =>
  d.live
    ? 'plugged in now and saved in its definition'
    : 'saved in its definition: the guest sees it at its next start';

function renderAttached(d: AttachedDisk): string {
  const lines = [
    `${d.name}: ${d.target} (${d.bus}${d.readonly ? ', read-only' : ''}) ${d.path} ${formatSize(d.size)} ${d.format}, ${pluggedWhere(d)}`,
  ];
  if (!d.created && d.destroyedWithVm) {
    lines.push(
      `note: vms made ${d.path} for ${d.name} (\`vms disk add\`): \`vms destroy ${q(d.name)}\` removes it (unless another VM uses it)`,
    );
  }
  return lines.join('\n');
}

function renderDetached(r: DetachResult): string {
  const from = [r.live && 'the running VM', r.inConfig && 'its definition'].filter(Boolean).join(' and ');
  const file = r.path ? `; ${r.deleted ? 'deleted' : 'kept'} ${r.path}` : '';
  return `${r.name}: detached ${r.target} from ${from}${file}`;
}

function renderDisks(rows: DiskRow[]): string {
  // Only a running VM whose live and saved disks differ needs the column.
  const note = (r: DiskRow) =>
    r.live === undefined || (r.inConfig && r.live) ? '' : r.inConfig ? 'next start' : 'until it stops';
  const withNote = rows.some((r) => note(r) !== '');
  const headers = [
    'TARGET',
    'BUS',
    'DEVICE',
    'SIZE',
    'USED',
    'FORMAT',
    'RO',
    'PATH',
    'BACKING',
    ...(withNote ? ['NOTE'] : []),
  ];
  return table(
    headers,
    rows.map((r) => [
      r.target,
      r.bus ?? '-',
      r.device,
      size(r.virtualSize),
      size(r.actualSize),
      r.format ?? '-',
      r.readonly ? 'yes' : 'no',
      r.path ?? '(empty)',
      r.backing ?? '-',
      ...(withNote ? [note(r) || '-'] : []),
    ]),
  );
}

function renderResized(r: ResizeResult): string {
  if (!r.changed) return `${r.name}: ${r.target} is already ${formatSize(r.to)}`;
  return `${r.name}: grew ${r.target} from ${formatSize(r.from)} to ${formatSize(r.to)} (${r.live ? 'the running guest sees it now' : 'the guest sees it at its next start'})`;
}

export function register(program: Command): void {
  const disk = program
    .command('disk')
    .description("add, attach, detach, list and grow a VM's disks (live when it runs, and in its definition)");
  const busHelp = `${DISK_BUSES.join(', ')} (sata only while the VM is shut off)`;

  disk
    .command('add')
    .description('create a new qcow2 disk in the images dir and attach it')
    .argument('<name>', 'VM name')
    .requiredOption('--size <size>', 'size of the new disk, e.g. 40G')
    .option('--bus <bus>', busHelp, 'virtio')
    .action(
      action<{ size: string; bus: string }>(async ({ ctx, opts }, name) => {
        const size = diskSize(opts.size, '--size 40G');
        return { data: await addDisk(ctx, { name: name!, size, bus: parseBus(opts.bus) }), human: renderAttached };
      }),
    );

  disk
    .command('attach')
    .description('attach an existing image file (qcow2 or raw) as it is')
    .argument('<name>', 'VM name')
    .argument('<path>', 'the image file')
    .option('--bus <bus>', busHelp, 'virtio')
    .option('--readonly', 'the guest may only read it')
    .action(
      action<{ bus: string; readonly?: boolean }>(async ({ ctx, opts }, name, path) => ({
        data: await attachDisk(ctx, {
          name: name!,
          path: path!,
          bus: parseBus(opts.bus),
          readonly: Boolean(opts.readonly),
        }),
        human: renderAttached,
      })),
    );

  disk
    .command('detach')
    .description('detach a disk; its file stays unless --delete')
    .argument('<name>', 'VM name')
    .argument('<disk>', 'target (vdb, sdb) or path of its file')
    .option('--delete', 'also delete the file, when vms made it for this VM (`vms disk add`) and nothing else uses it')
    .action(
      action<{ delete?: boolean }>(async ({ ctx, opts }, name, which) => ({
        data: await detachDisk(ctx, { name: name!, disk: which!, delete: Boolean(opts.delete) }),
        human: renderDetached,
      })),
    );

  disk
    .command('list')
    .description('the disks and cdroms: target, bus, sizes, format, backing file')
    .argument('<name>', 'VM name')
    .action(action(async ({ ctx }, name) => ({ data: await listDisks(ctx, name!), human: renderDisks })));

  disk
    .command('resize')
    .description('grow a disk (live when the VM runs); never shrinks')
    .argument('<name>', 'VM name')
    .argument('<disk>', 'target (vdb) or path of its file')
    .argument('<size>', 'the new size, e.g. 60G')
    .action(
      action(async ({ ctx }, name, which, newSize) => ({
        data: await resizeDisk(ctx, {
          name: name!,
          disk: which!,
          size: diskSize(newSize!, `\`vms disk resize ${q(name)} ${q(which)} 60G\``),
        }),
        human: renderResized,
      })),
    );
}
