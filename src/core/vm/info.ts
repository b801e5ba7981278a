import type { PendingStep } from '../../libvirt/metadata.js';
import type { Firmware } from '../../libvirt/domain-xml.js';
import type { DomainState } from '../../libvirt/virsh.js';
import type { Context } from '../context.js';
import { isActive, loadVm } from './vm.js';

export interface DiskInfo {
  target: string;
  device: string;
  path?: string;
  capacity?: number; // bytes (virtual size)
  allocation?: number; // bytes used on the host
  backing?: string;
}

export interface VmInfo {
  name: string;
  uuid: string;
  state: DomainState;
  profile?: string;
  created?: string;
  createdFrom?: string;
  /** Set while a `vms create` is unfinished: the step `--resume` goes on with. */
  pending?: PendingStep;
  bases: string[];
  notes?: string;
  memory: number; // bytes
  cpus: number;
  firmware: Firmware;
  nvram?: string;
  disks: DiskInfo[];
  networks: string[];
  serialSocket?: string;
  serialLog?: string;
  graphics?: string;
  display?: string; // spice://… while running
}

export async function vmInfo(ctx: Context, name: string): Promise<VmInfo> {
  const { facts, state } = await loadVm(ctx, name);
  const disks: DiskInfo[] = [];
  for (const d of facts.disks) {
    const disk: DiskInfo = { target: d.target, device: d.device, path: d.path };
    if (d.path && d.device === 'disk') {
      const info = await ctx.qemuImg.info(d.path).catch(() => undefined);
      disk.capacity = info?.['virtual-size'];
      disk.allocation = info?.['actual-size'];
      disk.backing = info?.['full-backing-filename'] ?? info?.['backing-filename'];
    }
    disks.push(disk);
  }
  const display =
    isActive(state) && facts.graphics ? await ctx.virsh.domdisplay(name).catch(() => undefined) : undefined;
  return {
    name: facts.name,
    uuid: facts.uuid,
    state,
    profile: facts.metadata.profile,
    created: facts.metadata.created,
    createdFrom: facts.metadata.createdFrom,
    pending: facts.metadata.pending,
    bases: facts.metadata.bases,
    notes: facts.metadata.notes,
    memory: facts.memoryBytes,
    cpus: facts.cpus,
    firmware: facts.firmware,
    nvram: facts.nvramPath,
    disks,
    networks: facts.networks,
    serialSocket: facts.serialSocket,
    serialLog: facts.serialLog,
    graphics: facts.graphics,
    display: display || undefined,
  };
}
