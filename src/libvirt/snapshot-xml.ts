import { domainFacts } from './domain-parse.js';
import { parseXml, text } from './xml.js';

// Reading libvirt domain snapshots (`virsh snapshot-dumpxml`) and building `virsh snapshot-create-as` arguments.

/* eslint-disable @typescript-eslint/no-explicit-any */

/** internal: inside the qcow2 disk (and its RAM state with it); external: new overlay files (and a memory file). */
export type SnapshotKind = 'internal' | 'external';

export interface SnapshotFacts {
  name: string;
  description?: string;
  /** ISO 8601. */
  created: string;
  /** The VM's state when it was taken, in `vms list`'s words: running, paused, shut off. */
  state: string;
  parent?: string;
  kind: SnapshotKind;
  /** The VM's memory is part of it (a running VM's snapshot that brings it back running). */
  withMemory: boolean;
  /** An external snapshot's memory file (libvirt leaves it behind when the snapshot is deleted). */
  memoryFile?: string;
  /**
   * Per disk: internal, external or no (cdroms, read-only disks), with the file its data lie in: an external one's
   * overlay that started there, an internal one's qcow2 (the disk's file when the snapshot was taken).
   */
  disks: { target: string; snapshot: string; file?: string }[];
}

// libvirt's snapshot states in the words vms uses for a VM's state; disk-snapshot is a running VM's disks without its memory.
const STATES: Record<string, string> = {
  shutoff: 'shut off',
  shutdown: 'in shutdown',
  nostate: 'no state',
  'disk-snapshot': 'running',
};

export async function parseSnapshotXml(xml: string): Promise<SnapshotFacts> {
  const snap = (await parseXml(xml))?.domainsnapshot;
  if (!snap) throw new Error('not a libvirt domain snapshot XML document');
  const memory = snap.memory?.[0]?.$ ?? {};
  // The definition it was taken with (a running VM's saved one, when libvirt kept both): where its disks were then.
  const taken = snap.inactiveDomain?.[0] ?? snap.domain?.[0];
  const then = new Map(taken ? domainFacts(taken).disks.map((d) => [d.target, d.path]) : []);
  const disks = (snap.disks?.[0]?.disk ?? []).map((d: any) => ({
    target: d.$?.name ?? '',
    snapshot: d.$?.snapshot ?? 'no',
    file:
      d.source?.[0]?.$?.file ??
      d.source?.[0]?.$?.dev ??
      (d.$?.snapshot === 'internal' ? then.get(d.$?.name) : undefined),
  }));
  const external = memory.snapshot === 'external' || disks.some((d: { snapshot: string }) => d.snapshot === 'external');
  return {
    name: text(snap.name?.[0]) ?? '',
    description: text(snap.description?.[0]) || undefined,
    created: new Date(Number(text(snap.creationTime?.[0]) ?? 0) * 1000).toISOString(),
    state: STATES[text(snap.state?.[0]) ?? ''] ?? text(snap.state?.[0]) ?? 'unknown',
    parent: text(snap.parent?.[0]?.name?.[0]),
    kind: external ? 'external' : 'internal',
    withMemory: memory.snapshot === 'internal' || memory.snapshot === 'external',
    memoryFile: memory.file,
    disks,
  };
}

export interface SnapshotRequest {
  vm: string;
  name: string;
  description?: string;
  external: boolean;
  /** For an external snapshot of a running VM: where its memory goes (without it, only the disks are snapshotted). */
  memoryFile?: string;
}

/**
 * `virsh snapshot-create-as` arguments. Internal: the running VM's RAM goes into the qcow2 too. External: each
 * writable disk goes on from a new overlay next to it (libvirt names it `<disk>.<snapshot>`; cdroms and read-only
 * disks are left out by libvirt itself), with the memory in its own file when the VM runs. --atomic: all or nothing.
 */
export function snapshotCreateArgs(r: SnapshotRequest): string[] {
  const args = [
    'snapshot-create-as',
    r.vm,
    r.name,
    ...(r.description === undefined ? [] : ['--description', r.description]),
    '--atomic',
  ];
  if (!r.external) return args;
  // virsh splits --memspec at commas; a comma in the path is written twice.
  return r.memoryFile
    ? [...args, '--memspec', `file=${r.memoryFile.replaceAll(',', ',,')},snapshot=external`]
    : [...args, '--disk-only'];
}
