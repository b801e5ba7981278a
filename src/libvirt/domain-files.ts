import { domainFacts, parseDomainXml } from './domain-parse.js';
import { first, parseXml, text, type XmlNode } from './xml.js';

// Every host file a domain definition (or a snapshot of it) names, with what the VM does with it. Pure: the backing
// chains under the disks are read with qemu-img by src/core/files-in-use.ts.

/** What a file is to the VM. */
export type FileRole =
  | 'disk' // a disk image (writable, or read-only when access is 'read')
  | 'backing' // a file in the backing chain under a disk: a base
  | 'cdrom' // an ISO
  | 'nvram' // its UEFI variables
  | 'loader' // its firmware
  | 'kernel'
  | 'initrd'
  | 'console' // the console's socket (or file)
  | 'serial' // an extra serial or parallel port's file or socket
  | 'log' // a character device's transcript (the console's serial.log)
  | 'channel' // a channel's socket (the guest agent's)
  | 'memory'; // a snapshot's memory file

/** read: QEMU only reads it; write: QEMU writes it; listen/connect: a unix socket QEMU binds or connects to. */
export type FileAccess = 'read' | 'write' | 'listen' | 'connect';

export interface FileReference {
  path: string;
  role: FileRole;
  access: FileAccess;
  /** A disk's format as the definition states it (only for 'disk'): whether it can have a backing chain. */
  format?: string;
}

/** The chardevs (<serial>, <console>, <parallel>, <channel>): their file or socket, and their transcript. */
function chardevReferences(devices: XmlNode): FileReference[] {
  // Without a <console>, the console is the first serial port (as domainFacts reads it).
  const consolePath = first(first(devices.console ?? devices.serial)?.source)?.$?.path;
  const refs: FileReference[] = [];
  for (const kind of ['serial', 'console', 'parallel', 'channel'] as const) {
    for (const dev of devices[kind] ?? []) {
      const type = dev.$?.type;
      const source = first(dev.source)?.$ ?? {};
      const log = first(dev.log)?.$?.file;
      if (log) refs.push({ path: log, role: 'log', access: 'write' });
      if (!source.path || !['file', 'unix', 'pipe', 'dev'].includes(type)) continue;
      const role: FileRole = kind === 'channel' ? 'channel' : source.path === consolePath ? 'console' : 'serial';
      const access: FileAccess = type === 'unix' ? (source.mode === 'bind' ? 'listen' : 'connect') : 'write';
      refs.push({ path: source.path, role, access });
    }
  }
  return refs;
}

/** The files a parsed domain names: disks and ISOs, firmware, NVRAM, kernel and initrd, chardev files and sockets. */
export function domainReferences(domain: XmlNode): FileReference[] {
  const facts = domainFacts(domain);
  const os = first(domain.os) ?? {};
  const refs: FileReference[] = [];
  for (const d of facts.disks) {
    if (!d.path) continue;
    if (d.device === 'cdrom') refs.push({ path: d.path, role: 'cdrom', access: 'read' });
    else refs.push({ path: d.path, role: 'disk', access: d.readonly ? 'read' : 'write', format: d.format });
  }
  if (facts.nvramPath) refs.push({ path: facts.nvramPath, role: 'nvram', access: 'write' });
  for (const role of ['loader', 'kernel', 'initrd'] as const) {
    const path = text(first(os[role]));
    if (path) refs.push({ path, role, access: 'read' });
  }
  return [...refs, ...chardevReferences(first(domain.devices) ?? {})];
}

export async function domainXmlReferences(xml: string): Promise<FileReference[]> {
  return domainReferences(await parseDomainXml(xml));
}

/**
 * The files a snapshot (`virsh snapshot-dumpxml`) needs to be reverted to: its memory file, the files its external
 * disks were taken into, and every file of the definition it keeps (a disk detached since is still needed by it).
 */
export async function snapshotReferences(xml: string): Promise<FileReference[]> {
  const snap = (await parseXml(xml))?.domainsnapshot;
  if (!snap) throw new Error('not a libvirt domain snapshot XML document');
  const refs: FileReference[] = [];
  const memory = first(snap.memory)?.$?.file;
  if (memory) refs.push({ path: memory, role: 'memory', access: 'read' });
  for (const d of first(snap.disks)?.disk ?? []) {
    const file = first(d.source)?.$?.file;
    if (file) refs.push({ path: file, role: 'disk', access: 'write', format: first(d.driver)?.$?.type });
  }
  const domain = first(snap.domain);
  return domain ? [...refs, ...domainReferences(domain)] : refs;
}
