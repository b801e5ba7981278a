import { templateSource } from '../bundled.js';
import { MiB } from '../size.js';
import { renderMetadata, type VmsMetadata } from './metadata.js';

export type Firmware = 'bios' | 'efi';
export type DomainType = 'kvm' | 'qemu';

/** "default" or another libvirt network name, user-mode networking, or no NIC. */
export type NetworkSpec = { kind: 'network'; name: string } | { kind: 'user' } | { kind: 'none' };

export interface DirectKernelBoot {
  kernel: string;
  initrd?: string;
  cmdline?: string;
}

/** Everything the domain template needs; rendering it is pure. */
export interface DomainSpec {
  name: string;
  uuid?: string;
  domainType: DomainType;
  memoryBytes: number;
  cpus: number;
  firmware: Firmware;
  nvramPath?: string; // required for efi
  diskPath: string;
  cdrom?: string;
  kernelBoot?: DirectKernelBoot;
  network: NetworkSpec;
  serialSocket: string;
  /** Who may connect to the console socket, as a libvirt DAC label `+UID:+GID` (see chardevOwner). */
  consoleOwner: string;
  serialLog: string;
  graphics: boolean;
  /** Host directories shared over virtiofs, by tag (the package caches during an install). */
  shares?: Share[];
  metadata: VmsMetadata;
}

export interface Share {
  source: string;
  tag: string;
}

/** Enough for the VM's own PCIe devices (about 8 at most) and 6 free for hotplug. */
const ROOT_PORTS = 14;

let compiled: HandlebarsTemplateDelegate | undefined;

export async function renderDomainXml(spec: DomainSpec): Promise<string> {
  if (spec.firmware === 'efi' && !spec.nvramPath) throw new Error('efi firmware needs an NVRAM path');
  const { default: Handlebars } = await import('handlebars');
  compiled ??= Handlebars.compile(templateSource('domain.xml.hbs'), { strict: false, noEscape: false });
  // Handlebars' HTML escaping (& < > " ' ` =) produces valid XML character references, so every {{value}} is safe
  // inside elements and attributes alike. Only the metadata block is pre-rendered (and escaped) by us.
  return compiled({
    domainType: spec.domainType,
    name: spec.name,
    uuid: spec.uuid,
    metadataXml: renderMetadata(spec.metadata),
    memoryMiB: Math.max(1, Math.round(spec.memoryBytes / MiB)),
    cpus: spec.cpus,
    efi: spec.firmware === 'efi',
    nvramPath: spec.nvramPath,
    kernel: spec.kernelBoot?.kernel,
    initrd: spec.kernelBoot?.initrd,
    cmdline: spec.kernelBoot?.cmdline,
    hostCpu: spec.domainType === 'kvm',
    diskPath: spec.diskPath,
    cdrom: spec.cdrom,
    network: spec.network.kind !== 'none' ? (spec.network.kind === 'network' ? spec.network.name : 'user') : undefined,
    userNetwork: spec.network.kind === 'user',
    serialSocket: spec.serialSocket,
    consoleOwner: spec.consoleOwner,
    serialLog: spec.serialLog,
    graphics: spec.graphics,
    shares: spec.shares ?? [],
    rootPorts: Array.from({ length: ROOT_PORTS }),
  });
}
