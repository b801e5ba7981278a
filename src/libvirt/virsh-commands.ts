// virsh command lines, spelled once: for Virsh's methods, the batches the core puts together, and bootstrap's plan.

/**
 * virsh command lines (what follows `virsh -c URI`) that are also run in a batch (Virsh.batch): one spelling for
 * Virsh's own methods and for the batches the core puts together.
 */
export const virshCommand = {
  /** inactive: the saved definition; securityInfo: with passwords; xpath: only the nodes it selects. */
  dumpxml: (name: string, o: { inactive?: boolean; securityInfo?: boolean; xpath?: string } = {}) => [
    'dumpxml',
    name,
    ...(o.inactive ? ['--inactive'] : []),
    ...(o.securityInfo ? ['--security-info'] : []),
    ...(o.xpath === undefined ? [] : ['--xpath', o.xpath]),
  ],
  /** The snapshot names, one a line (prints nothing both for none and on failure). */
  snapshotNames: (vm: string) => ['snapshot-list', vm, '--name'],
  /** The snapshot table: a header even when there are none. */
  snapshotTable: (vm: string) => ['snapshot-list', vm],
  snapshotCurrent: (vm: string) => ['snapshot-current', vm, '--name'],
  snapshotDumpxml: (vm: string, snapshot: string) => ['snapshot-dumpxml', vm, snapshot],
  poolInfo: (name: string) => ['pool-info', name, '--bytes'],
  poolDumpxml: (name: string) => ['pool-dumpxml', name],
};

/** The system libvirt: the one `vms bootstrap` sets up, whatever LIBVIRT_DEFAULT_URI says. */
export const SYSTEM_URI = 'qemu:///system';

/** A whole virsh command line on the system libvirt, for a plan that shows it and runs it (maybe under sudo). */
export const systemVirshLine = (...args: string[]) => ['virsh', '-c', SYSTEM_URI, ...args];

/** The system libvirt's 'default' network, as command lines of a bootstrap plan. */
export const defaultNetworkLines = {
  define: (xmlFile: string) => systemVirshLine('net-define', xmlFile),
  autostart: () => systemVirshLine('net-autostart', 'default'),
  start: () => systemVirshLine('net-start', 'default'),
};

/**
 * For a plan's net-define or net-start line (perhaps behind sudo): what it would make so, and the `net-info` line,
 * run the same way, that finds out whether that is so already. Undefined for any other line.
 */
export function networkLineCheck(line: readonly string[]): { makes: 'defined' | 'active'; info: string[] } | undefined {
  const at = line.findIndex((a) => a === 'net-define' || a === 'net-start');
  if (at < 0 || !line.slice(0, at).includes('virsh')) return undefined;
  const makes = line[at] === 'net-define' ? 'defined' : 'active';
  return { makes, info: [...line.slice(0, at), 'net-info', 'default'] };
}
