import { PENDING_STEPS, VMS_NS, type VmsMetadata } from './metadata.js';
import type { Firmware } from './domain-xml.js';
import { attr, buildXml, first, parseXml, text, type XmlNode } from './xml.js';

// Reading and editing libvirt's own domain XML (from `virsh dumpxml`). xml2js's default shape: every child is an
// array, attributes live under "$", text under "_".

/* eslint-disable @typescript-eslint/no-explicit-any */
export type { XmlNode } from './xml.js';

export interface DiskFacts {
  type: string; // file | block | volume | network
  device: string; // disk | cdrom | floppy | lun
  target: string;
  path?: string; // file or block device
  format?: string;
  readonly: boolean;
}

export interface DomainFacts {
  name: string;
  uuid: string;
  memoryBytes: number;
  cpus: number;
  firmware: Firmware;
  nvramPath?: string;
  disks: DiskFacts[];
  serialSocket?: string;
  serialLog?: string;
  graphics?: string; // spice | vnc
  networks: string[]; // "network:default", "user", "bridge:br0"
  metadata: VmsMetadata;
}

const UNIT: Record<string, number> = {
  b: 1,
  bytes: 1,
  KiB: 2 ** 10,
  k: 2 ** 10,
  MiB: 2 ** 20,
  M: 2 ** 20,
  GiB: 2 ** 30,
  G: 2 ** 30,
  TiB: 2 ** 40,
  T: 2 ** 40,
};

export async function parseDomainXml(xml: string): Promise<XmlNode> {
  const doc = await parseXml(xml);
  if (!doc?.domain) throw new Error('not a libvirt domain XML document');
  return doc.domain;
}

export async function buildDomainXml(domain: XmlNode): Promise<string> {
  return buildXml('domain', domain);
}

/** The <metadata> child in the vms namespace, whatever prefix it was stored under. */
function vmsMetadataNode(domain: XmlNode): { key: string; node: any } | undefined {
  const md = first(domain.metadata);
  if (!md || typeof md !== 'object') return undefined;
  for (const [key, nodes] of Object.entries(md)) {
    if (key === '$' || !Array.isArray(nodes)) continue;
    const node = nodes[0];
    const ns = Object.entries(node?.$ ?? {}).find(
      ([k, v]) => (k === 'xmlns' || k.startsWith('xmlns:')) && v === VMS_NS,
    );
    if (ns) return { key, node };
  }
  return undefined;
}

export function readMetadata(domain: XmlNode): VmsMetadata {
  const found = vmsMetadataNode(domain);
  if (!found) return { bases: [], made: [] };
  const prefix = found.key.includes(':') ? found.key.split(':')[0] + ':' : '';
  const get = (tag: string): string[] => (found.node[prefix + tag] ?? []).map((n: any) => text(n) ?? '');
  const pending = PENDING_STEPS.find((p) => p === get('pending')[0]);
  const notes = get('notes')[0];
  const readonlyShares = get('readonly-share').filter(Boolean);
  return {
    profile: get('profile')[0],
    created: get('created')[0],
    createdFrom: get('created-from')[0],
    ...(pending && { pending }),
    bases: get('base').filter(Boolean),
    made: get('made').filter(Boolean),
    ...(readonlyShares.length > 0 && { readonlyShares }),
    ...(notes !== undefined && { notes }),
  };
}

export function domainFacts(domain: XmlNode): DomainFacts {
  const memory = first(domain.memory);
  const devices = first(domain.devices) ?? {};
  const os = first(domain.os) ?? {};
  const serial = first(devices.serial);
  const firmware: Firmware =
    attr(os, 'firmware') === 'efi' || attr(first(os.loader), 'type') === 'pflash' ? 'efi' : 'bios';

  const disks: DiskFacts[] = (devices.disk ?? []).map((d: any) => {
    const source = first(d.source);
    return {
      type: attr(d, 'type') ?? 'file',
      device: attr(d, 'device') ?? 'disk',
      target: attr(first(d.target), 'dev') ?? '',
      path: attr(source, 'file') ?? attr(source, 'dev'),
      format: attr(first(d.driver), 'type'),
      readonly: d.readonly !== undefined,
    };
  });

  const networks = (devices.interface ?? []).map((i: any) => {
    const type = attr(i, 'type');
    const source = first(i.source);
    if (type === 'network') return `network:${attr(source, 'network')}`;
    if (type === 'bridge') return `bridge:${attr(source, 'bridge')}`;
    return type ?? 'unknown';
  });

  return {
    name: text(first(domain.name)) ?? '',
    uuid: text(first(domain.uuid)) ?? '',
    memoryBytes: Number(text(memory) ?? 0) * (UNIT[attr(memory, 'unit') ?? 'KiB'] ?? 1024),
    cpus: Number(text(first(domain.vcpu)) ?? 1),
    firmware,
    nvramPath: text(first(os.nvram)) || attr(first(first(os.nvram)?.source), 'file'), // <nvram>path</nvram> or <nvram type='file'><source file=…/>
    disks,
    serialSocket: attr(serial, 'type') === 'unix' ? attr(first(serial.source), 'path') : undefined,
    serialLog: attr(first(serial?.log), 'file'),
    graphics: attr(first(devices.graphics), 'type'),
    networks,
    metadata: readMetadata(domain),
  };
}
