import { buildDomainXml, domainFacts, parseDomainXml } from '../../libvirt/domain-parse.js';
import type { DomainFacts, XmlNode } from '../../libvirt/domain-parse.js';
import type { DomainState, Virsh } from '../../libvirt/virsh.js';
import { VmsError } from '../../errors.js';
import { validateName } from '../../names.js';
import type { Context } from '../context.js';
import { pollUntil } from '../ops/poll.js';
import type { UndoStack } from '../ops/undo.js';

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

/** A change to a saved definition: the edited domain, or undefined when there is nothing to change. */
export type DefinitionEdit = (domain: XmlNode) => XmlNode | undefined | Promise<XmlNode | undefined>;

/**
 * Defines a VM again with its saved definition edited; false when the edit changed nothing (then nothing is defined).
 * `vm` is a name, to read the definition now (a step before may have changed it), or the VM as this operation loaded
 * it under its lock (that definition is edited). With `undo`, putting the definition back as it was is written down
 * before the define (an interrupt during it is undone too).
 */
export async function redefine(ctx: { virsh: Virsh }, vm: string | LoadedVm, edit: DefinitionEdit, undo?: UndoStack) {
  const name = typeof vm === 'string' ? vm : vm.facts.name;
  const domain = typeof vm === 'string' ? await parseDomainXml(await ctx.virsh.dumpxml(name, true)) : vm.domain;
  const edited = await edit(domain);
  if (!edited) return false;
  if (undo) await undo.add(`restore ${name}'s definition`, { kind: 'define', xml: await buildDomainXml(domain) });
  await ctx.virsh.define(await buildDomainXml(edited));
  return true;
}

/** The disks vms manages: writable file-backed disks (never cdroms or read-only images such as an ISO). */
export function ownDisks(facts: DomainFacts) {
  return facts.disks.filter((d) => d.device === 'disk' && d.path && !d.readonly);
}

export const isActive = (state: DomainState) => state !== 'shut off' && state !== 'crashed';

/** Active but running no instruction: suspended (paused), or suspended by its guest (pmsuspended). */
export const isPaused = (state: DomainState) => state === 'paused' || state === 'pmsuspended';

/**
 * A paused VM (suspended, or suspended by its guest) runs no instruction: its console does not answer and ACPI does
 * not shut it down. Refused with the reason `vm.paused`; `cannot` says what it cannot do (e.g. 'shut down').
 */
export function requireDrivable(vm: LoadedVm, cannot?: string): void {
  if (!isPaused(vm.state)) return;
  const message = `${vm.facts.name} is ${vm.state}${cannot ? ` and cannot ${cannot}` : ''}`;
  throw new VmsError('conflict', message, 'resume it first', undefined, 'vm.paused', { name: vm.facts.name });
}

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
