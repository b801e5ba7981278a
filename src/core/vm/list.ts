import type { PendingStep } from '../../libvirt/metadata.js';
import { parseDomainXml, readMetadata } from '../../libvirt/domain-parse.js';
import type { DomainState } from '../../libvirt/virsh.js';
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

// virDomainState numbers, as `virsh domstats --state` reports them.
const STATES = ['no state', 'running', 'idle', 'paused', 'in shutdown', 'shut off', 'crashed', 'pmsuspended'];

/** Parses `virsh domstats --raw`: "Domain: 'name'" headers, each followed by "  key=value" lines. */
export function parseDomstats(out: string): Map<string, Record<string, string>> {
  const domains = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  for (const line of out.split('\n')) {
    const header = /^Domain: '(.*)'$/.exec(line);
    if (header) domains.set(header[1]!, (current = {}));
    else if (current && /^\s+\S+=/.test(line)) {
      const i = line.indexOf('=');
      current[line.slice(0, i).trim()] = line.slice(i + 1);
    }
  }
  return domains;
}

/**
 * Two virsh processes whatever the number of VMs: `domstats` gives every domain's state, memory, vCPUs and disk
 * size; one batch reads each domain's vms metadata (only that element, so there is little XML to parse).
 */
export async function listVms(ctx: Context): Promise<VmSummary[]> {
  const stats = parseDomstats(await ctx.virsh.run(['domstats', '--raw', '--state', '--balloon', '--vcpu', '--block']));
  const names = [...stats.keys()];
  // --inactive: vms writes its metadata into the saved definition; a running domain's live copy is as old as its start.
  const metadata = await ctx.virsh.batch(names.map((n) => ['dumpxml', n, '--inactive', '--xpath', '/domain/metadata/*']));
  const vms: VmSummary[] = [];
  for (const [i, name] of names.entries()) {
    const s = stats.get(name)!;
    const md = readMetadata(await parseDomainXml(`<domain><metadata>${metadata[i] ?? ''}</metadata></domain>`));
    vms.push({
      name,
      state: STATES[Number(s['state.state'])] ?? 'unknown',
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
