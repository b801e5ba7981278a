import { chmod, mkdir } from 'node:fs/promises';

/**
 * Makes one of vms' shared dirs, which every user of the libvirt group writes to (the ISO cache, the package cache,
 * the locks and journals in the state dir): 2775, whatever the umask, like the dirs `vms bootstrap` makes.
 */
export async function makeSharedDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o2775).catch(() => undefined); // made by another user: theirs to set
}
