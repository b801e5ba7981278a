import { usageError } from '../errors.js';
import { domainFacts, type DiskFacts, type XmlNode } from './domain-parse.js';

// The <disk> and <controller> elements `vms disk` plugs into a domain, the target names it picks, and the buses it
// knows. Pure: no virsh here.

export const DISK_BUSES = ['virtio', 'sata', 'scsi'] as const;
export type DiskBus = (typeof DISK_BUSES)[number];

/** Buses QEMU cannot plug a disk into (or out of) while the guest runs: q35's AHCI has no hotplug. */
export const COLD_PLUG_ONLY: readonly string[] = ['sata'];

export function parseBus(text: string): DiskBus {
  const bus = DISK_BUSES.find((b) => b === text);
  if (bus) return bus;
  if (text === 'nvme') {
    // Measured: libvirt 9.0 rejects <target bus='nvme'> ("Invalid value for attribute 'bus'"), and its domain
    // capabilities list no nvme bus; its <disk type='nvme'> is host NVMe passthrough, not an emulated disk.
    throw usageError("bus 'nvme' is not supported: libvirt 9.0 cannot emulate an NVMe disk", 'use --bus virtio (the fastest), sata or scsi');
  }
  throw usageError(`unknown bus '${text}'`, `use --bus ${DISK_BUSES.join(', ')}`);
}

/** libvirt's disk names: vda … vdz, vdaa … (virDiskNameToIndex). sata and scsi share the sd names (and cdroms). */
export function targetName(prefix: string, index: number): string {
  let suffix = '';
  for (let i = index + 1; i > 0; i = Math.floor((i - 1) / 26)) suffix = String.fromCharCode(97 + ((i - 1) % 26)) + suffix;
  return prefix + suffix;
}

/** The first target name of the bus's family that no disk of the domain (saved or live) uses. */
export function nextTarget(bus: DiskBus, used: Iterable<string>): string {
  const taken = new Set(used);
  const prefix = bus === 'virtio' ? 'vd' : 'sd';
  for (let i = 0; ; i++) if (!taken.has(targetName(prefix, i))) return targetName(prefix, i);
}

const escapeAttr = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);

export interface DiskSpec {
  path: string;
  format: string; // qcow2 | raw: stated, so libvirt never probes the file
  bus: DiskBus;
  target: string;
  readonly: boolean;
}

export function diskXml(d: DiskSpec): string {
  return [
    `<disk type='file' device='disk'>`,
    `  <driver name='qemu' type='${escapeAttr(d.format)}'${d.readonly ? '' : " discard='unmap'"}/>`,
    `  <source file='${escapeAttr(d.path)}'/>`,
    `  <target dev='${d.target}' bus='${d.bus}'/>`,
    ...(d.readonly ? ['  <readonly/>'] : []),
    `</disk>`,
  ].join('\n');
}

/** What `virsh detach-device` needs to find a disk: libvirt matches disks by target alone (measured on 9.0). */
export const diskByTargetXml = (target: string) => `<disk device='disk'><target dev='${escapeAttr(target)}'/></disk>`;

/**
 * The controller a scsi disk needs, added only to a domain that has no scsi controller (so index 0 is free). The model
 * is stated: libvirt's default depends on the machine and QEMU, and virtio-scsi is the one guests have a driver for.
 */
export const SCSI_CONTROLLER_XML = `<controller type='scsi' index='0' model='virtio-scsi'/>`;

const first = (arr: unknown) => (Array.isArray(arr) ? arr[0] : undefined);

export function hasScsiController(domain: XmlNode): boolean {
  const controllers: XmlNode[] = first(domain.devices)?.controller ?? [];
  return controllers.some((c) => c.$?.type === 'scsi');
}

export interface DiskDevice extends DiskFacts {
  bus?: string;
}

/** The domain's disks (cdroms too) with their buses, in definition order. */
export function diskDevices(domain: XmlNode): DiskDevice[] {
  const nodes: XmlNode[] = first(domain.devices)?.disk ?? [];
  return domainFacts(domain).disks.map((d, i) => ({ ...d, bus: first(nodes[i]?.target)?.$?.bus }));
}
