import { readFile, realpath, stat } from 'node:fs/promises';
import { posix, resolve } from 'node:path';
import type { SerialSession } from '../../console/serial.js';
import { conflict, hasReason, notFound, usageError, VmsError } from '../../errors.js';
import { shellQuote as q } from '../../quote.js';
import { changeDevice, liveDomain } from '../../libvirt/device-xml.js';
import { withMetadata } from '../../libvirt/domain-edit.js';
import { parseDomainXml, readMetadata, type XmlNode } from '../../libvirt/domain-parse.js';
import {
  filesystemXml,
  findShare,
  hasSharedMemory,
  shareTag,
  withShare,
  withSharedMemory,
  withoutShare,
  type FsShare,
} from '../../libvirt/fs-xml.js';
import { callerPath, type Context } from '../context.js';
import { findVirtiofsd } from '../host/programs.js';
import { loginAsRoot, openTranscript, powerOffFromGuest, type Transcript } from '../guest/guest-session.js';
import { withUndo, type UndoStack } from '../ops/undo.js';
import { isActive, loadVm, powerOffIfRunning, redefine, requireDrivable, type LoadedVm } from '../vm/vm.js';
import { vmFiles } from '../vm/vm-files.js';
import { undoOptions, withOperation } from '../ops/operation.js';

// `vms mount` / `vms umount`: a host directory shared into a VM over virtiofs. libvirt plugs the share in (live and in
// the definition); vms mounts it in the guest over the serial console as root and keeps it in the guest's /etc/fstab.

export interface MountOptions {
  name: string;
  hostDir: string;
  guestDir: string;
  readonly: boolean;
  /** Live only: no definition change and no fstab line, gone when the VM stops. */
  temp: boolean;
  /** Mount over a GUESTDIR that has files (they are hidden until the share is unmounted). */
  force: boolean;
  /** Restart a running VM when it needs it for the share (shared memory can be added only while it is off). */
  restart: boolean;
  /** Share a system directory (/, /etc, /usr …) all the same. */
  allowSystemDir?: boolean;
}

export interface MountResult {
  name: string;
  hostDir: string;
  guestDir: string;
  tag: string;
  /** Asked for now, or kept in the definition by an earlier `vms mount --readonly` of this share. */
  readonly: boolean;
  /** False when --readonly is only the guest's mount option: libvirt 9.0 cannot make a virtiofs share read-only. */
  readonlyOnHost: boolean;
  /** In the saved definition (there again after a restart). */
  persistent: boolean;
  /** Mounted in the guest now; false for a shut-off VM (only its definition changed). */
  mounted: boolean;
  /** The guest's /etc/fstab mounts it at boot. */
  fstab: boolean;
  /** The VM was restarted to get shared memory (--restart). */
  restarted: boolean;
}

export interface UnmountResult {
  name: string;
  guestDir: string;
  tag: string;
  /** It was unmounted in the guest and its fstab line removed; false for a shut-off VM (only its definition changed). */
  guest: boolean;
}

const FSTAB_NEW = '/etc/fstab.vms-new';
/**
 * attach-device/detach-device change only the running VM; the definition is changed with `virsh define`, which adds
 * the shared memory in the same step and, unlike an --config attach, is not checked against the running VM.
 */
const LIVE = { live: true, config: false };

/** A guest path, normalized; only characters that need no quoting in /etc/fstab and in the shell commands below. */
export function checkGuestDir(dir: string): string {
  if (!dir.startsWith('/'))
    throw usageError(
      `GUESTDIR '${dir}' is not an absolute path`,
      'give the directory in the guest from /, e.g. /mnt/share',
    );
  const normal = posix.normalize(dir).replace(/\/+$/, '');
  if (normal === '')
    throw usageError("cannot mount over the guest's root directory", 'pick a directory below /, e.g. /mnt/share');
  if (!/^(\/[\w.+@,:-]+)+$/.test(normal)) {
    throw usageError(
      `GUESTDIR '${dir}' has characters vms does not write into the guest's /etc/fstab`,
      'use letters, digits and . _ - + @ , : (no spaces or quotes)',
    );
  }
  return normal;
}

/** The host directory as an absolute path with no symbolic links (how libvirt shows it back). */
export async function resolveHostDir(dir: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(resolve(dir));
  } catch {
    throw notFound(`host directory ${resolve(dir)} does not exist`, 'create it first, or give an existing directory');
  }
  if (!(await stat(real)).isDirectory()) throw usageError(`${real} is not a directory`, 'vms mount shares a directory');
  return real;
}

/** Trees that are the system itself: its configuration, boot files, programs and libraries, root's home, the kernel's views. */
const SYSTEM_TREES = /^\/(etc|boot|root|proc|sys|dev|bin|sbin|lib[^/]*|usr\/(bin|sbin|lib[^/]*))(\/|$)/;
/** Directories that hold the system or every user's files as a whole; some of their subdirectories are fine (/var/www, /run/media/USER, /home/USER). */
const SYSTEM_PARENTS = new Set(['/', '/usr', '/var', '/run', '/home']);

/** Pure: a host directory (absolute, no symbolic links) that is part of the system. */
export const isSystemDir = (real: string) => SYSTEM_PARENTS.has(real) || SYSTEM_TREES.test(real);

/**
 * virtiofsd runs as root and serves the guest with root's rights on the host (and libvirt 9.0 cannot make it
 * read-only), so sharing a system directory hands the guest the host: refused unless asked for by name.
 */
export function refuseSystemDir(given: string, real: string, allow: boolean): void {
  if (allow || !isSystemDir(real)) return;
  const what = resolve(given) === real ? real : `${resolve(given)} is ${real}, which`;
  throw new VmsError(
    'usage',
    `${what} is a system directory: virtiofsd runs as root, so the guest would get it with root's rights on the host`,
    'share a directory of your own (your home or one below it is fine), or allow a system directory if you mean it',
    undefined,
    'mount.systemDir',
  );
}

export function requireVirtiofsd(find: () => string | undefined): void {
  if (find()) return;
  throw new VmsError(
    'missingTool',
    'virtiofsd is not installed: shared folders need it',
    'install it: pacman -S virtiofsd (Arch), apt install virtiofsd (Debian 13; QEMU brings it on Debian 12), dnf install virtiofsd (Fedora)',
  );
}

// The shell commands run in the guest (busybox or bash). Tags and paths are checked above to need no quoting.

const mountedTest = (tag: string, dir: string) => `grep -qs '^${tag} ${dir} virtiofs ' /proc/mounts`;

/** Prints one word: mounted (this share is there already), notdir, nonempty or empty (also: not there yet). */
export const guestDirStateCommand = (tag: string, dir: string) =>
  `if ${mountedTest(tag, dir)}; then echo mounted; elif [ -e ${dir} ] && [ ! -d ${dir} ]; then echo notdir; ` +
  `elif [ -n "$(ls -A ${dir} 2>/dev/null)" ]; then echo nonempty; else echo empty; fi`;

export const mountCommand = (tag: string, dir: string, readonly: boolean) =>
  `${mountedTest(tag, dir)} || { mkdir -p ${dir} && mount -t virtiofs${readonly ? ' -o ro' : ''} ${tag} ${dir}; }`;

export const unmountCommand = (tag: string, dir: string) => `! ${mountedTest(tag, dir)} || umount ${dir}`;

export const fstabLine = (tag: string, dir: string, readonly: boolean) =>
  `${tag} ${dir} virtiofs defaults${readonly ? ',ro' : ''},nofail 0 0`;

/**
 * Rewrites /etc/fstab without the tag's line, plus `line` when given, so running it twice changes nothing. `cat >`
 * keeps the file's owner and mode; a guest booted with systemd is told, or it warns that fstab changed.
 */
export const fstabCommand = (tag: string, line?: string) =>
  `touch /etc/fstab && { grep -v '^${tag}[[:space:]]' /etc/fstab; ${line ? `echo '${line}'; ` : ''}true; } > ${FSTAB_NEW} && ` +
  `cat ${FSTAB_NEW} > /etc/fstab && rm -f ${FSTAB_NEW} && { [ ! -d /run/systemd/system ] || systemctl daemon-reload; }`;

/** Runs a libvirt change with the share; when libvirt cannot make virtiofs read-only, again without <readonly/>. */
async function withReadonlyFallback(share: FsShare, change: (s: FsShare) => Promise<void>): Promise<FsShare> {
  try {
    await change(share);
    return share;
  } catch (err) {
    // libvirt 9.0: "virtiofs does not yet support read-only mode".
    if (!share.readonly || !hasReason(err, 'virtiofs.readonlyUnsupported')) throw err;
    const relaxed = { ...share, readonly: false };
    await change(relaxed);
    return relaxed;
  }
}

/** Clean-up: takes the share out of the running VM if it is in (the attach it undoes may not have happened). */
const unplugIfPlugged = (ctx: Context, name: string, tag: string) => async () => {
  const virsh = ctx.virsh.uninterruptible();
  const share = findShare(await parseDomainXml(await virsh.dumpxml(name)), tag);
  if (share) await changeDevice(virsh, 'detach-device', name, await filesystemXml(share), LIVE);
};

/** Whether an earlier `vms mount --readonly` kept this share read-only in the definition (vms' metadata). */
const readonlyKept = (domain: XmlNode, tag: string) => readMetadata(domain).readonlyShares?.includes(tag) ?? false;

/** The definition with the tag recorded as read-only in vms' metadata, or no longer recorded; unchanged when it already says so. */
async function withReadonlyKept(domain: XmlNode, tag: string, readonly: boolean): Promise<XmlNode> {
  if (readonlyKept(domain, tag) === readonly) return domain;
  const metadata = readMetadata(domain);
  const readonlyShares = [...(metadata.readonlyShares ?? []).filter((t) => t !== tag), ...(readonly ? [tag] : [])];
  return withMetadata(domain, { ...metadata, readonlyShares: readonlyShares.length > 0 ? readonlyShares : undefined });
}

/**
 * Defines the VM with the share (added when it is not in yet, with shared memory) and, asked read-only, that kept.
 * With `undo`, the definition's restore is registered before the first try only (a retry without <readonly/> needs
 * none).
 */
function defineWithShare(ctx: Context, vm: LoadedVm, readonly: boolean, undo?: UndoStack) {
  let restore = undo;
  return async (share: FsShare) => {
    const registered = restore;
    restore = undefined;
    await redefine(
      ctx,
      vm,
      (domain) => {
        const withIt = findShare(domain, share.tag) ? domain : withShare(withSharedMemory(domain), share);
        return withReadonlyKept(withIt, share.tag, readonly);
      },
      registered,
    );
  };
}

/** What the definition still needs for this share: the title of that step, or undefined when it has it all. */
function definitionChange(domain: XmlNode, name: string, tag: string, readonly: boolean): string | undefined {
  if (!findShare(domain, tag)) return `Adding the share to ${name}'s definition`;
  if (readonly && !readonlyKept(domain, tag)) return `Keeping the share read-only in ${name}'s definition`;
  return undefined;
}

/** Defines the VM without the share, and without its read-only record. */
const defineWithoutShare = (ctx: Context, vm: LoadedVm, tag: string) =>
  redefine(ctx, vm, (domain) => withReadonlyKept(withoutShare(domain, tag), tag, false));

/** A logged-in root shell on the VM's serial console; a restart logs in again. */
class GuestConsole {
  private session?: SerialSession;

  private constructor(
    private readonly ctx: Context,
    private readonly name: string,
    private readonly socket: string,
    private readonly transcript: Transcript,
    private readonly password?: string,
  ) {}

  /** Root's password is the one vms create set (root-password in the VM's directory); the test guests have none. */
  static async open(ctx: Context, vm: LoadedVm, title: string): Promise<GuestConsole> {
    const name = vm.facts.name;
    if (!vm.facts.serialSocket) {
      throw conflict(
        `${name} has no unix-socket serial console: vms cannot reach its guest`,
        'add the share with virsh and mount it in the guest yourself',
      );
    }
    const files = vmFiles(ctx.config, name);
    const password = await readFile(files.password, 'utf8').then(
      (p) => p.trim(),
      () => undefined,
    );
    const guest = new GuestConsole(
      ctx,
      name,
      vm.facts.serialSocket,
      openTranscript(ctx, files.applyLog, title),
      password,
    );
    try {
      await guest.login();
      return guest;
    } catch (err) {
      await guest.close();
      throw err;
    }
  }

  async login(): Promise<void> {
    const files = { ...vmFiles(this.ctx.config, this.name), serialSocket: this.socket };
    this.session = await this.ctx.progress.step('Logging in on the serial console', () =>
      loginAsRoot(this.ctx, files, this.transcript, this.password),
    );
  }

  check(command: string, what: string): Promise<string> {
    return this.session!.check(command, what);
  }

  /** The last line the command printed (a one-word answer). */
  async answer(command: string, what: string): Promise<string> {
    return (await this.check(command, what)).trim().split('\n').pop()!.trim();
  }

  async powerOff(): Promise<void> {
    await this.ctx.progress.step(`Powering off ${this.name}`, () =>
      powerOffFromGuest(this.ctx, this.session!, this.name),
    );
  }

  async close(): Promise<void> {
    this.session?.close();
    await this.transcript.close();
  }
}

/** The running VM's own definition (undefined when it is shut off); a paused guest cannot be driven over its console. */
async function runningDomain(ctx: Context, vm: LoadedVm): Promise<XmlNode | undefined> {
  requireDrivable(vm);
  return liveDomain(ctx.virsh, vm.facts.name, isActive(vm.state));
}

export async function mountShare(
  ctx: Context,
  asked: MountOptions,
  find = () => findVirtiofsd(ctx.host.env.PATH),
): Promise<MountResult> {
  return withOperation(ctx, { command: 'mount', vms: [asked.name] }, async (ctx) => {
    const guestDir = checkGuestDir(asked.guestDir);
    const given = callerPath(ctx, asked.hostDir);
    const hostDir = await resolveHostDir(given);
    refuseSystemDir(given, hostDir, asked.allowSystemDir ?? false);
    requireVirtiofsd(find);
    const vm = await loadVm(ctx, asked.name);
    const live = await runningDomain(ctx, vm);
    const tag = shareTag(guestDir);
    const existing = [live && findShare(live, tag), findShare(vm.domain, tag)].find((s) => s !== undefined);
    if (existing && existing.source !== hostDir) {
      throw conflict(
        `${guestDir} in ${asked.name} is already shared from ${existing.source}`,
        `\`vms umount ${q(asked.name)} ${q(guestDir)}\` first`,
      );
    }
    // Read-only once is read-only from then on: a later mount (the hint's, or one without --readonly) keeps it so.
    const kept = findShare(vm.domain, tag) !== undefined && readonlyKept(vm.domain, tag);
    const readonly = asked.readonly || kept || (existing?.readonly ?? false);
    const opts = { ...asked, readonly };
    const share = existing ?? { tag, source: hostDir, readonly };
    const result = { name: opts.name, hostDir, guestDir, tag, readonly };
    if (!live) {
      if (opts.temp) {
        const message = `${opts.name} is shut off: a temporary mount goes only into a running VM`;
        const hint = `\`vms start ${q(opts.name)}\` first`;
        throw new VmsError('conflict', message, hint, undefined, 'mount.tempShutOff', { name: opts.name });
      }
      const change = definitionChange(vm.domain, opts.name, tag, readonly);
      const added = change
        ? await ctx.progress.step(change, () => withReadonlyFallback(share, defineWithShare(ctx, vm, readonly)))
        : share;
      return {
        ...result,
        readonlyOnHost: added.readonly,
        persistent: true,
        mounted: false,
        fstab: false,
        restarted: false,
      };
    }
    if (!hasSharedMemory(live) && !opts.restart) throw needsRestart(opts.name, 'it runs without shared memory');

    const guest = await GuestConsole.open(
      ctx,
      vm,
      `vms mount ${[opts.name, hostDir, guestDir].map(q).join(' ')}${opts.readonly ? ' --readonly' : ''}`,
    );
    try {
      return await withUndo(async (undo) => {
        // Before anything changes: never hide the guest's files unasked.
        const state = await guest.answer(
          guestDirStateCommand(tag, guestDir),
          `looking at ${guestDir} in the guest failed`,
        );
        if (state === 'notdir')
          throw conflict(`${guestDir} in ${opts.name} is not a directory`, 'pick another GUESTDIR');
        if (state === 'nonempty' && !opts.force) {
          const hint =
            'pick an empty or new directory, or mount over it anyway (the files come back after `vms umount`)';
          const message = `${guestDir} in ${opts.name} is not empty: the share would hide its files`;
          throw new VmsError('conflict', message, hint, undefined, 'mount.notEmpty');
        }
        const plugged = await plugIn(ctx, guest, { vm, live, share, opts, undo });
        await ctx.progress.step(`Mounting ${tag} at ${guestDir}`, async () => {
          undo.push(`unmount ${guestDir} in the guest`, () =>
            guest.check(unmountCommand(tag, guestDir), `umount ${guestDir}`),
          );
          await guest.check(
            mountCommand(tag, guestDir, opts.readonly),
            `mounting ${tag} at ${guestDir} in the guest failed`,
          );
        });
        if (!opts.temp)
          await guest.check(
            fstabCommand(tag, fstabLine(tag, guestDir, opts.readonly)),
            'adding the share to /etc/fstab in the guest failed',
          );
        return {
          ...result,
          readonlyOnHost: plugged.share.readonly,
          persistent: !opts.temp || findShare(vm.domain, tag) !== undefined,
          mounted: true,
          fstab: !opts.temp,
          restarted: plugged.restarted,
        };
      }, undoOptions(ctx));
    } finally {
      await guest.close();
    }
  });
}

const needsRestart = (name: string, why: string) =>
  new VmsError(
    'conflict',
    `${name} needs a restart for virtiofs: ${why}`,
    'vms can power it off, add shared memory to its definition and start it again when asked to restart it; ' +
      'nothing was changed',
    undefined,
    'mount.needsRestart',
  );

interface PlugInput {
  vm: LoadedVm;
  live: XmlNode;
  share: FsShare;
  opts: MountOptions;
  undo: UndoStack;
}

/** Makes the share part of the running VM (hotplug) and, unless --temp, of its definition; restarts it when it must. */
async function plugIn(
  ctx: Context,
  guest: GuestConsole,
  input: PlugInput,
): Promise<{ share: FsShare; restarted: boolean }> {
  const { vm, live, opts, undo } = input;
  const name = opts.name;
  let share = input.share;
  const define = (title: string, withTheShare: boolean) =>
    ctx.progress.step(title, async () => {
      if (withTheShare) share = await withReadonlyFallback(share, defineWithShare(ctx, vm, opts.readonly, undo));
      else await redefine(ctx, vm, withSharedMemory, undo);
    });
  const plugLive = () =>
    ctx.progress.step(`Plugging the share into ${name}`, async () => {
      undo.push(`unplug the share from ${name}`, unplugIfPlugged(ctx, name, share.tag));
      share = await withReadonlyFallback(share, async (s) =>
        changeDevice(ctx.virsh, 'attach-device', name, await filesystemXml(s), LIVE),
      );
    });

  if (!findShare(live, share.tag) && !(hasSharedMemory(live) && (await pluggedLive(plugLive, opts)))) {
    // Newest first on a rollback: the VM is powered off, its old definition goes back, and it is started again.
    undo.push(`start ${name} again`, async () => {
      if (!isActive(await ctx.virsh.uninterruptible().state(name))) await ctx.virsh.uninterruptible().start(name);
    });
    await guest.powerOff();
    await define(`Adding shared memory${opts.temp ? '' : ' and the share'} to ${name}'s definition`, !opts.temp);
    undo.push(`power off ${name}`, powerOffIfRunning(ctx.virsh.uninterruptible(), name));
    await ctx.progress.step(`Starting ${name}`, () => ctx.virsh.start(name));
    await guest.login();
    if (opts.temp) await plugLive();
    return { share, restarted: true };
  }
  const change = definitionChange(vm.domain, name, share.tag, opts.readonly);
  if (!opts.temp && change) await define(change, true);
  return { share, restarted: false };
}

/** Hotplugs the share; false when libvirt wants a fresh start of the VM for it and --restart allows one. */
async function pluggedLive(plugLive: () => Promise<void>, opts: MountOptions): Promise<boolean> {
  try {
    await plugLive();
    return true;
  } catch (err) {
    // The running domain has no shared memory. libvirt 9.0 said so too, to attach-device with --live or --config, for
    // a domain that has shared memory but was started before libvirtd last restarted; after a fresh start of the VM
    // the same attach worked. A restart is the cure for both.
    if (!hasReason(err, 'virtiofs.needsSharedMemory')) throw err;
    if (!opts.restart)
      throw needsRestart(
        opts.name,
        'libvirt refuses to plug virtiofs into it (it was started before libvirtd last restarted)',
      );
    return false;
  }
}

export async function unmountShare(ctx: Context, name: string, guestDirArg: string): Promise<UnmountResult> {
  return withOperation(ctx, { command: 'umount', vms: [name] }, async (ctx) => {
    const guestDir = checkGuestDir(guestDirArg);
    const vm = await loadVm(ctx, name);
    const live = await runningDomain(ctx, vm);
    const tag = shareTag(guestDir);
    const saved = findShare(vm.domain, tag);
    const plugged = live && findShare(live, tag);
    const result = { name, guestDir, tag };
    if (!saved && !plugged)
      throw notFound(
        `nothing is shared into ${name} at ${guestDir}`,
        `the shares are the <filesystem> devices in \`virsh dumpxml ${q(name)}\``,
      );
    if (!live) {
      await ctx.progress.step(`Removing the share from ${name}'s definition`, () => defineWithoutShare(ctx, vm, tag));
      return { ...result, guest: false };
    }
    const guest = await GuestConsole.open(ctx, vm, `vms umount ${q(name)} ${q(guestDir)}`);
    try {
      return await withUndo(async (undo) => {
        const readonly =
          (await guest.answer(
            `grep -s '^${tag} ${guestDir} virtiofs ro[ ,]' /proc/mounts >/dev/null && echo ro || echo rw`,
            'reading /proc/mounts in the guest failed',
          )) === 'ro';
        const fstab = (
          await guest.check(`grep -s '^${tag}[[:space:]]' /etc/fstab; true`, 'reading /etc/fstab in the guest failed')
        )
          .trim()
          .split('\n')[0]!
          .trim();
        await ctx.progress.step(`Unmounting ${guestDir} in ${name}`, async () => {
          const r = await guest.answer(
            `${unmountCommand(tag, guestDir)} && echo done || echo busy`,
            `umount ${guestDir} in the guest failed`,
          );
          if (r !== 'done')
            throw conflict(
              `${guestDir} is busy in ${name}: cannot unmount it`,
              'stop what uses it in the guest (fuser -m) and try again',
            );
        });
        undo.push(`mount ${guestDir} in the guest again`, () =>
          guest.check(mountCommand(tag, guestDir, readonly), `mount ${guestDir}`),
        );
        if (fstab) {
          undo.push('put the share back into /etc/fstab', () => guest.check(fstabCommand(tag, fstab), 'fstab'));
          await guest.check(fstabCommand(tag), 'removing the share from /etc/fstab in the guest failed');
        }
        if (plugged) {
          await ctx.progress.step(`Unplugging the share from ${name}`, async () => {
            const xml = await filesystemXml(plugged);
            undo.push(`plug the share into ${name} again`, () =>
              changeDevice(ctx.virsh.uninterruptible(), 'attach-device', name, xml, LIVE),
            );
            await changeDevice(ctx.virsh, 'detach-device', name, xml, LIVE);
          });
        }
        if (saved) await defineWithoutShare(ctx, vm, tag);
        return { ...result, guest: true };
      }, undoOptions(ctx));
    } finally {
      await guest.close();
    }
  });
}
