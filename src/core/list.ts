import { domainFacts, parseDomainXml } from '../libvirt/domain-parse.js';
import type { DomainState } from '../libvirt/virsh.js';
import type { Context } from './context.js';
import { ownDisks } from './vm.js';

export interface VmSummary {
  name: string;
  state: DomainState;
  profile?: string;
  memory: number; // bytes
  cpus: number;
  disk?: number; // virtual size of the first disk, bytes
  createdFrom?: string; // set on clones
}

/** `Capacity` of one disk from `virsh domblkinfo NAME --all` ("Target Capacity Allocation Physical" table). */
export function capacityFromBlkinfo(table: string | undefined, target: string): number | undefined {
  const row = table?.split('\n').find((l) => l.trim().split(/\s+/)[0] === target);
  const n = Number(row?.trim().split(/\s+/)[1]);
  return Number.isFinite(n) ? n : undefined;
}

/** Two virsh processes whatever the number of VMs: one lists, one batch reads every definition and disk size. */
export async function listVms(ctx: Context): Promise<VmSummary[]> {
  const listed = await ctx.virsh.list();
  const outputs = await ctx.virsh.batch(listed.flatMap((d) => [['dumpxml', d.name], ['domblkinfo', d.name, '--all']]));
  const vms: VmSummary[] = [];
  for (const [i, d] of listed.entries()) {
    const xml = outputs[2 * i];
    if (!xml) continue; // undefined between the two calls
    const facts = domainFacts(await parseDomainXml(xml));
    const disk = ownDisks(facts)[0];
    vms.push({
      name: d.name,
      state: d.state,
      profile: facts.metadata.profile,
      memory: facts.memoryBytes,
      cpus: facts.cpus,
      disk: disk ? capacityFromBlkinfo(outputs[2 * i + 1], disk.target) : undefined,
      createdFrom: facts.metadata.createdFrom,
    });
  }
  return vms.sort((a, b) => a.name.localeCompare(b.name));
}
