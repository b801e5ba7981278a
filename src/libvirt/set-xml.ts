import { first, text, type XmlNode } from './xml.js';

// Reading and editing what `vms set` changes in a domain definition (xml2js shape, as in domain-edit.ts). Each edit
// returns a new object and leaves its input alone.

/** A maximum and the part of it in use: memory (bytes; the rest is ballooned away) or vCPUs (the rest unplugged). */
export interface Amount {
  max: number;
  current: number;
}

export interface Resources {
  memory: Amount;
  cpus: Amount;
  /** Heads of the primary video device; undefined when the VM has no display. */
  displays?: number;
}

/** virsh dumpxml writes every memory amount in KiB, whatever unit it was defined in. */
function kibToBytes(node: unknown): number | undefined {
  if (node === undefined) return undefined;
  const unit = (node as XmlNode).$?.unit ?? 'KiB';
  if (unit !== 'KiB') throw new Error(`unexpected memory unit '${unit}': expected the KiB of virsh dumpxml`);
  return Number(text(node)) * 1024;
}

const primaryVideo = (domain: XmlNode): XmlNode | undefined => {
  const videos: XmlNode[] = first(domain.devices)?.video ?? [];
  return videos.find((v) => first(v.model)?.$?.primary === 'yes') ?? videos[0];
};

export function readResources(domain: XmlNode): Resources {
  const maxMemory = kibToBytes(first(domain.memory)) ?? 0;
  const vcpu = first(domain.vcpu);
  const maxCpus = Number(text(vcpu) ?? 1);
  const model = first(primaryVideo(domain)?.model);
  const hasDisplay = model !== undefined && model.$?.type !== 'none';
  return {
    memory: { max: maxMemory, current: kibToBytes(first(domain.currentMemory)) ?? maxMemory },
    cpus: { max: maxCpus, current: Number(vcpu?.$?.current ?? maxCpus) },
    displays: hasDisplay ? Number(model.$?.heads ?? 1) : undefined,
  };
}

export function withMemory(domain: XmlNode, memory: Amount): XmlNode {
  const out = structuredClone(domain);
  out.memory = [{ $: { unit: 'KiB' }, _: String(Math.round(memory.max / 1024)) }];
  out.currentMemory = [{ $: { unit: 'KiB' }, _: String(Math.round(memory.current / 1024)) }];
  return out;
}

export function withCpus(domain: XmlNode, cpus: Amount): XmlNode {
  const out = structuredClone(domain);
  const $ = { ...first(out.vcpu)?.$ };
  if (cpus.current < cpus.max) $.current = String(cpus.current);
  else delete $.current;
  out.vcpu = [{ $, _: String(cpus.max) }];
  delete out.vcpus; // the per-vCPU list describes the old count: libvirt makes a new one
  return out;
}

/** Sets the heads of the primary video device (a VM without a display has none to set: check readResources first). */
export function withDisplays(domain: XmlNode, heads: number): XmlNode {
  const out = structuredClone(domain);
  const model = first(primaryVideo(out)?.model);
  if (!model) throw new Error('the domain has no video device');
  model.$ = { ...model.$, heads: String(heads) };
  return out;
}

/**
 * Points every path inside directory `from` (serial socket, its transcript, NVRAM, …) into `to`, for a VM whose own
 * directory moves. vms' metadata is left alone: it names disks and bases, which stay where they are.
 */
export function withMovedDir(domain: XmlNode, from: string, to: string): XmlNode {
  const prefix = from.replace(/\/+$/, '') + '/';
  const move = (value: string) =>
    value.startsWith(prefix) ? to.replace(/\/+$/, '') + '/' + value.slice(prefix.length) : value;
  const walk = (node: unknown): unknown => {
    if (typeof node === 'string') return move(node);
    if (Array.isArray(node)) return node.map(walk);
    if (node && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, walk(v)]));
    return node;
  };
  return Object.fromEntries(
    Object.entries(domain).map(([key, value]) => [key, key === 'metadata' ? structuredClone(value) : walk(value)]),
  );
}
