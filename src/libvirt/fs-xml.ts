import { createHash } from 'node:crypto';
import { buildDeviceXml } from './device-xml.js';
import { first, type XmlNode } from './xml.js';

// Shared folders in libvirt's domain XML: virtiofs <filesystem> devices and the shared memory they need. Pure edits on
// a parsed domain (xml2js shape: every child an array, attributes under "$"); each returns a new object.

/* eslint-disable @typescript-eslint/no-explicit-any */

/** Tags of `vms mount` shares (the install's package caches use vms-pkg-, which withDiskBoot removes). */
export const MOUNT_TAG_PREFIX = 'vms-mnt-';
const TAG_MAX = 36; // the virtio-fs tag field holds 36 bytes

export interface FsShare {
  tag: string;
  source: string;
  /** Enforced by libvirt on the host (`<readonly/>`); libvirt 9.0 refuses it for virtiofs. */
  readonly: boolean;
}

/**
 * The tag a guest directory is shared under: readable in the guest's `mount` output (the path's end) and unique (a
 * hash of the whole path), so `vms umount NAME GUESTDIR` finds the share again without any record of its own.
 */
export function shareTag(guestDir: string): string {
  const hash = createHash('sha256').update(guestDir).digest('hex').slice(0, 8);
  const room = TAG_MAX - MOUNT_TAG_PREFIX.length - hash.length - 1;
  const readable = guestDir
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(-room)
    .replace(/^-+|-+$/g, '');
  return `${MOUNT_TAG_PREFIX}${readable ? `${readable}-` : ''}${hash}`;
}

/** The virtiofs shares of a domain (live or saved definition). */
export function virtiofsShares(domain: XmlNode): FsShare[] {
  const filesystems: any[] = first(domain.devices)?.filesystem ?? [];
  return filesystems
    .filter((f) => first(f.driver)?.$?.type === 'virtiofs')
    .map((f) => ({
      tag: first(f.target)?.$?.dir ?? '',
      source: first(f.source)?.$?.dir ?? '',
      readonly: f.readonly !== undefined,
    }));
}

export const findShare = (domain: XmlNode, tag: string) => virtiofsShares(domain).find((s) => s.tag === tag);

/** virtiofsd maps the guest's memory: the domain must back it with shared memory (no NUMA nodes in vms' domains). */
export function hasSharedMemory(domain: XmlNode): boolean {
  return first(first(domain.memoryBacking)?.access)?.$?.mode === 'shared';
}

/** Adds shared memory backing (memfd, as the template does), keeping whatever else <memoryBacking> says. */
export function withSharedMemory(domain: XmlNode): XmlNode {
  const out = structuredClone(domain);
  const backing = first(out.memoryBacking) ?? {};
  const source = first(backing.source)?.$?.type;
  if (!source || source === 'anonymous') backing.source = [{ $: { type: 'memfd' } }];
  backing.access = [{ $: { mode: 'shared' } }];
  out.memoryBacking = [backing];
  return out;
}

function filesystemNode(share: FsShare): XmlNode {
  return {
    $: { type: 'mount', accessmode: 'passthrough' },
    driver: [{ $: { type: 'virtiofs' } }],
    source: [{ $: { dir: share.source } }],
    target: [{ $: { dir: share.tag } }],
    ...(share.readonly && { readonly: [''] }),
  };
}

export function withShare(domain: XmlNode, share: FsShare): XmlNode {
  const out = structuredClone(domain);
  const devices = first(out.devices);
  devices.filesystem = [...(devices.filesystem ?? []), filesystemNode(share)];
  return out;
}

/** Removes the share of that tag. Shared memory stays: it costs nothing and lets the next share plug in live. */
export function withoutShare(domain: XmlNode, tag: string): XmlNode {
  const out = structuredClone(domain);
  const devices = first(out.devices);
  devices.filesystem = (devices.filesystem ?? []).filter((f: any) => first(f.target)?.$?.dir !== tag);
  if (devices.filesystem.length === 0) delete devices.filesystem;
  return out;
}

/** The <filesystem> element alone, for `virsh attach-device` / `detach-device` (libvirt matches a share by its tag). */
export const filesystemXml = (share: FsShare) => buildDeviceXml('filesystem', filesystemNode(share));
