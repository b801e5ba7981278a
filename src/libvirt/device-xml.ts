import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDomainXml } from './domain-parse.js';
import { buildXml, type XmlNode } from './xml.js';
import type { Virsh } from './virsh.js';

// One device at a time, on the running VM and/or its saved definition: what `vms nic` and `vms serial` share.

/** Where a device change goes: the running VM (`--live`), the saved definition (`--config`), or both. */
export interface Where {
  live: boolean;
  config: boolean;
}

/** A device element (xml2js shape) as the XML libvirt's attach-device and detach-device read. */
export async function buildDeviceXml(tag: string, node: XmlNode): Promise<string> {
  return buildXml(tag, node);
}

/** `virsh attach-device` / `detach-device` read the device from a file: a private temp file. */
export async function changeDevice(
  virsh: Virsh,
  verb: 'attach-device' | 'detach-device',
  name: string,
  xml: string,
  where: Where,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'vms-'));
  try {
    await writeFile(join(dir, 'device.xml'), xml);
    const flags = [...(where.live ? ['--live'] : []), ...(where.config ? ['--config'] : [])];
    await virsh.run([verb, name, join(dir, 'device.xml'), ...flags], { subject: name });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The running VM's own definition (devices plugged in or out since it started); undefined when it is not running. */
export async function liveDomain(virsh: Virsh, name: string, running: boolean): Promise<XmlNode | undefined> {
  return running ? parseDomainXml(await virsh.dumpxml(name)) : undefined;
}

export interface Placed<T> {
  device: T;
  /** In the saved definition (what the next start uses). */
  inConfig: boolean;
  /** In the running VM; undefined when it is not running. */
  live?: boolean;
}

/**
 * The devices of one kind from the saved definition and the running VM, matched by `key`: the saved ones in their
 * order, then those only the running VM has (plugged in live only, e.g. with virsh).
 */
export function placeDevices<T>(
  saved: readonly T[],
  running: readonly T[] | undefined,
  key: (d: T) => string,
): Placed<T>[] {
  const liveKeys = new Set(running?.map(key));
  const savedKeys = new Set(saved.map(key));
  return [
    ...saved.map((device) => ({ device, inConfig: true, live: running && liveKeys.has(key(device)) })),
    ...(running ?? []).filter((d) => !savedKeys.has(key(d))).map((device) => ({ device, inConfig: false, live: true })),
  ];
}
