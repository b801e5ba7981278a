import { readMetadata } from '../../libvirt/domain-parse.js';
import { withMetadata } from '../../libvirt/domain-edit.js';
import type { VmsMetadata } from '../../libvirt/metadata.js';
import type { Virsh } from '../../libvirt/virsh.js';
import { redefine } from './vm.js';

// vms' metadata lives in the VM's saved definition: reading it, changing it and defining it again, for the commands
// that change what vms knows about a VM's files after libvirt has done its part.

/** Reads the saved definition, edits vms' metadata in it and defines it again (only when something changed). */
export async function redefineMetadata(
  virsh: Virsh,
  vm: string,
  edit: (m: VmsMetadata) => VmsMetadata,
): Promise<VmsMetadata> {
  let after: VmsMetadata | undefined;
  await redefine({ virsh }, vm, (domain) => {
    const before = readMetadata(domain);
    after = edit(before);
    return JSON.stringify(after) === JSON.stringify(before) ? undefined : withMetadata(domain, after);
  });
  return after!;
}

const union = (a: readonly string[], b: readonly string[]) => [...a, ...b.filter((f) => !a.includes(f))];

/** vms made these files for the VM: destroy may remove them. */
export const addMade =
  (files: readonly string[]) =>
  (m: VmsMetadata): VmsMetadata => ({ ...m, made: union(m.made, files) });

/** These files are gone (merged away, deleted): nothing to remember. */
export const dropMade =
  (files: readonly string[]) =>
  (m: VmsMetadata): VmsMetadata => ({ ...m, made: m.made.filter((f) => !files.includes(f)) });

/**
 * A revert brings back the snapshot's definition, with the metadata it had then. vms keeps what it knows now: the
 * files it made (a data disk added since and dropped by the revert is still vms' to remove), the bases it froze,
 * the user's notes, where the VM came from. What describes the definition itself belongs to the one brought back: an
 * unfinished `vms create`'s next step (what that definition still lacks), the read-only shares among its devices.
 */
export function metadataAfterRevert(now: VmsMetadata, reverted: VmsMetadata): VmsMetadata {
  const { pending: _, readonlyShares: __, ...kept } = now;
  return {
    ...kept,
    ...(reverted.pending && { pending: reverted.pending }),
    ...(reverted.readonlyShares && { readonlyShares: reverted.readonlyShares }),
    bases: union(now.bases, reverted.bases),
    made: union(reverted.made, now.made),
  };
}
