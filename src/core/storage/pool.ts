import { notFound } from '../../errors.js';
import { parsePoolInfo, parsePoolXml, type PoolInfo } from '../../libvirt/storage-pool.js';
import { classifyVirshError, parseNames } from '../../libvirt/virsh.js';
import type { Context } from '../context.js';

export type { PoolInfo } from '../../libvirt/storage-pool.js';

const poolCommands = (name: string) => [['pool-info', name, '--bytes'], ['pool-dumpxml', name]];

async function readPool(info: string, xml: string): Promise<PoolInfo> {
  const { name, uuid, ...rest } = parsePoolInfo(info);
  return { name, uuid, ...(await parsePoolXml(xml)), ...rest }; // in PoolInfo's order
}

/** Every storage pool libvirt knows, active or not; two virsh processes however many pools there are. */
export async function listPools(ctx: Context): Promise<PoolInfo[]> {
  // virsh pads each pool name to a column width here (unlike domain names).
  const names = parseNames(await ctx.virsh.run(['pool-list', '--all', '--name'])).map((n) => n.trimEnd());
  const out = await ctx.virsh.batch(names.flatMap(poolCommands));
  const pools: PoolInfo[] = [];
  for (let i = 0; i < names.length; i++) {
    const [info, xml] = [out[2 * i], out[2 * i + 1]];
    if (info && xml) pools.push(await readPool(info, xml)); // else it was undefined meanwhile
  }
  return pools;
}

export async function poolInfo(ctx: Context, name: string): Promise<PoolInfo> {
  const [infoArgs, xmlArgs] = poolCommands(name);
  const r = await ctx.virsh.runRaw(infoArgs!);
  if (r.exitCode !== 0) {
    if (/Storage pool not found/i.test(r.stderr)) throw notFound(`no storage pool named '${name}'`, '`vms pool list` shows the pools');
    throw classifyVirshError(infoArgs!, r, ctx.virsh.uri);
  }
  return readPool(r.stdout, await ctx.virsh.run(xmlArgs!));
}
