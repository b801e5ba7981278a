import { hasReason, notFound } from '../../errors.js';
import { readPool, type PoolInfo } from '../../libvirt/storage-pool.js';
import { virshCommand } from '../../libvirt/virsh.js';
import type { Context } from '../context.js';

export type { PoolInfo } from '../../libvirt/storage-pool.js';

const poolCommands = (name: string) => [virshCommand.poolInfo(name), virshCommand.poolDumpxml(name)];

/** Every storage pool libvirt knows, active or not; two virsh processes however many pools there are. */
export async function listPools(ctx: Context): Promise<PoolInfo[]> {
  const names = await ctx.virsh.poolNames();
  const out = await ctx.virsh.batch(names.flatMap(poolCommands));
  const pools: PoolInfo[] = [];
  for (let i = 0; i < names.length; i++) {
    const [info, xml] = [out[2 * i], out[2 * i + 1]];
    if (info && xml) pools.push(await readPool(info, xml)); // else it was undefined meanwhile
  }
  return pools;
}

export async function poolInfo(ctx: Context, name: string): Promise<PoolInfo> {
  try {
    return await ctx.virsh.pool(name);
  } catch (err) {
    if (!hasReason(err, 'pool.notFound')) throw err;
    throw notFound(`no storage pool named '${name}'`, '`vms pool list` shows the pools');
  }
}
