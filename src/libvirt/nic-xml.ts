import { buildDeviceXml } from './device-xml.js';
import { first, type XmlNode } from './xml.js';

// <interface> elements: the ones vms plugs in, and reading what a definition has.

export const NIC_MODELS = ['virtio', 'e1000e'] as const;
export type NicModel = (typeof NIC_MODELS)[number];

/** A libvirt network (NAT by default), a host bridge, or QEMU's user-mode networking (no host setup at all). */
export type NicSource = { kind: 'network'; name: string } | { kind: 'bridge'; name: string } | { kind: 'user' };

export interface NicSpec {
  source: NicSource;
  model: NicModel;
  /** Absent: libvirt picks one. */
  mac?: string;
}

export interface NicFacts {
  type: string; // network | bridge | user | direct | …
  source?: string; // the network's or bridge's name
  model?: string;
  mac: string; // lower case
  node: XmlNode;
}

export function nicXml(spec: NicSpec): Promise<string> {
  const { source } = spec;
  return buildDeviceXml('interface', {
    $: { type: source.kind },
    ...(spec.mac && { mac: [{ $: { address: spec.mac } }] }),
    ...(source.kind !== 'user' && { source: [{ $: { [source.kind]: source.name } }] }),
    model: [{ $: { type: spec.model } }],
  });
}

export function readNics(domain: XmlNode): NicFacts[] {
  return (first(domain.devices)?.interface ?? []).map((node: XmlNode) => {
    const source = first(node.source)?.$ ?? {};
    return {
      type: node.$?.type ?? 'unknown',
      source: source.network ?? source.bridge ?? source.dev,
      model: first(node.model)?.$?.type,
      mac: String(first(node.mac)?.$?.address ?? '').toLowerCase(),
      node,
    };
  });
}

/**
 * The NIC as detach-device is to find it: by its type, source and MAC. Without its PCI address and alias, which
 * libvirt would match too and which may differ between the running VM and the saved definition.
 */
export function detachNicXml(nic: NicFacts): Promise<string> {
  const node = { ...nic.node };
  delete node.address;
  delete node.alias;
  return buildDeviceXml('interface', node);
}
