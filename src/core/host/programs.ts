import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

// Where the host's programs are: found on PATH, or where distributions install helpers that are not on it.

/** The first of names found as an executable on `path` (the caller's PATH: ctx.host.env.PATH). */
export function findProgram(names: string[], path: string | undefined): string | undefined {
  for (const name of names) {
    for (const dir of (path ?? '').split(delimiter).filter(Boolean)) {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return name;
      } catch {
        // not in this directory
      }
    }
  }
  return undefined;
}

/** virtiofsd where distributions put it under `root` (libvirt finds it through QEMU's vhost-user descriptions). */
export function findVirtiofsd(path: string | undefined, root = '/'): string | undefined {
  const known = ['usr/lib/virtiofsd', 'usr/libexec/virtiofsd', 'usr/lib/qemu/virtiofsd'].map((p) => join(root, p));
  return known.find((p) => existsSync(p)) ?? findProgram(['virtiofsd'], path);
}
