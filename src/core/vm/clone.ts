import { existsSync } from 'node:fs';
import { chmod, copyFile, stat } from 'node:fs/promises';
import { conflict, usageError, VmsError } from '../../errors.js';
import { buildDomainXml } from '../../libvirt/domain-parse.js';
import { cloneDefinition, withDiskSources, withMetadata } from '../../libvirt/domain-edit.js';
import { validateName } from '../../names.js';
import { shellQuote as q } from '../../quote.js';
import type { Context } from '../context.js';
import { vmInfo, type VmInfo } from './info.js';
import { withOperation, undoOptions } from '../ops/operation.js';
import { withUndo, type UndoStack } from '../ops/undo.js';
import { chardevOwner, claimDiskPath, makeVmDir, vmFiles } from './vm-files.js';
import { isActive, loadVm, ownDisks, type LoadedVm } from './vm.js';

export interface CloneOptions {
  source: string;
  name: string;
  full: boolean;
  start: boolean;
}

export interface CloneResult extends VmInfo {
  linked: boolean;
  /** The files both VMs now stand on (linked clones), made read-only… */
  frozen: string[];
  /** …except these, which vms as a user could not chmod (SRC was running on them). */
  writable: string[];
  quiesced: boolean;
}

/**
 * Makes a frozen disk read-only. A disk SRC runs on belongs to the qemu user while it runs (libvirt's labelling), so
 * vms as a user may not chmod it: that is said, not failed, since the clone itself is sound.
 */
async function makeBaseReadOnly(ctx: Context, path: string, source: string, undo: UndoStack): Promise<boolean> {
  try {
    const mode = (await stat(path)).mode & 0o7777;
    await undo.add(`make ${path} writable again`, { kind: 'chmod', path, mode });
    await chmod(path, 0o444);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    ctx.progress.note(`${path} stays writable: it belongs to the qemu user while ${source} runs (\`sudo chmod 444 ${q(path)}\` protects it)`);
    return false;
  }
}

/** SRC's UEFI variables (boot entries) for the clone. libvirt made SRC's file for the qemu user: a user reads it through libvirt. */
async function copyNvram(ctx: Context, from: string, to: string): Promise<void> {
  try {
    await copyFile(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EACCES') throw err;
    await ctx.virsh.downloadFile(from, to);
    await chmod(to, 0o600);
  }
}

const diskStem = (vm: string, target: string, index: number) => (index === 0 ? vm : `${vm}-${target}`);

/**
 * Freezes SRC's current disks as read-only bases: SRC goes on from fresh overlays. A running SRC switches with an
 * external disk-only snapshot (quiesced when a guest agent answers); a shut-off one gets new overlay files, and its
 * definition is switched over later, as the last step that can fail.
 */
async function freezeSource(ctx: Context, src: LoadedVm, undo: UndoStack): Promise<{ overlays: Map<string, string>; quiesced: boolean }> {
  const disks = ownDisks(src.facts);
  const overlays = new Map<string, string>();
  for (const [i, d] of disks.entries()) {
    overlays.set(d.target, await claimDiskPath(ctx.config.imagesDir.value, diskStem(src.facts.name, d.target, i), undo));
  }
  if (!isActive(src.state)) {
    for (const d of disks) await ctx.qemuImg.createOverlay(overlays.get(d.target)!, d.path!);
    return { overlays, quiesced: false };
  }
  const name = src.facts.name;
  // Registered first: if the snapshot took effect (even when we were interrupted during it), merge each overlay back
  // into its base and pivot SRC onto it again; an overlay SRC does not run on is only removed (by its claim).
  await undo.add(`switch ${name} back to its own disk`, {
    kind: 'unfreeze',
    vm: name,
    overlays: [...overlays],
    bases: disks.map((d) => [d.target, d.path!]),
    metadata: src.facts.metadata,
  });
  const quiesced = await ctx.virsh.agentAnswers(name);
  const others = src.facts.disks.filter((d) => !overlays.has(d.target)).map((d) => d.target);
  await ctx.virsh.snapshotToOverlays(name, [...overlays].map(([target, file]) => ({ target, file })), others, quiesced);
  return { overlays, quiesced };
}

export async function cloneVm(ctx: Context, opts: CloneOptions): Promise<CloneResult> {
  validateName(opts.name);
  validateName(opts.source);
  // SRC and NEW, and the host's bases: no other command may change them, or judge a base unused, meanwhile.
  return withOperation(ctx, { command: 'clone', vms: [opts.source, opts.name], host: true }, async (ctx) => {
    const src = await ctx.progress.step('Checking input', () => checkClone(ctx, opts));
    const result = await withUndo((undo) => makeClone(ctx, opts, src, undo), undoOptions(ctx));
    return { ...(await vmInfo({ ...ctx, virsh: ctx.virsh.uninterruptible() }, opts.name)), ...result };
  });
}

/** Refuses, before anything changes, a clone that cannot work or would freeze what is not vms's to freeze. */
async function checkClone(ctx: Context, opts: CloneOptions): Promise<LoadedVm> {
  const { virsh } = ctx;
  const src = await loadVm(ctx, opts.source);
  if (await virsh.exists(opts.name)) throw conflict(`a VM named '${opts.name}' already exists`, 'pick another name for the clone');
  const notFile = src.facts.disks.find((d) => d.device === 'disk' && !d.readonly && d.type !== 'file');
  if (notFile) throw usageError(`${opts.source}'s disk ${notFile.target} is not a plain file (${notFile.type})`, 'vms clones only file-backed disks: copy it by hand');
  if (!opts.full) {
    // A linked clone makes SRC's disks read-only bases for good: only files vms made for SRC may become one.
    const foreign = ownDisks(src.facts).find((d) => !src.facts.metadata.made.includes(d.path!));
    if (foreign) {
      throw new VmsError(
        'conflict',
        `${opts.source}'s disk ${foreign.target} (${foreign.path}) was not made by vms: a linked clone would freeze it read-only under both VMs`,
        `make an independent full copy, or \`vms disk detach ${q(opts.source)} ${foreign.target}\` first`,
        undefined,
        'clone.foreignDisk',
        { source: opts.source, target: foreign.target },
      );
    }
  }
  const bad = ownDisks(src.facts).find((d) => d.format !== 'qcow2' && !opts.full);
  if (bad) {
    const message = `${opts.source}'s disk ${bad.path} is ${bad.format ?? 'not qcow2'}: a linked clone needs qcow2`;
    throw new VmsError('usage', message, 'make an independent full copy', undefined, 'clone.notQcow2');
  }
  if (opts.full && isActive(src.state)) {
    const hint = `\`vms stop ${q(opts.source)}\` first, or make an instant linked clone`;
    const message = `${opts.source} is running: a full copy needs it shut off`;
    throw new VmsError('conflict', message, hint, undefined, 'clone.fullRunning', { source: opts.source });
  }
  if (isActive(src.state)) {
    // The snapshot works on the running disks; the clone is built from the saved ones: they must be the same.
    const live = await virsh.diskSources(opts.source);
    const saved = new Map(src.facts.disks.filter((d) => d.path).map((d) => [d.target, d.path!]));
    if (live.size !== saved.size || [...live].some(([t, p]) => saved.get(t) !== p)) {
      throw conflict(`${opts.source}'s running disks differ from its saved definition (a disk attached or removed live)`, `stop ${opts.source} and start it again, then clone`);
    }
  }
  return src;
}

async function makeClone(ctx: Context, opts: CloneOptions, src: LoadedVm, undo: UndoStack): Promise<Omit<CloneResult, keyof VmInfo>> {
  const { progress, virsh, qemuImg, config } = ctx;
  const disks = ownDisks(src.facts);
  const files = vmFiles(config, opts.name);
  await makeVmDir(files, undo);
  const newDisks = new Map<string, string>();
  for (const [i, d] of disks.entries()) newDisks.set(d.target, await claimDiskPath(config.imagesDir.value, diskStem(opts.name, d.target, i), undo));
  let frozen: { overlays: Map<string, string>; quiesced: boolean } | undefined;
  const writable: string[] = [];
  if (opts.full) {
    await progress.step(`Copying ${disks.length} disk(s)`, async () => {
      for (const d of disks) await qemuImg.convert(d.path!, d.format ?? 'qcow2', newDisks.get(d.target)!);
    });
  } else {
    frozen = await progress.step(`Freezing ${opts.source}'s disk as a read-only base`, () => freezeSource(ctx, src, undo));
    await progress.step('Creating overlays', async () => {
      for (const d of disks) await qemuImg.createOverlay(newDisks.get(d.target)!, d.path!);
    });
    // Nothing may ever write to a base again: read-only at once, before any VM records it as a base (and before NEW
    // starts: libvirt then gives the base to the qemu user). A SRC started by someone meanwhile cannot write it either.
    for (const d of disks) if (!(await makeBaseReadOnly(ctx, d.path!, opts.source, undo))) writable.push(d.path!);
  }
  ctx.signal?.throwIfAborted();

  if (src.facts.nvramPath && existsSync(src.facts.nvramPath)) await copyNvram(ctx, src.facts.nvramPath, files.nvram);
  // The clone's guest has SRC's root password and user: keep them with it, for `vms apply` and logins.
  const srcFiles = vmFiles(config, opts.source);
  for (const f of ['password', 'settings'] as const) {
    if (!existsSync(srcFiles[f])) continue;
    await copyFile(srcFiles[f], files[f]);
    await chmod(files[f], 0o600);
  }
  const frozenPaths = disks.map((d) => d.path!);
  const bases = opts.full ? [] : [...frozenPaths, ...src.facts.metadata.bases];
  const definition = await cloneDefinition(src.domain, {
    name: opts.name,
    disks: newDisks,
    nvram: src.facts.firmware === 'efi' ? files.nvram : undefined,
    serialSocket: files.serialSocket,
    consoleOwner: chardevOwner(ctx),
    serialLog: files.serialLog,
    metadata: { ...src.facts.metadata, created: new Date().toISOString(), createdFrom: opts.source, bases, made: [...newDisks.values()] },
  });
  await progress.step(`Defining ${opts.name}`, async () => {
    await undo.add(`undefine ${opts.name}`, { kind: 'undefine', vm: opts.name });
    await virsh.define(await buildDomainXml(definition));
  });
  ctx.signal?.throwIfAborted();

  if (frozen) {
    await progress.step(`Switching ${opts.source} to its overlay`, async () => {
      // For a running SRC this matches what libvirt already did to its definition with the snapshot.
      if (!isActive(src.state)) await undo.add(`restore ${opts.source}'s definition`, { kind: 'define', xml: await buildDomainXml(src.domain) });
      const switched = withDiskSources(src.domain, frozen!.overlays);
      // SRC's frozen disks are bases now; the overlays it goes on from are the files vms made for it.
      const made = [...src.facts.metadata.made.filter((f) => !frozenPaths.includes(f)), ...frozen!.overlays.values()];
      await virsh.define(await buildDomainXml(await withMetadata(switched, { ...src.facts.metadata, bases, made })));
      // Started by someone meanwhile, it would be writing into what is now NEW's base: undo it all.
      if (!isActive(src.state) && isActive(await virsh.state(opts.source))) {
        throw conflict(`${opts.source} was started while it was being cloned`, `nothing was changed: stop ${opts.source} and clone again, or clone it running`);
      }
    });
  }
  if (opts.start) {
    await progress.step(`Starting ${opts.name}`, async () => {
      await undo.add(`stop ${opts.name}`, { kind: 'power-off', vm: opts.name });
      await virsh.start(opts.name);
    });
  }
  return { linked: !opts.full, frozen: frozen ? frozenPaths : [], writable, quiesced: frozen?.quiesced ?? false };
}
