import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { chmod, mkdtemp, open, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { notFound, usageError, VmsError } from '../../errors.js';
import { errorSummary } from '../../runner.js';
import { findProgram } from '../host/programs.js';
import type { Context } from '../context.js';
import { makeSharedDir } from '../host/shared-dir.js';

// The Arch ISO boots under vms by direct kernel boot: its kernel and initramfs are read out once per ISO (cached by
// checksum) and started with the archiso arguments that find the ISO again, plus the serial console vms drives.

/** Where archiso keeps its kernel and initramfs inside the ISO. */
export const ARCHISO_KERNEL = 'arch/boot/x86_64/vmlinuz-linux';
export const ARCHISO_INITRD = 'arch/boot/x86_64/initramfs-linux.img';

export interface IsoIdentity {
  label: string;
  /** What blkid calls the UUID of an ISO 9660 volume: its date, e.g. 2024-05-01-10-00-43-00 (archiso matches it). */
  uuid?: string;
}

const SECTOR = 2048;
const PVD_OFFSET = 16 * SECTOR;

/** ISO 9660 date "YYYYMMDDHHMMSScc" + zone byte → blkid's UUID form; undefined when it is not a date. */
function dateUuid(field: Buffer): string | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(field.toString('latin1', 0, 16));
  return m && !/^0+$/.test(m[0]) ? m.slice(1).join('-') : undefined;
}

/** libblkid takes the modification date unless it is unset (sixteen '0' digits and a zero zone byte). */
const isUnset = (field: Buffer) => field.toString('latin1', 0, 16) === '0'.repeat(16) && field[16] === 0;

/** Pure: the label and UUID from an ISO's primary volume descriptor (the 2048 bytes at sector 16). */
export function parsePrimaryVolumeDescriptor(pvd: Buffer): IsoIdentity {
  if (pvd.length < 881 || pvd[0] !== 1 || pvd.toString('latin1', 1, 6) !== 'CD001') {
    const message = 'not an ISO 9660 image (no primary volume descriptor)';
    throw new VmsError('usage', message, 'pass an ISO image', undefined, 'iso.notIso');
  }
  const label = pvd.toString('latin1', 40, 72).trimEnd();
  // archiso sets both dates alike; blkid (and so archiso's udev lookup) reads the modification date first.
  const modified = pvd.subarray(830, 847);
  const uuid = dateUuid(isUnset(modified) ? pvd.subarray(813, 830) : modified);
  return { label, uuid };
}

export async function readIsoIdentity(path: string): Promise<IsoIdentity> {
  const file = await open(path, 'r');
  try {
    const pvd = Buffer.alloc(SECTOR);
    const { bytesRead } = await file.read(pvd, 0, SECTOR, PVD_OFFSET);
    return parsePrimaryVolumeDescriptor(pvd.subarray(0, bytesRead));
  } finally {
    await file.close();
  }
}

/**
 * Checks that `path` names an ISO 9660 image vms may hand to libvirt as a cdrom, and returns its real path (no
 * symbolic links). libvirt gives a VM's cdrom to the qemu user when the VM starts and never gives it back, so a link
 * to a root-only file (/etc/shadow) would hand that file to the qemu user: only a readable file that starts like an
 * ISO is taken, and the definition names the file that was checked, not a link that could be pointed elsewhere.
 */
export async function checkIsoImage(path: string, hint: string): Promise<string> {
  const shown = resolve(path);
  let real: string;
  try {
    real = await realpath(shown);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`ISO not found: ${shown}`, hint);
    throw usageError(
      `cannot read ${shown}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      'give an ISO image you can read',
    );
  }
  const what = real === shown ? shown : `${shown} (a link to ${real})`;
  const st = await stat(real);
  if (st.isDirectory()) throw usageError(`${what} is a directory, not an ISO image`, hint);
  if (!st.isFile()) throw usageError(`${what} is not a regular file, so not an ISO image`, hint);
  try {
    await readIsoIdentity(real);
  } catch (err) {
    if (err instanceof VmsError) throw usageError(`${what} is not an ISO 9660 image`, hint);
    if ((err as NodeJS.ErrnoException).code === 'EACCES')
      throw usageError(`cannot read ${what}: permission denied`, 'vms takes only ISO images you can read');
    throw err;
  }
  return real;
}

/** Pure: the kernel arguments that let archiso's initramfs find its ISO, and put its console on the serial port. */
export function archisoCmdline(id: IsoIdentity): string {
  const find = id.uuid ? `archisosearchuuid=${id.uuid}` : `archisolabel=${id.label}`;
  return `archisobasedir=arch ${find} console=ttyS0,115200`;
}

/** The name the Arch ISO has on the mirror and in the ISO dir. */
export const ARCH_ISO = 'archlinux-x86_64.iso';

export async function sha256File(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { signal, highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The ISO's sha256, remembered per file (device, inode, size, mtime): hashing the 1.2 GB Arch ISO takes seconds, and
 * the same file is used for every create. A changed file gets a new key, so it is hashed again.
 */
async function isoChecksum(ctx: Context, iso: string): Promise<string> {
  const st = await stat(iso);
  const key = createHash('sha256')
    .update(`${resolve(iso)}\0${st.dev}\0${st.ino}\0${st.size}\0${st.mtimeMs}`)
    .digest('hex');
  const memo = join(ctx.config.cacheDir.value, 'iso', 'checksums', key);
  const known = await readFile(memo, 'utf8').catch(() => '');
  if (/^[0-9a-f]{64}$/.test(known)) return known;
  const sha256 = await sha256File(iso, ctx.signal);
  await makeSharedDir(dirname(memo));
  await writeFile(memo, sha256);
  return sha256;
}

/** Pure: how to copy the two boot files out of an ISO into a directory, with whichever tool the host has. */
export function extractCommand(tool: 'xorriso' | 'bsdtar', iso: string, dir: string): { cmd: string; args: string[] } {
  if (tool === 'xorriso') {
    const args = ['-osirrox', 'on', '-indev', iso];
    for (const f of [ARCHISO_KERNEL, ARCHISO_INITRD]) args.push('-extract', `/${f}`, join(dir, f.split('/').pop()!));
    return { cmd: 'xorriso', args };
  }
  return {
    cmd: 'bsdtar',
    args: ['-x', '-f', iso, '-C', dir, '--strip-components', '3', ARCHISO_KERNEL, ARCHISO_INITRD],
  };
}

export interface IsoBoot {
  iso: string;
  sha256: string;
  identity: IsoIdentity;
  kernel: string;
  initrd: string;
  cmdline: string;
}

/**
 * Reads the ISO's identity and its kernel + initramfs, from the cache when this ISO (by checksum) was read before.
 * The cache entry appears whole or not at all (extracted into a temporary dir, then renamed).
 */
export async function isoBootFiles(ctx: Context, iso: string): Promise<IsoBoot> {
  const identity = await readIsoIdentity(iso);
  const sha256 = await isoChecksum(ctx, iso);
  const dir = join(ctx.config.cacheDir.value, 'iso', sha256);
  const boot = {
    iso,
    sha256,
    identity,
    kernel: join(dir, 'vmlinuz-linux'),
    initrd: join(dir, 'initramfs-linux.img'),
    cmdline: archisoCmdline(identity),
  };
  const whole = () => existsSync(boot.kernel) && existsSync(boot.initrd);
  if (whole()) return boot;

  const tool = findProgram(['xorriso', 'bsdtar'], ctx.host.env.PATH) as 'xorriso' | 'bsdtar' | undefined;
  if (!tool)
    throw new VmsError(
      'missingTool',
      'neither xorriso nor bsdtar is installed: vms reads the kernel out of the ISO with one of them',
      '`vms bootstrap` installs them',
    );
  await makeSharedDir(join(ctx.config.cacheDir.value, 'iso'));
  const tmp = await mkdtemp(join(ctx.config.cacheDir.value, 'iso', '.extract-'));
  try {
    const { cmd, args } = extractCommand(tool, iso, tmp);
    const r = await ctx.runner.run(cmd, args, { signal: ctx.signal });
    const missing = ['vmlinuz-linux', 'initramfs-linux.img'].find((f) => !existsSync(join(tmp, f)));
    if (missing) {
      throw new VmsError(
        'failed',
        `${iso} has no ${missing} in arch/boot/x86_64/, where archiso keeps it`,
        'is this an Arch Linux ISO, and complete? `vms iso fetch` downloads and verifies the current one',
        `${cmd}: ${errorSummary(r)}`,
      );
    }
    if (r.exitCode !== 0) throw new VmsError('failed', `cannot read ${iso} with ${cmd}: ${errorSummary(r)}`);
    await writeFile(join(tmp, 'identity.json'), JSON.stringify({ iso, ...identity }) + '\n');
    // mkdtemp makes 0700, and the ISO's modes come along: QEMU (its own user) must read the kernel.
    for (const f of ['vmlinuz-linux', 'initramfs-linux.img', 'identity.json']) await chmod(join(tmp, f), 0o644);
    await chmod(tmp, 0o755);
    await rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
      // Another create may have put the same entry there meanwhile: theirs is as good (same ISO), keep it.
      if (whole()) return;
      // An entry appears whole (renamed into place), so one with a file missing was damaged since and would never
      // heal: it is moved aside and this one takes its place. A whole entry is never removed (another create may
      // be about to boot from it).
      const aside = await mkdtemp(join(ctx.config.cacheDir.value, 'iso', '.damaged-'));
      try {
        await rename(dir, join(aside, 'entry'));
        await rename(tmp, dir);
      } finally {
        await rm(aside, { recursive: true, force: true });
      }
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return boot;
}
