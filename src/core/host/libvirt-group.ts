/** The group that may use libvirt's system daemon and vms' shared directories (`vms bootstrap` adds the user). */
export const LIBVIRT_GROUP = 'libvirt';

/** The libvirt group's gid and members, from /etc/group (undefined before libvirt is installed). */
export function libvirtGroup(groupFile: string): { gid: number; members: string[] } | undefined {
  const line = groupFile.split('\n').find((l) => l.startsWith(`${LIBVIRT_GROUP}:`));
  if (!line) return undefined;
  const [, , gid, members] = line.split(':');
  return { gid: Number(gid), members: (members ?? '').split(',').filter(Boolean) };
}
