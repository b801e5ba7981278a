// Reading libvirt storage pools: `virsh pool-info --bytes` (state, autostart, sizes in bytes) and `virsh pool-dumpxml`
// (type and target path, which pool-info does not show).

import { parseKeyValues } from './virsh-output.js';
import { parseXml } from './xml.js';

export interface PoolInfo {
  name: string;
  uuid: string;
  type?: string; // dir, fs, logical, netfs, …
  state: string; // running, inactive, building, degraded, inaccessible
  persistent: boolean;
  autostart: boolean;
  path?: string;
  /** Sizes in bytes; libvirt knows them only while the pool is running. */
  capacity?: number;
  allocation?: number;
  free?: number;
}

/** `virsh pool-info NAME --bytes`: "Key:   value" lines. */
export function parsePoolInfo(text: string): Omit<PoolInfo, 'type' | 'path'> {
  const values = parseKeyValues(text);
  const bytes = (key: string) => {
    const v = values.get(key);
    return v === undefined || !/^\d+$/.test(v) ? undefined : Number(v);
  };
  return {
    name: values.get('name') ?? '',
    uuid: values.get('uuid') ?? '',
    state: values.get('state') ?? 'unknown',
    persistent: values.get('persistent') === 'yes',
    autostart: values.get('autostart') === 'yes',
    capacity: bytes('capacity'),
    allocation: bytes('allocation'),
    free: bytes('available'),
  };
}

/** `virsh pool-dumpxml NAME`: the pool's type and target path. */
export async function parsePoolXml(xml: string): Promise<{ type?: string; path?: string }> {
  const pool = (await parseXml(xml))?.pool;
  if (!pool) throw new Error('not a libvirt storage pool XML document');
  const path = pool.target?.[0]?.path?.[0];
  return { type: pool.$?.type, path: typeof path === 'string' ? path : path?._ };
}

/** A pool from its `pool-info --bytes` and `pool-dumpxml`. */
export async function readPool(info: string, xml: string): Promise<PoolInfo> {
  const { name, uuid, ...rest } = parsePoolInfo(info);
  return { name, uuid, ...(await parsePoolXml(xml)), ...rest }; // in PoolInfo's order
}
