import { escapeXml } from './xml.js';

// vms' own facts about a VM live in the domain XML's <metadata> under this namespace, so libvirt stays the single
// source of truth and nothing can drift out of sync in side files.
export const VMS_NS = 'https://github.com/vms-dev/vms/xmlns/1';
export const VMS_PREFIX = 'vms';

export type PendingStep = 'install' | 'profile';
export const PENDING_STEPS: readonly PendingStep[] = ['install', 'profile'];

export interface VmsMetadata {
  profile?: string;
  created?: string; // ISO 8601
  createdFrom?: string; // the VM this one was cloned from, or the ISO it was installed from
  /** An unfinished `vms create`: the step `--resume` continues with. */
  pending?: PendingStep;
  /** Read-only bases under this VM's disk that vms froze, nearest first. */
  bases: string[];
  /**
   * Every file vms made for this VM that it may still stand on (its disks, the overlays of its clones and external
   * snapshots, their memory files). destroy deletes a file only when it is listed here or in `bases`: vms never
   * deletes a file it did not make, wherever it lies (an image attached from the images dir stays).
   */
  made: string[];
  /**
   * Tags of `vms mount --readonly` shares. libvirt 9.0 refuses `<readonly/>` on a virtiofs share, so the share is
   * defined writable and vms keeps read-only here: every later mount of it is read-only in the guest and its fstab.
   */
  readonlyShares?: string[];
  /** The user's own words about the VM (`vms set --notes`). */
  notes?: string;
}

export function renderMetadata(m: VmsMetadata): string {
  const el = (tag: string, value: string | undefined) =>
    value === undefined ? '' : `<${VMS_PREFIX}:${tag}>${escapeXml(value)}</${VMS_PREFIX}:${tag}>`;
  return (
    `<${VMS_PREFIX}:vm xmlns:${VMS_PREFIX}="${VMS_NS}">` +
    el('profile', m.profile) +
    el('created', m.created) +
    el('created-from', m.createdFrom) +
    el('pending', m.pending) +
    m.bases.map((b) => el('base', b)).join('') +
    m.made.map((f) => el('made', f)).join('') +
    (m.readonlyShares ?? []).map((t) => el('readonly-share', t)).join('') +
    el('notes', m.notes) +
    `</${VMS_PREFIX}:vm>`
  );
}
