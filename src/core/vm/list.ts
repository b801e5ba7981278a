import type { PendingStep } from '../../libvirt/metadata.js';
import { parseDomainXml, readMetadata } from '../../libvirt/domain-parse.js';
import { virshCommand, type DomainState } from '../../libvirt/virsh.js';
import { stateName } from '../../libvirt/virsh-output.js';
import type { Context } from '../context.js';

export interface VmSummary {
  name: string;
  state: DomainState;
  profile?: string;
  memory: number; // bytes
  cpus: number;
  disk?: number; // virtual size of the first disk, bytes
  createdFrom?: string; // the VM it was cloned from, or the ISO it was installed from
  pending?: PendingStep; // an unfinished `vms create`
}

/**
 * Two virsh processes whatever the number of VMs: `domstats` gives every domain's state, memory, vCPUs and disk
 * size; one batch reads each domain's vms metadata (only that element, so there is little XML to parse).
 */
export async function listVms(ctx: Context): Promise<VmSummary[]> {
  const stats = await ctx.virsh.domainStats();
  const names = [...stats.keys()];
  // --inactive: vms writes its metadata into the saved definition; a running domain's live copy is as old as its start.
  const vmsMetadata = (n: string) => virshCommand.dumpxml(n, { inactive: true, xpath: '/domain/metadata/*' });
  const metadata = await ctx.virsh.batch(names.map(vmsMetadata));
  const vms: VmSummary[] = [];
  for (const [i, name] of names.entries()) {
    const s = stats.get(name)!;
    const md = readMetadata(await parseDomainXml(`<domain><metadata>${metadata[i] ?? ''}</metadata></domain>`));
    vms.push({
      name,
      state: stateName(s['state.state']),
      profile: md.profile,
      memory: Number(s['balloon.maximum'] ?? 0) * 1024,
      cpus: Number(s['vcpu.current'] ?? s['vcpu.maximum'] ?? 0),
      disk: s['block.0.capacity'] === undefined ? undefined : Number(s['block.0.capacity']),
      createdFrom: md.createdFrom,
      pending: md.pending,
    });
  }
  return vms.sort((a, b) => a.name.localeCompare(b.name));
}
