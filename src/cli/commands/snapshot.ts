import type { Command } from 'commander';
import {
  createSnapshot,
  deleteSnapshot,
  listSnapshots,
  planRevert,
  revertSnapshot,
  type DeleteSnapshotResult,
  type RevertPlan,
  type SnapshotInfo,
} from '../../core/vm/snapshot.js';
import { isActive } from '../../core/vm/vm.js';
import { usageError, VmsError } from '../../errors.js';
import type { SnapshotFacts } from '../../libvirt/snapshot-xml.js';
import { action } from '../app.js';
import { canPrompt, type Io, type Prompter } from '../io.js';
import { table } from '../format.js';
import { shellQuote as q } from '../../quote.js';

/** "running", "running (disks only)", "shut off". */
const takenWhile = (s: SnapshotFacts) => (isActive(s.state) && !s.withMemory ? `${s.state} (disks only)` : s.state);

/** Local time, e.g. "2026-11-22 05:31:16" (the Swedish locale writes dates the ISO way). */
const localTime = (iso: string) => new Date(iso).toLocaleString('sv-SE');

function renderList(vm: string, list: SnapshotInfo[]): string {
  if (list.length === 0) return `${vm} has no snapshots: \`vms snapshot create ${q(vm)}\` takes one`;
  const rows = list.map((s) => [
    s.name,
    localTime(s.created),
    takenWhile(s),
    s.kind,
    s.current ? 'yes' : '-',
    s.revertable ? 'yes' : 'no',
    s.description ?? '',
  ]);
  return table(['NAME', 'CREATED', 'STATE', 'KIND', 'CURRENT', 'REVERTABLE', 'DESCRIPTION'], rows);
}

const renderCreated = (s: SnapshotInfo) =>
  `${s.vm}: ${s.kind} snapshot ${s.name} taken (${s.state}: ${s.withMemory ? 'disks and memory' : 'disks'})`;

function renderDeleted(r: DeleteSnapshotResult): string {
  const merged = r.kind === 'external' ? ' (its overlay merged into the present state)' : '';
  return [`${r.name}: snapshot ${r.snapshot} deleted${merged}`, ...r.removed.map((f) => `  deleted ${f}`)].join('\n');
}

async function confirmRevert(io: Io, prompter: Prompter, plan: RevertPlan): Promise<boolean> {
  const s = plan.snapshot;
  const lost = isActive(plan.vmState) ? 'its disks and memory' : 'its disks';
  io.stderr.write(
    `This reverts ${plan.vm} (${plan.vmState}) to snapshot ${s.name}, taken ${localTime(s.created)} (${takenWhile(s)}).\n` +
      `Its present state (${lost}) is lost: \`vms snapshot create ${q(plan.vm)}\` first keeps it.\n`,
  );
  return prompter.confirm('Revert?');
}

export function register(program: Command): void {
  const snapshot = program
    .command('snapshot')
    .description('snapshots of a VM: take one, list them, go back to one, delete one');
  snapshot
    .command('create')
    .description('take a snapshot: internal (inside the qcow2 disks, with the memory of a running VM), or --external')
    .argument('<name>', 'VM name')
    .argument('[snapshot]', 'snapshot name (default: the time, e.g. 20261122-053116)')
    .option('--description <text>', 'what the snapshot is for')
    .option(
      '--external',
      "the disks go on from new overlay files (and a running VM's memory goes to a file): for raw disks and running UEFI VMs",
    )
    .action(
      action<{ description?: string; external?: boolean }>(async ({ ctx, opts }, vm, name) => {
        const created = await createSnapshot(ctx, {
          vm: vm!,
          name,
          description: opts.description,
          external: Boolean(opts.external),
        });
        return { data: created, human: renderCreated };
      }),
    );
  snapshot
    .command('list')
    .alias('ls')
    .description(
      "a VM's snapshots: name, creation time, the VM's state then, kind, current, whether revert can go back to it, description",
    )
    .argument('<name>', 'VM name')
    .action(
      action(async ({ ctx }, vm) => ({
        data: await listSnapshots(ctx, vm!),
        human: (l: SnapshotInfo[]) => renderList(vm!, l),
      })),
    );
  snapshot
    .command('revert')
    .description('go back to a snapshot (asks first: the present state is lost)')
    .argument('<name>', 'VM name')
    .argument('<snapshot>', 'snapshot name')
    .option('-y, --yes', 'do not ask')
    .action(
      action<{ yes?: boolean }>(async ({ ctx, opts, io, prompter }, vm, name) => {
        const plan = await planRevert(ctx, vm!, name!);
        if (!opts.yes) {
          if (!canPrompt(io)) {
            throw usageError(
              `refusing to revert ${vm} to ${name} without confirmation`,
              `it throws away ${vm}'s present state: add --yes (no terminal to ask on)`,
            );
          }
          if (!(await confirmRevert(io, prompter, plan)))
            throw new VmsError('conflict', 'not reverted', 'nothing was changed');
        }
        const result = await revertSnapshot(ctx, plan);
        return { data: result, human: () => `${result.name} reverted to ${result.snapshot}: ${result.state}` };
      }),
    );
  snapshot
    .command('delete')
    .alias('rm')
    .description('delete a snapshot (its data too; an external one is merged into the present state)')
    .argument('<name>', 'VM name')
    .argument('<snapshot>', 'snapshot name')
    .action(
      action(async ({ ctx }, vm, name) => ({ data: await deleteSnapshot(ctx, vm!, name!), human: renderDeleted })),
    );
}
