import { lstat, rm } from 'node:fs/promises';
import { conflict } from '../../errors.js';
import { editMetadata } from '../../libvirt/domain-edit.js';
import type { VmsMetadata } from '../../libvirt/metadata.js';
import type { Context } from '../context.js';
import { withOperation } from '../ops/operation.js';
import { redefine } from '../vm/vm.js';
import { filesInUse, realPath, type UnreadableVm } from './files-in-use.js';

// `vms gc`: the files vms made (a VM's metadata.made and bases) that no VM uses any more, e.g. a data disk a snapshot
// revert or a `disk detach` dropped from the definition. Only such files are ever candidates: vms never deletes a
// file it did not make. Used means anything filesInUse sees: any VM's saved or running definition, backing chains,
// snapshots. While a VM cannot be read, nothing is removed: it might use any of them.
//
// Only files under this configuration's images dir and state dir are looked at: another configuration (another
// VMS_IMAGES_DIR, as each test bed has) is another set of VMs' files, mid-way through its own commands.

export interface GcFile {
  path: string;
  /** The VMs whose metadata says vms made it for them. */
  madeFor: string[];
  /** Space it takes on the host. */
  bytes: number;
}

export interface GcPlan {
  /** Files vms made that no VM uses: what gc removes. */
  remove: GcFile[];
  /** Files vms made that no VM seems to use, kept, and why. */
  keep: (GcFile & { reason: string })[];
  /** VMs that could not be read completely. */
  unreadable: UnreadableVm[];
}

/** Works out what gc would remove, without changing anything (the CLI shows it before asking). */
export async function planGc(ctx: Context): Promise<GcPlan> {
  const inUse = await filesInUse(ctx);
  const madeFor = new Map<string, string[]>();
  for (const vm of inUse.vms) {
    for (const path of new Set([...vm.made, ...vm.bases])) madeFor.set(path, [...(madeFor.get(path) ?? []), vm.name]);
  }
  const blockers = inUse.unreadable.filter((u) => u.incomplete);
  const plan: GcPlan = { remove: [], keep: [], unreadable: inUse.unreadable };
  const ours = [ctx.config.imagesDir.value, ctx.config.stateDir.value].map((d) => realPath(d) + '/');
  for (const [path, vms] of [...madeFor].sort(([a], [b]) => a.localeCompare(b))) {
    if (!ours.some((dir) => realPath(path).startsWith(dir))) continue;
    const file = await lstat(path).catch(() => undefined);
    if (!file?.isFile() || inUse.usesOf(path).length > 0) continue; // gone already, not a plain file, or in use
    const entry = { path, madeFor: vms, bytes: file.blocks * 512 };
    if (blockers.length)
      plan.keep.push({
        ...entry,
        reason: `${blockers.map((b) => `VM ${b.vm} cannot be read (${b.reason})`).join('; ')}: it may use it`,
      });
    else plan.remove.push(entry);
  }
  return plan;
}

export interface GcResult extends GcPlan {
  removed: string[];
  /** VMs whose metadata still lists a removed file (their definition could not be updated). */
  notUpdated: { vm: string; reason: string }[];
}

/**
 * Removes what `shown` lists, under the host's lock and the locks of the VMs whose records it edits, after planning
 * again there: anything different stops it (`asked`: the user agreed to `shown`; else it was planned a moment ago).
 */
export async function collectGarbage(ctx: Context, shown: GcPlan, asked = false): Promise<GcResult> {
  const vms = [...new Set(shown.remove.flatMap((f) => f.madeFor))];
  return withOperation(ctx, { command: 'gc', vms, host: true }, async (ctx) => {
    const plan = await planGc(ctx);
    if (JSON.stringify(shown.remove) !== JSON.stringify(plan.remove)) {
      throw conflict(
        `the files to remove changed ${asked ? 'while you were asked' : 'meanwhile'} (a VM started using one, or a new one is unused)`,
        'nothing was removed: run the command again',
      );
    }
    return removeGarbage(ctx, plan);
  });
}

async function removeGarbage(ctx: Context, plan: GcPlan): Promise<GcResult> {
  const virsh = ctx.virsh.uninterruptible(); // once started, finish: the records must follow the files
  const removed: string[] = [];
  await ctx.progress.step(`Removing ${plan.remove.length} file(s)`, async () => {
    for (const f of plan.remove) {
      await rm(f.path, { force: true });
      removed.push(f.path);
    }
  });
  // A removed file leaves the records too: a later file at the same path must not count as one vms made.
  const notUpdated: GcResult['notUpdated'] = [];
  for (const vm of [...new Set(plan.remove.flatMap((f) => f.madeFor))]) {
    try {
      const gone = (p: string) => !removed.includes(p);
      const forget = (m: VmsMetadata) => ({ ...m, made: m.made.filter(gone), bases: m.bases.filter(gone) });
      await redefine({ virsh }, vm, (d) => editMetadata(d, forget));
    } catch (err) {
      notUpdated.push({ vm, reason: (err as Error).message });
    }
  }
  return { ...plan, removed, notUpdated };
}
