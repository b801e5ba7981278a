import { chmod, mkdir } from 'node:fs/promises';

/**
 * Makes one of vms' cache dirs, which every user of the libvirt group writes to (the ISO cache, the package cache):
 * 2775, whatever the umask, like the cache dir `vms bootstrap` makes.
 */
export async function makeSharedDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o2775).catch(() => undefined); // made by another user: theirs to set
}
