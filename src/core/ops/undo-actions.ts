import { chmod, rm, rmdir, stat } from 'node:fs/promises';
import type { VmsMetadata } from '../../libvirt/metadata.js';
import { withDiskSources, withMetadata } from '../../libvirt/domain-edit.js';
import type { Context } from '../context.js';
import { removeScsiController, unplugDisk } from '../devices/disk.js';
import { takeBackSnapshot } from '../vm/snapshot.js';
import { isActive, powerOffIfRunning, redefine, undefineIfDefined } from '../vm/vm.js';

// Undo steps as data: what the live process runs when a command fails or is interrupted, and what a later vms runs
// from the journal when the process was killed (SIGKILL, a crash) before it could. Each is safe whether or not the
// step it undoes got to finish, and safe to run twice (a repair may be interrupted too).

export type UndoAction =
  | { kind: 'remove-file'; path: string }
  /**
   * A file about to be claimed (created exclusively) at `since` (ms): removed only while it is still the empty file
   * made then. Journaled before the claim, so a kill between creating the file and journaling its removal leaves
   * nothing; a file someone else had there is older or has content, and stays.
   */
  | { kind: 'remove-claim'; path: string; since: number }
  /** A directory vms made for the operation, with everything in it. */
  | { kind: 'remove-dir'; path: string }
  /** A directory that goes only when empty (it may hold something a user put there). */
  | { kind: 'remove-dir-if-empty'; path: string }
  | { kind: 'undefine'; vm: string }
  | { kind: 'power-off'; vm: string }
  /** Puts a definition back as it was (the XML it had). */
  | { kind: 'define'; xml: string }
  | { kind: 'chmod'; path: string; mode: number }
  /**
   * A clone froze a VM's disks under new overlays (`overlays`: target → overlay file, over `bases`: target → file):
   * the overlays' data go back into the VM's own files and it runs on them again, with its metadata as it was.
   */
  /** A disk plugDisk attached (live, saved, or recorded as made) is taken out again. */
  | { kind: 'unplug-disk'; vm: string; target: string; path: string; created: boolean }
  /** The virtio-scsi controller plugDisk added where there was none. */
  | { kind: 'remove-scsi-controller'; vm: string; live: boolean; config: boolean }
  /** A snapshot libvirt took (or may have taken) is deleted again; an external one merged back, the definition as it was. */
  | { kind: 'take-back-snapshot'; vm: string; snapshot: string; definition: string; memoryFile?: string }
  | { kind: 'unfreeze'; vm: string; overlays: [string, string][]; bases: [string, string][]; metadata: VmsMetadata };

/** The actions on files alone, which need no libvirt: an UndoStack without a context runs these. */
export async function runFileAction(action: UndoAction): Promise<void> {
  switch (action.kind) {
    case 'remove-file':
      return rm(action.path, { force: true });
    case 'remove-claim': {
      const st = await stat(action.path).catch(() => undefined);
      if (st?.isFile() && st.size === 0 && st.ctimeMs >= action.since) await rm(action.path, { force: true });
      return;
    }
    case 'remove-dir':
      return rm(action.path, { recursive: true, force: true });
    case 'remove-dir-if-empty':
      return rmdir(action.path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT' && err.code !== 'ENOTEMPTY') throw err;
      });
    case 'chmod':
      return chmod(action.path, action.mode);
    default:
      throw new Error(`internal: undo step ${action.kind} needs a context (withUndo inside an operation)`);
  }
}

export async function runUndoAction(ctx: Context, action: UndoAction): Promise<void> {
  const virsh = ctx.virsh.uninterruptible();
  switch (action.kind) {
    case 'undefine':
      return undefineIfDefined(virsh, action.vm)();
    case 'power-off':
      return powerOffIfRunning(virsh, action.vm)();
    case 'define':
      return virsh.define(action.xml);
    case 'unfreeze':
      return unfreeze(ctx, action);
    case 'unplug-disk':
      return unplugDisk(ctx, action.vm, action.target, action.path, action.created);
    case 'remove-scsi-controller':
      return removeScsiController(ctx, action.vm, { live: action.live, config: action.config });
    case 'take-back-snapshot':
      return takeBackSnapshot({ ...ctx, virsh }, action.vm, action.snapshot, action.definition, action.memoryFile);
    default:
      return runFileAction(action);
  }
}

/**
 * Merges back the overlays (target → file) a VM still stands on, into the files under them: live when it runs
 * (blockcommit --active --pivot), by qemu-img when it is shut off (stopped since, or the machine restarted). Returns
 * the targets merged; an overlay the VM does not stand on (a step that never took effect) is left alone.
 */
export async function mergeOverlaysBack(
  ctx: Context,
  vm: string,
  overlays: ReadonlyMap<string, string>,
): Promise<{ merged: string[]; active: boolean }> {
  const virsh = ctx.virsh.uninterruptible();
  const active = isActive(await virsh.state(vm));
  const current = await virsh.diskSources(vm, !active);
  const merged = [...current].filter(([target, file]) => overlays.get(target) === file).map(([target]) => target);
  for (const target of merged) {
    if (active) await virsh.commitActiveLayer(vm, target);
    else await ctx.qemuImg.uninterruptible().commit(overlays.get(target)!);
  }
  return { merged, active };
}

/** A freeze taken back: the VM on its own disks again, with its metadata as it was. */
async function unfreeze(ctx: Context, a: Extract<UndoAction, { kind: 'unfreeze' }>): Promise<void> {
  const virsh = ctx.virsh.uninterruptible();
  if (!(await virsh.exists(a.vm))) return;
  const { merged, active } = await mergeOverlaysBack(ctx, a.vm, new Map(a.overlays));
  if (merged.length === 0) return;
  // The pivot put the disks back in the definition (shut off: done here); the metadata must not keep calling them bases.
  const bases = new Map(a.bases.filter(([target]) => merged.includes(target)));
  await redefine({ virsh }, a.vm, (now) => withMetadata(active ? now : withDiskSources(now, bases), a.metadata));
}
