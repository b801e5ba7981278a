import { basename, dirname, join } from 'node:path';
import { readMetadata } from './domain-parse.js';
import { first, parseXml, type XmlNode } from './xml.js';
import { renderMetadata, VMS_NS, type VmsMetadata } from './metadata.js';
import { ownerSeclabel } from './serial-xml.js';

/** virtiofs tags of the install-time package caches. */
export const PKG_CACHE_TAG_PREFIX = 'vms-pkg-';

// Pure edits on a parsed domain (xml2js shape). Each returns a new object and leaves its input alone.

/** Replaces (or adds) the vms block in <metadata>, leaving other applications' metadata alone. */
export async function withMetadata(domain: XmlNode, metadata: VmsMetadata): Promise<XmlNode> {
  const out = structuredClone(domain);
  const parsed = await parseXml(renderMetadata(metadata));
  let md = first(out.metadata);
  if (typeof md !== 'object' || md === null) md = {};
  for (const [key, nodes] of Object.entries(md)) {
    const node = Array.isArray(nodes) ? nodes[0] : undefined;
    if (Object.entries(node?.$ ?? {}).some(([k, v]) => k.startsWith('xmlns') && v === VMS_NS)) delete md[key];
  }
  for (const [key, node] of Object.entries(parsed)) md[key] = [node]; // xml2js keeps every child in an array
  out.metadata = [md];
  return out;
}

/** The domain with its vms metadata changed by `edit` (the rest of it, and other applications' metadata, kept). */
export const editMetadata = (domain: XmlNode, edit: (m: VmsMetadata) => VmsMetadata) =>
  withMetadata(domain, edit(readMetadata(domain)));

/** Points disks (by target dev) at new files; libvirt re-reads their backing chains itself. */
export function withDiskSources(domain: XmlNode, sources: ReadonlyMap<string, string>): XmlNode {
  const out = structuredClone(domain);
  for (const disk of first(out.devices)?.disk ?? []) {
    const file = sources.get(first(disk.target)?.$?.dev);
    if (!file) continue;
    disk.source = [{ ...first(disk.source), $: { ...first(disk.source)?.$, file } }];
    delete disk.backingStore;
    disk.driver = [{ ...first(disk.driver), $: { ...first(disk.driver)?.$, type: 'qcow2' } }]; // vms writes only qcow2
  }
  return out;
}

export interface CloneIdentity {
  name: string;
  disks: ReadonlyMap<string, string>;
  nvram?: string;
  /** In the clone's own directory: its extra serial ports' files and sockets go there too. */
  serialSocket: string;
  /** The cloning user may connect to the clone's console (see chardevOwner). */
  consoleOwner: string;
  serialLog: string;
  metadata: VmsMetadata;
}

/** A copy of a definition with a new identity: name, no UUID or MACs (libvirt makes new ones), own files. */
export async function cloneDefinition(domain: XmlNode, id: CloneIdentity): Promise<XmlNode> {
  const out = withDiskSources(domain, id.disks);
  out.name = [id.name];
  delete out.uuid;
  const os = first(out.os);
  // Replaced whole, whichever form SRC's was in: the clone must never point at SRC's NVRAM.
  if (os?.nvram) {
    const template = first(os.nvram)?.$?.template;
    os.nvram = id.nvram ? [template ? { $: { template }, _: id.nvram } : id.nvram] : undefined;
    if (!id.nvram) delete os.nvram;
  }
  const devices = first(out.devices) ?? {};
  for (const iface of devices.interface ?? []) delete iface.mac;
  // The console's socket and transcript are the clone's own. Without a <console>, the console is the first serial
  // port (as domainFacts reads it).
  const consoleSocket = first(first(devices.console ?? devices.serial)?.source)?.$?.path;
  for (const kind of ['serial', 'console'] as const) {
    for (const dev of devices[kind] ?? []) {
      const source = first(dev.source);
      if (dev.$?.type !== 'unix' || source?.$?.path !== consoleSocket) continue;
      dev.source = [{ ...source, $: { ...source.$, path: id.serialSocket }, seclabel: ownerSeclabel(id.consoleOwner) }];
      if (dev.log) dev.log = [{ $: { ...first(dev.log).$, file: id.serialLog } }];
    }
  }
  const moved = withOwnPortFiles(devices, id);
  for (const channel of devices.channel ?? []) if (channel.$?.type === 'unix') delete channel.source; // per-domain path
  for (const g of devices.graphics ?? []) {
    if (g.$?.autoport === 'yes') {
      delete g.$.port;
      delete g.$.tlsPort;
    }
  }
  return withMetadata(withOemName(out, id.name), { ...id.metadata, made: [...(id.metadata.made ?? []), ...moved] });
}

/** `name`, or name-2, name-3 … before its extension, whichever `taken` does not hold yet. */
function freeName(name: string, taken: Set<string>): string {
  const dot = name.lastIndexOf('.');
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ''];
  for (let i = 1; ; i++) {
    const candidate = i === 1 ? name : `${stem}-${i}${ext}`;
    if (!taken.has(candidate)) return candidate;
  }
}

/**
 * Extra serial and parallel ports that write a file or listen on a socket, and their transcripts: kept as SRC has
 * them, the clone could not start while SRC runs (QEMU cannot bind one socket twice) and both would write into one
 * file. The clone gets its own, with the same names, in its own directory (where its console socket is); never one
 * of the names of its console socket, transcript or NVRAM. A port that connects to someone else's socket keeps it.
 * Edits `devices` in place; returns the new paths (files vms chose for the clone: its metadata.made).
 */
function withOwnPortFiles(devices: XmlNode, id: CloneIdentity): string[] {
  const dir = dirname(id.serialSocket);
  const taken = new Set(
    [id.serialSocket, id.serialLog, id.nvram].filter((p): p is string => Boolean(p)).map((p) => basename(p)),
  );
  const moved: string[] = [];
  const own = (path: string) => {
    const name = freeName(basename(path), taken);
    taken.add(name);
    moved.push(join(dir, name));
    return join(dir, name);
  };
  for (const kind of ['serial', 'parallel', 'console'] as const) {
    for (const dev of devices[kind] ?? []) {
      const source = first(dev.source);
      const path: string | undefined = source?.$?.path;
      if (!path || path === id.serialSocket) continue; // the console, done above
      const type = dev.$?.type;
      if (type === 'file' || (type === 'unix' && source.$.mode === 'bind')) {
        dev.source = [
          {
            ...source,
            $: { ...source.$, path: own(path) },
            ...(source.seclabel && { seclabel: ownerSeclabel(id.consoleOwner) }),
          },
        ];
      }
      const log = first(dev.log)?.$;
      if (log?.file) dev.log = [{ $: { ...log, file: own(log.file) } }];
    }
  }
  return moved;
}

/** Sets the SMBIOS OEM string the guest takes its name from (see guest/README.md). */
export function withOemName(domain: XmlNode, name: string): XmlNode {
  const out = structuredClone(domain);
  for (const sysinfo of out.sysinfo ?? []) {
    for (const oem of sysinfo.oemStrings ?? []) {
      oem.entry = (oem.entry ?? []).map((e: unknown) =>
        typeof e === 'string' && e.startsWith('vms.name=') ? `vms.name=${name}` : e,
      );
    }
  }
  return out;
}

/**
 * After an install: boot from the disk. No kernel, no cdrom, and no install-time package-cache shares (with the shared
 * memory they needed).
 */
export function withDiskBoot(domain: XmlNode): XmlNode {
  const out = structuredClone(domain);
  const os = first(out.os);
  if (os) {
    for (const key of ['kernel', 'initrd', 'cmdline', 'boot']) delete os[key];
    os.boot = [{ $: { dev: 'hd' } }];
  }
  const devices = first(out.devices);
  if (devices) {
    devices.disk = (devices.disk ?? []).filter((d: XmlNode) => d.$?.device !== 'cdrom');
    devices.filesystem = (devices.filesystem ?? []).filter(
      (f: XmlNode) => !String(first(f.target)?.$?.dir).startsWith(PKG_CACHE_TAG_PREFIX),
    );
    if (devices.filesystem.length === 0) {
      delete devices.filesystem;
      delete out.memoryBacking;
    }
  }
  return out;
}
