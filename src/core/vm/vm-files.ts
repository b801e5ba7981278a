import { existsSync, statSync } from 'node:fs';
import { mkdir, open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { conflict, notFound, VmsError } from '../../errors.js';
import type { Config } from '../../config.js';
import type { Context } from '../context.js';
import type { UndoStack } from '../ops/undo.js';

/** Where a VM's own files live: its directory under the state dir, its disks in the images dir. */
export interface VmFiles {
  dir: string;
  serialSocket: string;
  serialLog: string;
  nvram: string;
  password: string; // the generated root (and user) password, 0600
  settings: string; // the guest's settings.sh, 0600 (for --resume and apply)
  installLog: string; // console transcripts of create and apply
  applyLog: string;
  eventLogs: string; // a directory: one NDJSON log of events per operation on the VM (src/core/ops/operation-log.ts)
}

/** Every file vms itself may put in a VM's directory (destroy removes these and nothing else). */
export const ownFiles = (f: VmFiles) => [
  f.serialSocket,
  f.serialLog,
  f.nvram,
  f.password,
  f.settings,
  f.installLog,
  f.applyLog,
];

export function vmFiles(config: Config, name: string): VmFiles {
  const dir = join(config.stateDir.value, name);
  return {
    dir,
    serialSocket: join(dir, 'serial.sock'),
    serialLog: join(dir, 'serial.log'),
    nvram: join(dir, 'nvram.fd'),
    password: join(dir, 'root-password'),
    settings: join(dir, 'settings.sh'),
    installLog: join(dir, 'install.log'),
    applyLog: join(dir, 'apply.log'),
    eventLogs: join(dir, 'events'),
  };
}

/**
 * Who owns the files and sockets libvirt makes for a VM's serial ports (the console's socket, a file port), as a
 * libvirt DAC label: the user running vms, with the state dir's group (libvirt, which `vms bootstrap` gives it). Left
 * to libvirt they belong to the qemu user (the socket 0775, a file 0600), and a user who reaches libvirt through its
 * group can neither connect nor read: EACCES (measured on libvirt 9.0).
 */
export function chardevOwner({ config, host }: Pick<Context, 'config' | 'host'>): string {
  let gid = host.gid;
  try {
    gid = statSync(config.stateDir.value).gid;
  } catch {
    // no state dir yet (--print-xml on a fresh host): the user's own group
  }
  return `+${host.uid}:+${gid}`;
}

/** The writable package cache an install downloads into (moved to the shared cache when the install is done). */
export const vmPackageCache = (config: Config, name: string) => join(config.cacheDir.value, 'pkg-vm', name);

const diskName = (imagesDir: string, stem: string, i: number) =>
  join(imagesDir, i === 1 ? `${stem}.qcow2` : `${stem}-${i}.qcow2`);

/**
 * A disk path in the images dir that no file uses yet: `<stem>.qcow2`, else `<stem>-2.qcow2` … (a frozen base keeps
 * its old name, so a later VM of the same name must not collide with it). Only for showing (--print-xml): a disk
 * that will really be written is claimed with claimDiskPath.
 */
export function freeDiskPath(imagesDir: string, stem: string): string {
  for (let i = 1; ; i++) if (!existsSync(diskName(imagesDir, stem, i))) return diskName(imagesDir, stem, i);
}

/**
 * Claims a free disk path by creating it exclusively (O_EXCL), so two disks chosen in one command, or by two commands
 * at once, can never be the same file: qemu-img create would silently overwrite it. Its removal is registered at once,
 * so a half-written disk is removed too.
 */
export async function claimDiskPath(imagesDir: string, stem: string, undo: UndoStack): Promise<string> {
  for (let i = 1; ; i++) {
    const path = diskName(imagesDir, stem, i);
    // Two seconds of slack: a file's ctime comes from the kernel's coarse clock, which may lag Date.now() a little.
    await undo.add(`remove ${path} if still empty`, { kind: 'remove-claim', path, since: Date.now() - 2000 });
    try {
      await (await open(path, 'wx', 0o644)).close();
    } catch (err) {
      await undo.drop();
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue;
      if (code === 'ENOENT')
        throw notFound(`images directory ${imagesDir} does not exist`, 'run `vms bootstrap`, or set VMS_IMAGES_DIR');
      throw new VmsError(
        'failed',
        `cannot create a disk in ${imagesDir}: ${code ?? (err as Error).message}`,
        'check that you may write there (`vms bootstrap` sets it up), or set VMS_IMAGES_DIR',
      );
    }
    await undo.add(`remove ${path}`, { kind: 'remove-file', path });
    return path;
  }
}

/**
 * Creates the VM's directory. libvirtd itself creates the serial socket and virtlogd the transcript, so a plain
 * 0755 directory works whoever the qemu process runs as (measured on libvirt 9.0).
 */
export async function makeVmDir(files: VmFiles, undo: UndoStack): Promise<void> {
  if (existsSync(files.dir) && (await readdir(files.dir)).length > 0) {
    throw conflict(
      `${files.dir} already exists and is not empty`,
      'a VM of that name was not removed cleanly: move the directory away',
    );
  }
  await undo.add(`remove ${files.dir}`, { kind: 'remove-dir', path: files.dir });
  await mkdir(files.dir, { recursive: true, mode: 0o755 });
}

/** The events of operation `operationId` on the VM, in its eventLogs directory. */
export const eventLog = (files: VmFiles, operationId: string) => join(files.eventLogs, `${operationId}.ndjson`);

/** The generated root password and the guest's settings, kept by `vms create` for --resume and `vms apply`. */
export async function readVmSecrets(files: VmFiles, name: string): Promise<{ password: string; settings: string }> {
  try {
    return {
      password: (await readFile(files.password, 'utf8')).trim(),
      settings: await readFile(files.settings, 'utf8'),
    };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EACCES') {
      throw new VmsError(
        'failed',
        `cannot read ${name}'s root password in ${files.dir}: permission denied`,
        'run vms as the user who created the VM, or with sudo',
      );
    }
    throw notFound(
      `${name} has no root password or settings in ${files.dir}`,
      "only VMs that `vms create` installed have them (a clone logs in with its source VM's password)",
    );
  }
}
