import { usageError } from '../errors.js';
import { domainFacts, type DiskFacts } from './domain-parse.js';
import { escapeXml, first, parseXml, type XmlNode } from './xml.js';

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
    throw usageError(
      "bus 'nvme' is not supported: libvirt 9.0 cannot emulate an NVMe disk",
      'use --bus virtio (the fastest), sata or scsi',
    );
  }
  throw usageError(`unknown bus '${text}'`, `use --bus ${DISK_BUSES.join(', ')}`);
}

/** libvirt's disk names: vda … vdz, vdaa … (virDiskNameToIndex). sata and scsi share the sd names (and cdroms). */
export function targetName(prefix: string, index: number): string {
  let suffix = '';
  for (let i = index + 1; i > 0; i = Math.floor((i - 1) / 26))
    suffix = String.fromCharCode(97 + ((i - 1) % 26)) + suffix;
  return prefix + suffix;
}

/** The first target name of the bus's family that no disk of the domain (saved or live) uses. */
export function nextTarget(bus: DiskBus, used: Iterable<string>): string {
  const taken = new Set(used);
  const prefix = bus === 'virtio' ? 'vd' : 'sd';
  for (let i = 0; ; i++) if (!taken.has(targetName(prefix, i))) return targetName(prefix, i);
}

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
    `  <driver name='qemu' type='${escapeXml(d.format)}'${d.readonly ? '' : " discard='unmap'"}/>`,
    `  <source file='${escapeXml(d.path)}'/>`,
    `  <target dev='${d.target}' bus='${d.bus}'/>`,
    ...(d.readonly ? ['  <readonly/>'] : []),
    `</disk>`,
  ].join('\n');
}

/** What `virsh detach-device` needs to find a disk: libvirt matches disks by target alone (measured on 9.0). */
export const diskByTargetXml = (target: string) => `<disk device='disk'><target dev='${escapeXml(target)}'/></disk>`;

/**
 * The controller a scsi disk needs, added only to a domain that has no scsi controller (so index 0 is free). The model
 * is stated: libvirt's default depends on the machine and QEMU, and virtio-scsi is the one guests have a driver for.
 */
export const SCSI_CONTROLLER_XML = `<controller type='scsi' index='0' model='virtio-scsi'/>`;

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

/** libvirt's number for a target name (virDiskNameToIndex): vda → 0, vdz → 25, vdaa → 26; -1 when it has none. */
export function targetIndex(target: string): number {
  const letters = /^(?:[a-z]{2})([a-z]+)$/.exec(target)?.[1];
  if (!letters) return -1;
  let index = 0;
  for (const c of letters) index = index * 26 + (c.charCodeAt(0) - 96);
  return index - 1;
}

/** A <disk> element (as diskXml writes it) in the xml2js shape, for editing a parsed domain. */
export async function diskNode(d: DiskSpec): Promise<XmlNode> {
  return (await parseXml(diskXml(d))).disk;
}

const busOf = (disk: XmlNode): string | undefined => first(disk.target)?.$?.bus;
const targetOf = (disk: XmlNode): string => first(disk.target)?.$?.dev ?? '';

/**
 * The domain with a disk added where libvirt's attach-device would put it (virDomainDiskInsert): before the first
 * disk of its bus with a higher target, else after the last one of its bus, else at the end. So a disk defined with
 * `virsh define` sits where an attached one would (guests and `vms disk list` see the same order).
 */
export function withDisk(domain: XmlNode, disk: XmlNode): XmlNode {
  const out = structuredClone(domain);
  if (!out.devices) out.devices = [{}];
  if (typeof out.devices[0] !== 'object') out.devices[0] = {};
  const disks: XmlNode[] = (out.devices[0].disk ??= []);
  let at = -1;
  for (let i = disks.length - 1; i >= 0; i--) {
    if (busOf(disks[i]!) !== busOf(disk)) continue;
    if (targetIndex(targetOf(disks[i]!)) > targetIndex(targetOf(disk))) at = i;
    else if (at === -1) at = i + 1;
  }
  disks.splice(at === -1 ? disks.length : at, 0, disk);
  return out;
}

/** The domain without the disk of that target. */
export function withoutDisk(domain: XmlNode, target: string): XmlNode {
  const out = structuredClone(domain);
  const devices = first(out.devices);
  if (devices?.disk) devices.disk = devices.disk.filter((d: XmlNode) => targetOf(d) !== target);
  return out;
}
