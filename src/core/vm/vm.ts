import { domainFacts, parseDomainXml, type DomainFacts, type XmlNode } from '../../libvirt/domain-parse.js';
import type { DomainState, Virsh } from '../../libvirt/virsh.js';
import { validateName } from '../../names.js';
import type { Context } from '../context.js';
import { pollUntil } from '../ops/poll.js';

export interface LoadedVm {
  facts: DomainFacts;
  state: DomainState;
  /** The persistent definition (what the next start uses), parsed for editing. */
  domain: XmlNode;
}

/** Loads a VM's persistent definition and state; a clear "no VM named" error when it does not exist. */
export async function loadVm(ctx: Context, name: string): Promise<LoadedVm> {
  validateName(name);
  const [xml, state] = [await ctx.virsh.dumpxml(name, true), await ctx.virsh.state(name)];
  const domain = await parseDomainXml(xml);
  return { facts: domainFacts(domain), state, domain };
}

/** The disks vms manages: writable file-backed disks (never cdroms or read-only images such as an ISO). */
export function ownDisks(facts: DomainFacts) {
  return facts.disks.filter((d) => d.device === 'disk' && d.path && !d.readonly);
}

export const isActive = (state: DomainState) => state !== 'shut off' && state !== 'crashed';

/** Waits until the VM is off (the guest powered down); false when it still runs after `timeoutMs`. */
export const waitUntilOff = (ctx: Context, name: string, timeoutMs: number): Promise<boolean> =>
  pollUntil(async () => !isActive(await ctx.virsh.state(name)), { timeoutMs, signal: ctx.signal });

// Clean-up actions registered BEFORE the step they undo, so an interrupt in the middle of the step (the process
// killed, libvirtd finishing anyway) is undone too. Each is safe whether or not the step got to finish.

export const undefineIfDefined = (virsh: Virsh, name: string) => async () => {
  if (await virsh.exists(name)) await virsh.undefine(name);
};

export const powerOffIfRunning = (virsh: Virsh, name: string) => async () => {
  if ((await virsh.exists(name)) && isActive(await virsh.state(name))) await virsh.destroy(name);
};
