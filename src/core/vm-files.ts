import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { conflict } from '../errors.js';
import type { Config } from '../config.js';
import type { UndoStack } from './undo.js';

/** Where a VM's own files live: its directory under the state dir, its disks in the images dir. */
export interface VmFiles {
  dir: string;
  serialSocket: string;
  serialLog: string;
  nvram: string;
}

export function vmFiles(config: Config, name: string): VmFiles {
  const dir = join(config.stateDir.value, name);
  return { dir, serialSocket: join(dir, 'serial.sock'), serialLog: join(dir, 'serial.log'), nvram: join(dir, 'nvram.fd') };
}

/**
 * A disk path in the images dir that no file uses yet: `<stem>.qcow2`, else `<stem>-2.qcow2` … A frozen base keeps
 * its old name, so a later VM of the same name must not collide with it.
 */
export function freeDiskPath(imagesDir: string, stem: string): string {
  for (let i = 1; ; i++) {
    const path = join(imagesDir, i === 1 ? `${stem}.qcow2` : `${stem}-${i}.qcow2`);
    if (!existsSync(path)) return path;
  }
}

/**
 * Creates the VM's directory. libvirtd itself creates the serial socket and virtlogd the transcript, so a plain
 * 0755 directory works whoever the qemu process runs as (measured on libvirt 9.0).
 */
export async function makeVmDir(files: VmFiles, undo: UndoStack): Promise<void> {
  if (existsSync(files.dir) && (await readdir(files.dir)).length > 0) {
    throw conflict(`${files.dir} already exists and is not empty`, 'a VM of that name was not removed cleanly: move the directory away');
  }
  await mkdir(files.dir, { recursive: true, mode: 0o755 });
  undo.push(`remove ${files.dir}`, () => rm(files.dir, { recursive: true, force: true }));
}
