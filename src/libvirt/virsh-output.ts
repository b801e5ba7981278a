import type { DomainState } from './virsh.js';

// What virsh prints, read: pure, so each is tested on recorded output.

/** `virsh list --all --name`: one name a line (names may contain spaces), a blank line at the end. */
export const parseNames = (out: string) => out.split('\n').filter((l) => l.trim() !== '');

/** `virsh net-info NAME`. */
export interface NetInfo {
  name: string;
  uuid: string;
  active: boolean;
  persistent: boolean;
  autostart: boolean;
  bridge?: string;
}

/** "Key:   value" lines (net-info, pool-info, version), keys lower-cased. */
export function parseKeyValues(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z ]+):\s*(.*?)\s*$/.exec(line);
    if (m) values.set(m[1]!.trim().toLowerCase(), m[2]!);
  }
  return values;
}

export function parseNetInfo(text: string): NetInfo {
  const v = parseKeyValues(text);
  return {
    name: v.get('name') ?? '',
    uuid: v.get('uuid') ?? '',
    active: v.get('active') === 'yes',
    persistent: v.get('persistent') === 'yes',
    autostart: v.get('autostart') === 'yes',
    bridge: v.get('bridge') || undefined,
  };
}

/** virDomainState numbers, as `virsh domstats --state` reports them. */
const STATES = ['no state', 'running', 'idle', 'paused', 'in shutdown', 'shut off', 'crashed', 'pmsuspended'];

/** A state number of `domstats` in `virsh domstate`'s words. */
export const stateName = (n: string | undefined): DomainState => STATES[Number(n)] ?? 'unknown';

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

/** `virsh dommemstat`: "name value" lines (KiB, or counts), by name. */
export function parseMemoryStats(out: string): Map<string, number> {
  const pairs = out
    .split('\n')
    .map((l) => /^(\S+) (\d+)$/.exec(l.trim()))
    .filter((m) => m !== null);
  return new Map(pairs.map((m) => [m![1]!, Number(m![2])]));
}
