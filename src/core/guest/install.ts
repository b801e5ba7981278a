import { constants as fsConstants, existsSync } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, readdir, readFile, rename, rm, statfs, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { bundledFiles } from '../../bundled.js';
import { conflict, notFound, usageError, VmsError } from '../../errors.js';
import type { XmlNode } from '../../libvirt/domain-parse.js';
import { editMetadata, PKG_CACHE_TAG_PREFIX, withDiskBoot } from '../../libvirt/domain-edit.js';
import type { DomainSpec, Firmware, NetworkSpec, Share } from '../../libvirt/domain-xml.js';
import type { PendingStep } from '../../libvirt/metadata.js';
import { hostnameFor } from '../../names.js';
import { formatSize, GiB } from '../../size.js';
import type { Context } from '../context.js';
import { makeVm, planVm, requireFreeName, resolveIso } from '../vm/create.js';
import { findVirtiofsd } from '../host/programs.js';
import { ARCH_ISO } from '../storage/iso.js';
import { hostFacts, parseSettings, renderSettings, sshPublicKey, validateUser } from './guest-settings.js';
import {
  GUEST_SHELL,
  loginAsRoot,
  openTranscript,
  powerOffFromGuest,
  pushFiles,
  rebootAndWait,
  runProfiles,
  scriptFailed,
  type Transcript,
} from './guest-session.js';
import { vmInfo, type VmInfo } from '../vm/info.js';
import { isoBootFiles } from '../storage/iso.js';
import { generatePassword, hashPassword } from './password.js';
import { loadCatalog, profileChain } from './profiles.js';
import { makeSharedDir } from '../host/shared-dir.js';
import { leftBehind, withUndo, type UndoStack } from '../ops/undo.js';
import { isActive, loadVm, redefine } from '../vm/vm.js';
import { readVmSecrets, vmFiles, vmPackageCache, type VmFiles } from '../vm/vm-files.js';
import { shellQuote as q } from '../../quote.js';
import { undoOptions, withOperation } from '../ops/operation.js';

// `vms create NAME --profile P`: the unattended Arch install. The live ISO is booted straight into its kernel, vms
// logs in on the serial console, copies guest/ there and runs install.sh; then the VM boots from its disk and gets its
// profiles. The step still to do is kept in the domain's metadata, so `--resume` knows where to go on.

export interface InstallOptions {
  name: string;
  profile: string;
  iso?: string; // default: archlinux-x86_64.iso in the ISO dir
  memory?: number;
  cpus?: number;
  disk?: number;
  firmware: Firmware;
  network: NetworkSpec;
  graphics: boolean;
  user?: string;
  sshKey?: string; // a .pub file
  keepFailed: boolean;
}

export interface InstallResult extends VmInfo {
  /** Where the generated root (and user) password is kept, 0600. */
  passwordFile: string;
  user: string;
  transcript: string;
}

/** An install needs room for the base system, however sparse its qcow2 starts. */
const MIN_FREE = 3 * GiB;
const INSTALL_FIRST_PHASE_MS = 10 * 60_000;
const GUEST_DIR = '/root/vms';

const sharedCacheDir = (ctx: Context) => join(ctx.config.cacheDir.value, 'pkg');
const HOST_PACMAN_CACHE = 'var/cache/pacman/pkg'; // under the host's root

/** The installer files: guest/ as built into vms, or VMS_GUEST_DIR (tests put a test installer there). */
async function guestFiles(ctx: Context): Promise<Record<string, string>> {
  const dir = ctx.config.guestDir.value;
  const files = dir
    ? Object.fromEntries(
        await Promise.all(
          (await readdir(dir))
            .filter((f) => !/^README/.test(f))
            .map(async (f) => [f, await readFile(join(dir, f), 'utf8')]),
        ),
      )
    : bundledFiles('guest');
  if (files['install.sh'] === undefined)
    throw notFound(
      `no install.sh in ${dir || 'the built-in guest files'}`,
      'VMS_GUEST_DIR must name a directory holding install.sh',
    );
  return files;
}

async function requireFreeSpace(dir: string, needed: number): Promise<void> {
  let free: number;
  try {
    const s = await statfs(dir);
    free = s.bavail * s.bsize;
  } catch {
    throw notFound(`images directory ${dir} does not exist`, 'run `vms bootstrap`, or set VMS_IMAGES_DIR');
  }
  if (free < needed)
    throw new VmsError(
      'failed',
      `not enough free space in ${dir}: ${formatSize(free)} free, an install needs ${formatSize(needed)}`,
      'free some space there, or set VMS_IMAGES_DIR to a bigger disk',
    );
}

/** Package caches shared into the install over virtiofs (guest/README.md: VMS_CACHE_RO/RW); none without virtiofsd. */
function packageCacheShares(ctx: Context, name: string): { ro: Share[]; rw?: Share; reason?: string } {
  const root = ctx.host.root ?? '/';
  if (!findVirtiofsd(ctx.host.env.PATH, root))
    return { ro: [], reason: 'virtiofsd is not installed: no shared package cache, every package is downloaded' };
  const ro: Share[] = [];
  const hostCache = join(root, HOST_PACMAN_CACHE);
  if (existsSync(hostCache)) ro.push({ source: hostCache, tag: `${PKG_CACHE_TAG_PREFIX}host` });
  ro.push({ source: sharedCacheDir(ctx), tag: `${PKG_CACHE_TAG_PREFIX}shared` });
  return { ro, rw: { source: vmPackageCache(ctx.config, name), tag: `${PKG_CACHE_TAG_PREFIX}vm` } };
}

const PACKAGE_FILE = /\.pkg\.tar\.(zst|xz)(\.sig)?$/;

/**
 * New downloads of one install join the shared cache, so the next VM need not fetch them again. Only package files,
 * made plain 0644 (the guest wrote them as root through virtiofs: no set-id bits may reach a host directory). Best
 * effort: a finished install is never undone over its cache.
 */
async function keepDownloads(ctx: Context, name: string): Promise<void> {
  const from = vmPackageCache(ctx.config, name);
  if (!existsSync(from)) return;
  let kept = 0;
  try {
    for (const f of await readdir(from)) {
      const target = join(sharedCacheDir(ctx), f);
      if (!PACKAGE_FILE.test(f) || existsSync(target) || !(await lstat(join(from, f))).isFile()) continue;
      await adoptPackage(join(from, f), target, ctx.host.uid);
      kept++;
    }
    await rm(from, { recursive: true, force: true });
  } catch (err) {
    ctx.progress.note(
      `the install's downloads could not all join the shared cache (${(err as Error).message}); ${from} is left`,
    );
  }
  if (kept) ctx.progress.note(`${kept} downloaded packages added to the shared cache ${sharedCacheDir(ctx)}`);
}

/**
 * Moves one downloaded package into the shared cache as a plain 0644 file. The guest's root wrote it through
 * virtiofs, so when vms runs as a user the file is root's, not ours to chmod: then it is copied (the copy is ours)
 * and the original removed, which the directory, being ours, allows.
 */
async function adoptPackage(file: string, target: string, uid: number): Promise<void> {
  if ((await lstat(file)).uid === uid) {
    await chmod(file, 0o644);
    return rename(file, target);
  }
  const part = `${target}.${process.pid}.vms-part`; // ours alone: another install, or one that died, has its own
  try {
    await copyFile(file, part, fsConstants.COPYFILE_EXCL);
    await chmod(part, 0o644);
    await rename(part, target);
  } finally {
    await rm(part, { force: true });
  }
  await rm(file);
}

async function setPending(ctx: Context, name: string, pending: PendingStep | undefined, edit = (d: XmlNode) => d) {
  await redefine(ctx, name, (domain) =>
    editMetadata(edit(domain), (m) => {
      const metadata = { ...m, pending };
      if (!pending) delete metadata.pending;
      return metadata;
    }),
  );
}

interface VmSecrets {
  password: string;
  settings: string;
}

/** Boots the live ISO, runs install.sh in it, and leaves the VM defined to boot from its disk. */
async function installStep(ctx: Context, name: string, secrets: VmSecrets, transcript: Transcript): Promise<void> {
  const { progress, virsh } = ctx;
  const files = vmFiles(ctx.config, name);
  const installer = await guestFiles(ctx);
  if (isActive(await virsh.state(name)))
    await progress.step(`Powering off ${name} to start the install again`, () => virsh.destroy(name));
  await progress.step(`Booting the live ISO`, () => virsh.start(name));
  const session = await progress.step('Logging in on the serial console', () => loginAsRoot(ctx, files, transcript));
  try {
    await progress.step(`Copying the installer (${Object.keys(installer).join(', ')})`, () =>
      pushFiles(session, GUEST_DIR, { ...installer, 'settings.sh': secrets.settings }),
    );
    await progress.step('Installing (install.sh)', async () => {
      const r = await session.runPhased(`cd ${GUEST_DIR} && ${GUEST_SHELL} install.sh ${GUEST_DIR}/settings.sh`, {
        label: 'install.sh',
        firstTimeoutMs: INSTALL_FIRST_PHASE_MS,
        onPhase: (phase, seconds) => progress.note(`install phase ${phase} (up to ${seconds}s)`),
      });
      if (r.exitCode !== 0) throw scriptFailed('the install (install.sh)', r.exitCode, r.output, transcript, r.phase);
    });
    await progress.step(`Powering off ${name}`, () => powerOffFromGuest(ctx, session, name));
  } finally {
    session.close();
  }
  await progress.step(`Switching ${name} to boot from its disk`, () => setPending(ctx, name, 'profile', withDiskBoot));
  await keepDownloads(ctx, name);
}

/** Boots the installed system, applies the profile chain, reboots, and marks the VM complete. */
async function profileStep(
  ctx: Context,
  name: string,
  profile: string,
  secrets: VmSecrets,
  transcript: Transcript,
): Promise<void> {
  const { progress, virsh } = ctx;
  const catalog = loadCatalog(ctx.config);
  const chain = profileChain(catalog, profile);
  if (!isActive(await virsh.state(name))) await progress.step(`Booting ${name} from its disk`, () => virsh.start(name));
  const session = await progress.step('Logging in on the serial console', () =>
    loginAsRoot(ctx, vmFiles(ctx.config, name), transcript, secrets.password),
  );
  try {
    await runProfiles(ctx, session, chain, catalog.libs, secrets.settings, transcript);
    await progress.step(`Rebooting ${name}`, () => rebootAndWait(ctx, session));
  } finally {
    session.close();
  }
  await setPending(ctx, name, undefined);
}

/** A failed install kept on request: how to look at it, go on, or remove it (`data.kept` for the CLI's words). */
const kept = (name: string, files: VmFiles): [string, Record<string, unknown>] => [
  `kept for inspection: \`vms console ${q(name)}\` (root password in ${files.password}); ` +
    `resume the create, or remove it with \`vms destroy ${q(name)}\``,
  { kept: { name, password: files.password } },
];

/** The error with a new hint, and `data` added to what it carries. */
function withHint(err: unknown, [hint, data]: [string, Record<string, unknown>]): unknown {
  if (!(err instanceof VmsError)) return err;
  return new VmsError(err.code, err.message, hint, err.details, err.reason, { ...err.data, ...data });
}

async function result(ctx: Context, name: string, transcript: Transcript, user: string): Promise<InstallResult> {
  const files = vmFiles(ctx.config, name);
  const info = await vmInfo({ ...ctx, virsh: ctx.virsh.uninterruptible() }, name);
  return { ...info, passwordFile: files.password, user, transcript: transcript.path };
}

/** The input checked (the name free, the profile, installer, ISO and free space there): what the install goes by. */
async function checkInstall(ctx: Context, opts: InstallOptions) {
  await requireFreeName(ctx, opts.name);
  profileChain(loadCatalog(ctx.config), opts.profile);
  await guestFiles(ctx);
  const iso = await resolveIso(ctx, opts.iso ?? ARCH_ISO, '`vms iso fetch` downloads the current Arch ISO');
  const disk = opts.disk ?? ctx.config.disk.value;
  await requireFreeSpace(ctx.config.imagesDir.value, Math.min(disk, MIN_FREE));
  const host = hostFacts(ctx.host, ctx.host.root);
  const user = opts.user === undefined ? host.user : validateUser(opts.user);
  return { iso, disk, host, user, sshKey: sshPublicKey(host.home, opts.sshKey, ctx.host.cwd) };
}

type CheckedInstall = Awaited<ReturnType<typeof checkInstall>>;

/** What the install makes: the VM's definition (booting the ISO's kernel), its package caches, the guest's secrets. */
interface InstallPlan {
  spec: DomainSpec;
  /** The disk's size, bytes. */
  disk: number;
  caches: ReturnType<typeof packageCacheShares>;
  secrets: VmSecrets;
  files: VmFiles;
}

async function prepareInstall(ctx: Context, opts: InstallOptions, checked: CheckedInstall): Promise<InstallPlan> {
  const { progress } = ctx;
  const boot = await progress.step(`Reading ${basename(checked.iso)}`, () => isoBootFiles(ctx, checked.iso));
  const caches = packageCacheShares(ctx, opts.name);
  if (caches.reason) progress.note(caches.reason);
  const spec = await planVm(ctx, {
    ...opts,
    iso: checked.iso,
    kernelBoot: { kernel: boot.kernel, initrd: boot.initrd, cmdline: boot.cmdline },
    start: false,
  });
  spec.shares = [...caches.ro, ...(caches.rw ? [caches.rw] : [])];
  spec.metadata = { ...spec.metadata, createdFrom: checked.iso, pending: 'install' };

  const password = generatePassword();
  const secrets: VmSecrets = {
    password,
    settings: renderSettings({
      name: opts.name,
      hostname: hostnameFor(opts.name),
      user: checked.user,
      passwordHash: hashPassword(password),
      sshKey: checked.sshKey,
      timezone: checked.host.timezone,
      locale: checked.host.locale,
      keymap: checked.host.keymap,
      disk: '/dev/vda',
      firmware: opts.firmware,
      cacheRo: caches.ro.map((s) => s.tag),
      cacheRw: caches.rw?.tag ?? '',
    }),
  };
  return { spec, disk: checked.disk, caches, secrets, files: vmFiles(ctx.config, opts.name) };
}

/** How far an install got, for what its failure says: defined (kept when asked), its transcript (kept). */
interface InstallRun {
  defined: boolean;
  transcript?: Transcript;
  /** Where a failed install's transcript was kept (only once it is there). */
  savedTranscript?: string;
}

/** Makes the VM and installs it, each step's undo registered before it. */
async function makeInstall(ctx: Context, opts: InstallOptions, plan: InstallPlan, run: InstallRun, undo: UndoStack) {
  const { caches, secrets, files } = plan;
  await makeVm(ctx, plan.spec, plan.disk, undo);
  run.defined = true;
  await writeFile(files.password, `${secrets.password}\n`, { mode: 0o600 });
  await writeFile(files.settings, secrets.settings, { mode: 0o600 });
  const transcript = openTranscript(ctx, files.installLog, `vms create ${q(opts.name)} --profile ${q(opts.profile)}`);
  run.transcript = transcript;
  // Runs before the VM's directory goes: the transcript is what explains the failure.
  undo.push('keep the transcript', async () => {
    await transcript.close();
    const saved = join(ctx.config.stateDir.value, `${opts.name}.failed-install.log`);
    await copyFile(files.installLog, saved);
    run.savedTranscript = saved; // only once it is there
  });
  if (caches.rw) {
    await makeSharedDir(sharedCacheDir(ctx));
    await makeSharedDir(dirname(caches.rw.source));
    await mkdir(caches.rw.source, { recursive: true, mode: 0o755 });
    await undo.add(`remove ${caches.rw.source}`, { kind: 'remove-dir', path: caches.rw.source });
  }
  await undo.add(`stop ${opts.name}`, { kind: 'power-off', vm: opts.name });
  await installStep(ctx, opts.name, secrets, transcript);
  await profileStep(ctx, opts.name, opts.profile, secrets, transcript);
}

/** A failed install's error, with a hint at what is left: the VM kept (when asked), or its transcript. */
function explainFailure(err: unknown, opts: InstallOptions, files: VmFiles, run: InstallRun): unknown {
  if (opts.keepFailed && run.defined) return withHint(err, kept(opts.name, files));
  if (run.savedTranscript && err instanceof VmsError && err.code !== 'interrupted') {
    const cleaned = leftBehind(err).length === 0;
    const hint = `the whole transcript is in ${run.savedTranscript}${cleaned ? '; nothing else is left' : ''}`;
    return withHint(err, [hint, { removed: { transcript: run.savedTranscript, cleaned } }]);
  }
  return err;
}

export async function installVm(ctx: Context, opts: InstallOptions): Promise<InstallResult> {
  // Bad input is refused before anything is locked or made.
  const checked = await ctx.progress.step('Checking input', () => checkInstall(ctx, opts));
  return withOperation(ctx, { command: 'create', vms: [opts.name] }, async (ctx) => {
    await requireFreeName(ctx, opts.name); // again under the lock: a create of the same name may have won the race
    const plan = await prepareInstall(ctx, opts, checked);
    const run: InstallRun = { defined: false };
    try {
      const keep = () => Boolean(opts.keepFailed) && run.defined;
      await withUndo((undo) => makeInstall(ctx, opts, plan, run, undo), undoOptions(ctx, keep));
    } catch (err) {
      throw explainFailure(err, opts, plan.files, run);
    } finally {
      await run.transcript?.close();
    }
    return result(ctx, opts.name, run.transcript!, checked.user);
  });
}

/** `vms create NAME --resume`: goes on from the step a kept failed create stopped at. */
export async function resumeInstall(ctx: Context, name: string): Promise<InstallResult> {
  return withOperation(ctx, { command: 'create --resume', vms: [name] }, async (ctx) => {
    const { facts } = await loadVm(ctx, name);
    const files = vmFiles(ctx.config, name);
    const pending = facts.metadata.pending;
    if (!pending)
      throw conflict(
        `${name} is complete: there is nothing to resume`,
        `\`vms apply ${q(name)} PROFILE\` runs a profile on it`,
      );
    if (!facts.metadata.profile)
      throw usageError(`${name} has no profile in its metadata: it was not made by \`vms create\``);
    const secrets: VmSecrets = await readVmSecrets(files, name);

    const transcript = openTranscript(ctx, files.installLog, `vms create ${q(name)} --resume (${pending})`);
    try {
      if (pending === 'install') await installStep(ctx, name, secrets, transcript);
      await profileStep(ctx, name, facts.metadata.profile, secrets, transcript);
    } catch (err) {
      throw withHint(err, kept(name, files));
    } finally {
      await transcript.close();
    }
    return result(ctx, name, transcript, parseSettings(secrets.settings).VMS_USER ?? '');
  });
}
