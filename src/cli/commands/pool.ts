import type { Command } from 'commander';
import { listPools, poolInfo, type PoolInfo } from '../../core/storage/pool.js';
import { action } from '../app.js';
import { fields, size, table } from '../format.js';
import { shellQuote as q } from '../../quote.js';

const yesNo = (b: boolean) => (b ? 'yes' : 'no');

/** "252G (270553174016 bytes)": the human size and the exact one. */
const sizeAndBytes = (bytes: number | undefined) =>
  bytes === undefined ? undefined : `${size(bytes)} (${bytes} bytes)`;

function renderList(pools: PoolInfo[]): string {
  if (pools.length === 0) return 'no storage pools (vms keeps its disks in its images dir and needs none)';
  const rows = pools.map((p) => [
    p.name,
    p.state,
    yesNo(p.autostart),
    p.type ?? '-',
    size(p.capacity),
    size(p.allocation),
    size(p.free),
    p.path ?? '-',
  ]);
  return table(['NAME', 'STATE', 'AUTOSTART', 'TYPE', 'CAPACITY', 'ALLOCATION', 'FREE', 'PATH'], rows);
}

function renderInfo(p: PoolInfo): string {
  const info = fields([
    ['name', p.name],
    ['uuid', p.uuid],
    ['state', p.state],
    ['type', p.type],
    ['path', p.path],
    ['autostart', yesNo(p.autostart)],
    ['persistent', yesNo(p.persistent)],
    ['capacity', sizeAndBytes(p.capacity)],
    ['allocation', sizeAndBytes(p.allocation)],
    ['free', sizeAndBytes(p.free)],
  ]);
  return p.capacity === undefined
    ? `${info}\n\nlibvirt knows a pool's sizes only while it runs: \`virsh pool-start ${q(p.name)}\``
    : info;
}

export function register(program: Command): void {
  const pool = program.command('pool').description('libvirt storage pools: where they are and how full');
  pool
    .command('list')
    .alias('ls')
    .description('every storage pool: state, autostart, type, capacity, allocation, free space, path')
    .action(action(async ({ ctx }) => ({ data: await listPools(ctx), human: renderList })));
  pool
    .command('info')
    .description(
      'one storage pool: capacity, allocation and free space (in bytes and human units), path, state, autostart',
    )
    .argument('<name>', 'pool name')
    .action(action(async ({ ctx }, name) => ({ data: await poolInfo(ctx, name!), human: renderInfo })));
}
