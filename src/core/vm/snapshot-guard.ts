import { statSync } from 'node:fs';
import { conflict, type VmsError } from '../../errors.js';
import type { DomainFacts } from '../../libvirt/domain-parse.js';
import type { SnapshotFacts } from '../../libvirt/snapshot-xml.js';
import { shellQuote as q } from '../../quote.js';

// An internal snapshot lives inside the qcow2 file the disk had when it was taken. libvirt reverts (and deletes) it
// by writing that file and putting the VM back on it, whatever has happened since: `vms clone` may have frozen it as
// the read-only base of linked clones, an external snapshot may have put an overlay over it. Only when the file is
// still the VM's own writable top disk is that safe; otherwise vms refuses before libvirt touches anything.

/** Why an internal snapshot's file may not be written: gone, a frozen (read-only) base, or no longer the disk's top. */
export type BlockReason = 'gone' | 'frozen' | 'readOnly' | 'moved';

export interface Blocker {
  target: string;
  /** The file the snapshot's data lie in. */
  file: string;
  reason: BlockReason;
  /** The disk's file now (moved), if the VM still has that disk. */
  now?: string;
}

export interface FileState {
  exists: boolean;
  /** Any write permission bit: vms makes a base 0444 when it freezes it. */
  writable: boolean;
}

export function fileState(file: string): FileState {
  const st = statSync(file, { throwIfNoEntry: false });
  return { exists: Boolean(st), writable: Boolean(st && st.mode & 0o222) };
}

/** The first disk whose internal snapshot data lie somewhere vms may not write; undefined when a revert or delete is safe. */
export function internalDataBlocker(
  snapshot: SnapshotFacts,
  vm: DomainFacts,
  state: (file: string) => FileState = fileState,
): Blocker | undefined {
  if (snapshot.kind !== 'internal') return undefined;
  const tops = new Map(vm.disks.filter((d) => d.path).map((d) => [d.target, d.path!]));
  for (const { target, file } of snapshot.disks.filter((d) => d.snapshot === 'internal')) {
    if (!file) continue; // libvirt did not say: nothing to judge by (older snapshots without a domain copy)
    const now = tops.get(target);
    const { exists, writable } = state(file);
    if (!exists) return { target, file, reason: 'gone', now };
    if (vm.metadata.bases.includes(file)) return { target, file, reason: 'frozen', now };
    if (!writable) return { target, file, reason: 'readOnly', now };
    if (now !== file) return { target, file, reason: 'moved', now };
  }
  return undefined;
}

export type GuardedAction = 'revert' | 'delete';

/** The refusal, told with what is true and the way out. */
export function blockerError(vm: string, snapshot: string, action: GuardedAction, b: Blocker): VmsError {
  const where = `${snapshot}'s data lie in ${b.file}`;
  const forget = `\`virsh snapshot-delete ${q(vm)} ${q(snapshot)} --metadata\` takes it off the list without touching any file`;
  // What a revert would bring back can still be had, as a new disk image.
  const copyOut = `its disk can be copied out of that file: \`qemu-img convert -l ${q(snapshot)} -O qcow2 ${q(b.file)} NEW.qcow2\``;
  const wayOut = action === 'revert' ? copyOut : forget;
  switch (b.reason) {
    case 'gone':
      return conflict(
        `cannot ${action} ${snapshot} of ${vm}: ${b.file}, which held it, no longer exists`,
        `nothing was changed; ${forget}`,
      );
    case 'frozen':
      return conflict(
        `cannot ${action} ${snapshot} of ${vm}: ${where}, a read-only base vms froze for linked clones (\`vms clone\`), which must not change`,
        `nothing was changed; ${action === 'revert' ? copyOut : `it goes with the base, when the last VM on it is destroyed; ${forget}`}`,
      );
    case 'readOnly':
      return conflict(
        `cannot ${action} ${snapshot} of ${vm}: ${where}, which is read-only`,
        `nothing was changed; ${wayOut}`,
      );
    case 'moved': {
      // An overlay put over it since (an external snapshot) or the disk detached: writing it would corrupt the overlay.
      const now = b.now ? `${vm}'s ${b.target} is ${b.now} now` : `${vm} has no ${b.target} now`;
      return conflict(`cannot ${action} ${snapshot} of ${vm}: ${where}, and ${now}`, `nothing was changed; ${wayOut}`);
    }
  }
}

/** Refuses (exit 4) a revert or delete that would write an internal snapshot's file vms must not write. */
export function guardInternalData(vm: DomainFacts, snapshot: SnapshotFacts, action: GuardedAction): void {
  const b = internalDataBlocker(snapshot, vm);
  if (b) throw blockerError(vm.name, snapshot.name, action, b);
}
