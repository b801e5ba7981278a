import { existsSync } from 'node:fs';
import { chmod, copyFile, stat } from 'node:fs/promises';
import { conflict, usageError, VmsError } from '../../errors.js';
import { buildDomainXml, type DiskFacts, type XmlNode } from '../../libvirt/domain-parse.js';
import { GuestAgent } from '../../libvirt/guest-agent.js';
import { cloneDefinition, withDiskSources, withMetadata } from '../../libvirt/domain-edit.js';
import type { Config } from '../../config.js';
import { validateName } from '../../names.js';
import { shellQuote as q } from '../../quote.js';
import type { Context } from '../context.js';
import { vmInfo, type VmInfo } from './info.js';
import { withOperation, undoOptions } from '../ops/operation.js';
import { withUndo, type UndoStack } from '../ops/undo.js';
import { chardevOwner, claimDiskPath, makeVmDir, vmFiles, type VmFiles } from './vm-files.js';
import { isActive, loadVm, ownDisks, redefine, type LoadedVm } from './vm.js';

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
    ctx.progress.note(
      `${path} stays writable: it belongs to the qemu user while ${source} runs (\`sudo chmod 444 ${q(path)}\` protects it)`,
    );
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
async function freezeSource(
  ctx: Context,
  src: LoadedVm,
  undo: UndoStack,
): Promise<{ overlays: Map<string, string>; quiesced: boolean }> {
  const disks = ownDisks(src.facts);
  const overlays = new Map<string, string>();
  for (const [i, d] of disks.entries()) {
    overlays.set(
      d.target,
      await claimDiskPath(ctx.config.imagesDir.value, diskStem(src.facts.name, d.target, i), undo),
    );
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
  const quiesced = await new GuestAgent(ctx.virsh, name).answers();
  const others = src.facts.disks.filter((d) => !overlays.has(d.target)).map((d) => d.target);
  await ctx.virsh.snapshotToOverlays(
    name,
    [...overlays].map(([target, file]) => ({ target, file })),
    others,
    quiesced,
  );
  return { overlays, quiesced };
}

export async function cloneVm(ctx: Context, opts: CloneOptions): Promise<CloneResult> {
  validateName(opts.name);
  validateName(opts.source);
  // SRC and NEW, and the host's bases: no other command may change them, or judge a base unused, meanwhile.
  return withOperation(ctx, { command: 'clone', vms: [opts.source, opts.name], host: true }, async (ctx) => {
    const src = await ctx.progress.step('Checking input', () => checkClone(ctx, opts));
    const plan = planClone(ctx.config, opts, src);
    const result = await withUndo((undo) => makeClone(ctx, plan, undo), undoOptions(ctx));
    return { ...(await vmInfo({ ...ctx, virsh: ctx.virsh.uninterruptible() }, opts.name)), ...result };
  });
}

/** Refuses, before anything changes, a clone that cannot work or would freeze what is not vms's to freeze. */
async function checkClone(ctx: Context, opts: CloneOptions): Promise<LoadedVm> {
  const { virsh } = ctx;
  const src = await loadVm(ctx, opts.source);
  if (await virsh.exists(opts.name))
    throw conflict(`a VM named '${opts.name}' already exists`, 'pick another name for the clone');
  const notFile = src.facts.disks.find((d) => d.device === 'disk' && !d.readonly && d.type !== 'file');
  if (notFile)
    throw usageError(
      `${opts.source}'s disk ${notFile.target} is not a plain file (${notFile.type})`,
      'vms clones only file-backed disks: copy it by hand',
    );
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
      throw conflict(
        `${opts.source}'s running disks differ from its saved definition (a disk attached or removed live)`,
        `stop ${opts.source} and start it again, then clone`,
      );
    }
  }
  return src;
}

/** What a clone makes, worked out from SRC (as checked) before anything is made. */
interface ClonePlan {
  opts: CloneOptions;
  src: LoadedVm;
  /** SRC's own disks (writable files), in order: each gets a new file for NEW; a linked clone freezes them. */
  disks: DiskFacts[];
  /** NEW's files. */
  files: VmFiles;
  /** The disks a linked clone freezes as bases (none for a full copy). */
  frozen: string[];
  /** The bases both VMs stand on afterwards: the frozen disks and those SRC already stood on. */
  bases: string[];
}

function planClone(config: Config, opts: CloneOptions, src: LoadedVm): ClonePlan {
  const disks = ownDisks(src.facts);
  const frozen = opts.full ? [] : disks.map((d) => d.path!);
  const bases = opts.full ? [] : [...frozen, ...src.facts.metadata.bases];
  return { opts, src, disks, files: vmFiles(config, opts.name), frozen, bases };
}

interface ClonedDisks {
  /** NEW's disk files: target → file. */
  disks: Map<string, string>;
  /** A linked clone: SRC's new overlays (target → file), and whether the running SRC's guest was quiesced. */
  frozen?: { overlays: Map<string, string>; quiesced: boolean };
  /** Bases left writable (see makeBaseReadOnly). */
  writable: string[];
}

/** NEW's directory and disks: copies of SRC's (full), or overlays over SRC's disks frozen as read-only bases. */
async function cloneDisks(ctx: Context, plan: ClonePlan, undo: UndoStack): Promise<ClonedDisks> {
  const { progress, qemuImg, config } = ctx;
  const { opts, disks } = plan;
  await makeVmDir(plan.files, undo);
  const newDisks = new Map<string, string>();
  for (const [i, d] of disks.entries()) {
    newDisks.set(d.target, await claimDiskPath(config.imagesDir.value, diskStem(opts.name, d.target, i), undo));
  }
  const writable: string[] = [];
  if (opts.full) {
    await progress.step(`Copying ${disks.length} disk(s)`, async () => {
      for (const d of disks) await qemuImg.convert(d.path!, d.format ?? 'qcow2', newDisks.get(d.target)!);
    });
    return { disks: newDisks, writable };
  }
  const freezing = `Freezing ${opts.source}'s disk as a read-only base`;
  const frozen = await progress.step(freezing, () => freezeSource(ctx, plan.src, undo));
  await progress.step('Creating overlays', async () => {
    for (const d of disks) await qemuImg.createOverlay(newDisks.get(d.target)!, d.path!);
  });
  // Nothing may ever write to a base again: read-only at once, before any VM records it as a base (and before NEW
  // starts: libvirt then gives the base to the qemu user). A SRC started by someone meanwhile cannot write it either.
  for (const d of disks) if (!(await makeBaseReadOnly(ctx, d.path!, opts.source, undo))) writable.push(d.path!);
  return { disks: newDisks, frozen, writable };
}

/** SRC's UEFI variables, and its guest's root password and user: NEW's guest has them too (`vms apply`, logins). */
async function copyVmFiles(ctx: Context, { opts, src, files }: ClonePlan): Promise<void> {
  if (src.facts.nvramPath && existsSync(src.facts.nvramPath)) await copyNvram(ctx, src.facts.nvramPath, files.nvram);
  const srcFiles = vmFiles(ctx.config, opts.source);
  for (const f of ['password', 'settings'] as const) {
    if (!existsSync(srcFiles[f])) continue;
    await copyFile(srcFiles[f], files[f]);
    await chmod(files[f], 0o600);
  }
}

/** NEW's definition: SRC's, on NEW's disks and files, recording the files vms made for it and the bases under it. */
async function defineClone(ctx: Context, plan: ClonePlan, disks: Map<string, string>, undo: UndoStack): Promise<void> {
  const { opts, src, files } = plan;
  const definition = await cloneDefinition(src.domain, {
    name: opts.name,
    disks,
    nvram: src.facts.firmware === 'efi' ? files.nvram : undefined,
    serialSocket: files.serialSocket,
    consoleOwner: chardevOwner(ctx),
    serialLog: files.serialLog,
    metadata: {
      ...src.facts.metadata,
      created: new Date().toISOString(),
      createdFrom: opts.source,
      bases: plan.bases,
      made: [...disks.values()],
    },
  });
  await ctx.progress.step(`Defining ${opts.name}`, async () => {
    await undo.add(`undefine ${opts.name}`, { kind: 'undefine', vm: opts.name });
    await ctx.virsh.define(await buildDomainXml(definition));
  });
}

/** A linked clone's SRC goes on from its overlays, its frozen disks now bases; undone if it was started meanwhile. */
async function switchSource(ctx: Context, plan: ClonePlan, overlays: ReadonlyMap<string, string>, undo: UndoStack) {
  const { src } = plan;
  const name = plan.opts.source;
  await ctx.progress.step(`Switching ${name} to its overlay`, async () => {
    // For a running SRC this matches what libvirt already did to its definition with the snapshot (the unfreeze
    // registered then takes it back): no restore of its own.
    const running = isActive(src.state);
    // SRC's frozen disks are bases now; the overlays it goes on from are the files vms made for it.
    const made = [...src.facts.metadata.made.filter((f) => !plan.frozen.includes(f)), ...overlays.values()];
    const metadata = { ...src.facts.metadata, bases: plan.bases, made };
    const switched = (domain: XmlNode) => withMetadata(withDiskSources(domain, overlays), metadata);
    await redefine(ctx, src, switched, running ? undefined : undo);
    // Started by someone meanwhile, it would be writing into what is now NEW's base: undo it all.
    if (!running && isActive(await ctx.virsh.state(name))) {
      throw conflict(
        `${name} was started while it was being cloned`,
        `nothing was changed: stop ${name} and clone again, or clone it running`,
      );
    }
  });
}

/** Makes the clone, each step's undo registered before it: NEW's disks and files, its definition, SRC switched over. */
async function makeClone(ctx: Context, plan: ClonePlan, undo: UndoStack): Promise<Omit<CloneResult, keyof VmInfo>> {
  const { opts } = plan;
  const made = await cloneDisks(ctx, plan, undo);
  ctx.signal?.throwIfAborted();
  await copyVmFiles(ctx, plan);
  await defineClone(ctx, plan, made.disks, undo);
  ctx.signal?.throwIfAborted();
  if (made.frozen) await switchSource(ctx, plan, made.frozen.overlays, undo);
  if (opts.start) {
    await ctx.progress.step(`Starting ${opts.name}`, async () => {
      await undo.add(`stop ${opts.name}`, { kind: 'power-off', vm: opts.name });
      await ctx.virsh.start(opts.name);
    });
  }
  return { linked: !opts.full, frozen: plan.frozen, writable: made.writable, quiesced: made.frozen?.quiesced ?? false };
}
