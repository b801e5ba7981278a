import { liveDomain, placeDevices, type Placed } from '../../libvirt/device-xml.js';
import type { XmlNode } from '../../libvirt/domain-parse.js';
import type { Context } from '../context.js';
import { isActive, loadVm, type LoadedVm } from '../vm/vm.js';

// The device commands (disk, nic, serial) look at a VM's devices of one kind in two places: its saved definition
// (what the next start uses) and, while it runs, the running VM, where devices may have been plugged in or out since.

export interface VmDevices<T> {
  vm: LoadedVm;
  active: boolean;
  /** The devices in the saved definition, in their order. */
  saved: T[];
  /** The devices in the running VM; undefined when it is shut off. */
  live?: T[];
  /** The running VM's own definition; undefined when it is shut off. */
  liveDomain?: XmlNode;
  /** Both matched by `key`: the saved ones in their order, then those only the running VM has. */
  placed: Placed<T>[];
}

/** Loads a VM with its devices of one kind (`read` finds them in a definition), saved and running. */
export async function loadVmDevices<T>(
  ctx: Context,
  name: string,
  read: (domain: XmlNode) => T[],
  key: (d: T) => string,
): Promise<VmDevices<T>> {
  const vm = await loadVm(ctx, name);
  const active = isActive(vm.state);
  const domain = await liveDomain(ctx.virsh, name, active);
  const saved = read(vm.domain);
  const live = domain && read(domain);
  return { vm, active, saved, live, liveDomain: domain, placed: placeDevices(saved, live, key) };
}
