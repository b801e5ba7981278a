import type { Command } from 'commander';
import {
  addNic,
  deleteNic,
  listNics,
  parseMac,
  parseNicModel,
  parseNicSource,
  type NicChange,
  type NicInfo,
  type NicList,
} from '../../core/devices/nic.js';
import { action } from '../app.js';
import { placeNote } from '../device-view.js';
import { table } from '../format.js';

interface AddOptions {
  model: string;
  network?: string;
  bridge?: string;
  user?: boolean;
  mac: string;
}

const source = (n: NicInfo) => (n.source ? `${n.type}:${n.source}` : n.type);
const describe = (n: NicInfo) => `${source(n)}, ${n.model ?? 'default model'}, ${n.mac}`;

function renderList(list: NicList): string {
  if (list.nics.length === 0) return `${list.name} has no NICs`;
  const rows = list.nics.map((n) => [
    String(n.index),
    source(n),
    n.model ?? '-',
    n.mac,
    n.guestName ?? '-',
    placeNote(n),
  ]);
  return table(['#', 'SOURCE', 'MODEL', 'MAC', 'GUEST', ''], rows);
}

const where = (verb: string, c: NicChange) =>
  c.live ? `live and ${verb} its config` : `${verb} its config; ${c.name} is not running`;

export function register(program: Command): void {
  const nic = program
    .command('nic')
    .description('network cards: add, remove and list (plugged in live when the VM runs)');

  nic
    .command('add')
    .description('plug a NIC in: into the running VM and its config, or only the config when it is shut off')
    .argument('<name>', 'VM name')
    .option('--model <model>', 'virtio or e1000e', 'virtio')
    .option('--network <net>', "a libvirt network (default: 'default', libvirt's NAT network)")
    .option('--bridge <br>', 'a bridge on the host')
    .option('--user', "QEMU's user-mode networking: NAT without any libvirt network")
    .option('--mac <mac>', "'auto' (libvirt picks one) or a unicast MAC address", 'auto')
    .action(
      action<AddOptions>(async ({ ctx, opts }, name) => {
        const spec = { source: parseNicSource(opts), model: parseNicModel(opts.model), mac: parseMac(opts.mac) };
        const change = await addNic(ctx, name!, spec);
        return {
          data: change,
          human: (c: NicChange) => `added NIC ${c.nic.index} to ${c.name}: ${describe(c.nic)} (${where('in', c)})`,
        };
      }),
    );

  nic
    .command('del')
    .description('unplug a NIC: from the running VM (waiting for the guest to let go) and from the config')
    .argument('<name>', 'VM name')
    .argument('<nic>', 'its index in `vms nic list`, or its MAC address')
    .action(
      action(async ({ ctx }, name, which) => ({
        data: await deleteNic(ctx, name!, which!),
        human: (c: NicChange) => `removed NIC ${c.nic.index} from ${c.name}: ${describe(c.nic)} (${where('from', c)})`,
      })),
    );

  nic
    .command('list')
    .description("a VM's NICs: index, source, model, MAC, and the guest's name for it when a guest agent answers")
    .argument('<name>', 'VM name')
    .action(action(async ({ ctx }, name) => ({ data: await listNics(ctx, name!), human: renderList })));
}
