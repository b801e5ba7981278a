import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { VmsError, conflict, hasReason, notFound, usageError } from '../../errors.js';
import { buildDomainXml, domainFacts, parseDomainXml } from '../../libvirt/domain-parse.js';
import { parseSnapshotXml, type SnapshotFacts } from '../../libvirt/snapshot-xml.js';
import { virshCommand, type DomainState } from '../../libvirt/virsh.js';
import { validateName } from '../../names.js';
import type { Context } from '../context.js';
import { undoOptions, withOperation } from '../ops/operation.js';
import { guardInternalData, internalDataBlocker } from './snapshot-guard.js';
import { mergeOverlaysBack } from '../ops/undo-actions.js';
import { withUndo } from '../ops/undo.js';
import { vmFiles } from './vm-files.js';
import { addMade, dropMade, redefineMetadata, metadataAfterRevert } from './vm-metadata.js';
import { isActive, loadVm, ownDisks, type LoadedVm } from './vm.js';
import { shellQuote as q } from '../../quote.js';
import { checkXmlText } from '../../libvirt/xml-text.js';

// Snapshots through libvirt: internal ones (inside the qcow2 disks, with the RAM of a running VM) by default, external
// ones (overlay files, plus a memory file when running) with --external. What libvirt 9.0 can and cannot do with them
// (UEFI, reverting external snapshots) is found out from libvirt itself and explained.

export interface SnapshotInfo extends SnapshotFacts {
  vm: string;
  /** libvirt's current snapshot: the one the VM's present state descends from. */
  current: boolean;
  /**
   * `vms snapshot revert` can go back to it: not an external one on a libvirt before 9.9, nor an internal one whose
   * file vms may not write any more (a base frozen by `vms clone`, an overlay put over it since).
   */
  revertable: boolean;
}

/** The libvirt releases that lifted the limits vms runs into (libvirt's NEWS). */
const EXTERNAL_REVERT_SINCE = '9.9';
const UEFI_INTERNAL_SINCE = '10.10';

/** A snapshot name becomes part of file names (external overlays, memory files): the same rules as a VM name. */
function validateSnapshotName(name: string): void {
  try {
    validateName(name);
  } catch (err) {
    throw usageError(`invalid snapshot name '${name}'`, (err as VmsError).hint);
  }
}

/** The default name: the UTC time, e.g. 20261122-053116. */
export const defaultSnapshotName = (now: Date) => now.toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');

const snapshotNames = (ctx: Context, vm: string) => ctx.virsh.snapshotNames(vm);

async function readSnapshot(ctx: Context, vm: string, snapshot: string): Promise<SnapshotFacts> {
  try {
    return await ctx.virsh.snapshot(vm, snapshot);
  } catch (err) {
    if (!hasReason(err, 'snapshot.notFound')) throw err;
    throw notFound(`${vm} has no snapshot named '${snapshot}'`, `\`vms snapshot list ${q(vm)}\` shows its snapshots`);
  }
}

async function libvirtVersion(ctx: Context): Promise<string> {
  return (await ctx.virsh.daemonVersion()) ?? '(unknown version)';
}

/** libvirt announces that it can revert (and delete) external snapshots with <externalSnapshot/> among the guest features. */
async function canRevertExternal(ctx: Context): Promise<boolean> {
  return /<externalSnapshot\/>/.test(await ctx.virsh.capabilities());
}

export async function listSnapshots(ctx: Context, vm: string): Promise<SnapshotInfo[]> {
  validateName(vm);
  const names = await snapshotNames(ctx, vm);
  if (names.length === 0) return [];
  // One virsh process for all of them; "snapshot-current" fails (undefined) when there is no current snapshot.
  const [current, saved, ...xmls] = await ctx.virsh.batch([
    virshCommand.snapshotCurrent(vm),
    virshCommand.dumpxml(vm, { inactive: true }),
    ...names.map((n) => virshCommand.snapshotDumpxml(vm, n)),
  ]);
  const vmFacts = saved ? domainFacts(await parseDomainXml(saved)) : undefined;
  let external: boolean | undefined; // asked once, when there is an external snapshot
  const list: SnapshotInfo[] = [];
  for (const xml of xmls) {
    if (!xml) continue; // deleted meanwhile
    const facts = await parseSnapshotXml(xml);
    const revertable =
      facts.kind === 'external'
        ? (external ??= await canRevertExternal(ctx))
        : Boolean(vmFacts && !internalDataBlocker(facts, vmFacts));
    list.push({ vm, ...facts, current: facts.name === current?.trim(), revertable });
  }
  return list.sort((a, b) => a.created.localeCompare(b.created) || a.name.localeCompare(b.name));
}

export interface CreateSnapshotOptions {
  vm: string;
  /** Default: the time (defaultSnapshotName). */
  name?: string;
  description?: string;
  external: boolean;
}

/** Refuses, before anything changes, what cannot work: a name taken, an internal snapshot of a disk that is not qcow2. */
async function checkCreate(ctx: Context, opts: CreateSnapshotOptions, name: string): Promise<LoadedVm> {
  const vm = await loadVm(ctx, opts.vm);
  if ((await snapshotNames(ctx, opts.vm)).includes(name)) {
    throw conflict(
      `${opts.vm} already has a snapshot named '${name}'`,
      `pick another name, or \`vms snapshot delete ${q(opts.vm)} ${q(name)}\` first`,
    );
  }
  const notQcow2 = ownDisks(vm.facts).find((d) => d.format !== 'qcow2');
  if (!opts.external && notQcow2) {
    throw new VmsError(
      'usage',
      `${opts.vm}'s disk ${notQcow2.target} (${notQcow2.path}) is ${notQcow2.format ?? 'of an unknown format'}: internal snapshots need qcow2 disks`,
      'take an external one: the disk is kept as it is and the VM goes on from a qcow2 overlay on top of it',
      undefined,
      'snapshot.internalNeedsQcow2',
    );
  }
  return vm;
}

/** libvirt 9.0's refusal, told with what to do instead. */
async function uefiRefusal(ctx: Context, vm: string): Promise<VmsError> {
  return new VmsError(
    'conflict',
    `internal snapshots of a running UEFI VM need libvirt ≥ ${UEFI_INTERNAL_SINCE} with the NVRAM in qcow2 format (this is libvirt ${await libvirtVersion(ctx)})`,
    `take an external one, or shut ${vm} off first: ` +
      'an internal snapshot of a shut-off UEFI VM works (its disks, without the NVRAM)',
    undefined,
    'snapshot.uefiInternal',
    { vm },
  );
}

/** Under opts.vm's lock (src/core/operation.ts). */
export function createSnapshot(ctx: Context, opts: CreateSnapshotOptions) {
  return withOperation(ctx, { command: 'snapshot create', vms: [opts.vm] }, (ctx) => createSnapshotLocked(ctx, opts));
}

async function createSnapshotLocked(ctx: Context, opts: CreateSnapshotOptions): Promise<SnapshotInfo> {
  const name = opts.name ?? defaultSnapshotName(new Date());
  validateSnapshotName(name);
  if (opts.description !== undefined) checkXmlText(opts.description, 'the description', "the snapshot's XML");
  const before = await ctx.progress.step('Checking input', () => checkCreate(ctx, opts, name));
  const { facts, state } = before;
  const running = isActive(state);
  const memoryFile =
    opts.external && running ? join(vmFiles(ctx.config, opts.vm).dir, `snapshot-${name}.mem`) : undefined;
  if (memoryFile && existsSync(memoryFile))
    throw conflict(`${memoryFile} already exists`, 'remove it (a leftover?) or pick another snapshot name');

  const kind = opts.external ? 'external' : 'internal';
  const what = running ? 'disks and memory' : 'disks';
  // Ctrl-C means "not this snapshot": once libvirt has started one it finishes it whatever we do, so an interrupt is
  // answered by deleting it again (an external one merged back, the VM on its old disk), never by leaving it behind
  // under an exit status that says nothing was made.
  const clean = { ...ctx, virsh: ctx.virsh.uninterruptible() };
  const taken = await withUndo(async (undo) => {
    await ctx.progress.step(`Taking ${kind} snapshot ${name} of ${opts.vm} (${what})`, async () => {
      const definition = await buildDomainXml(before.domain);
      await undo.add(`delete snapshot ${name} of ${opts.vm}`, {
        kind: 'take-back-snapshot',
        vm: opts.vm,
        snapshot: name,
        definition,
        memoryFile,
      });
      if (memoryFile) await mkdir(dirname(memoryFile), { recursive: true });
      const request = { vm: opts.vm, name, description: opts.description, external: opts.external, memoryFile };
      try {
        await clean.virsh.createSnapshot(request); // waited for: libvirt finishes it anyway
      } catch (err) {
        // --atomic: the snapshot was not taken; a partial memory file may be.
        if (memoryFile) await rm(memoryFile, { force: true });
        if (hasReason(err, 'snapshot.uefiUnsupported')) throw await uefiRefusal(ctx, opts.vm);
        throw err;
      }
    });
    ctx.signal?.throwIfAborted();
    const snapshot = await readSnapshot(ctx, opts.vm, name);
    // The overlays and the memory file are vms' own: destroy removes them with the VM.
    const files = madeBy(snapshot);
    if (files.length)
      await ctx.progress.step(`Recording ${files.length} new file(s) in ${opts.vm}'s metadata`, () =>
        redefineMetadata(ctx.virsh, opts.vm, addMade(files)),
      );
    ctx.signal?.throwIfAborted();
    return snapshot;
  }, undoOptions(ctx));

  // Taken: from here on an interrupt changes nothing (it would only hide the result).
  if (facts.firmware === 'efi')
    ctx.progress.note('the UEFI NVRAM (boot entries) is not part of the snapshot: a revert leaves it as it is');
  const revertable = !opts.external || (await canRevertExternal(clean));
  if (!revertable) {
    ctx.progress.note(
      `libvirt ${await libvirtVersion(clean)} cannot revert to external snapshots (libvirt ≥ ${EXTERNAL_REVERT_SINCE} can); \`vms snapshot delete\` merges one back`,
    );
  }
  return { vm: opts.vm, ...taken, current: true, revertable };
}

/** The files an external snapshot made: the overlays it put the disks on, its memory file. */
const madeBy = (s: SnapshotFacts) => [
  ...s.disks.filter((d) => d.snapshot === 'external' && d.file).map((d) => d.file!),
  ...(s.memoryFile ? [s.memoryFile] : []),
];

/**
 * Undoes `snapshot create` if libvirt took the snapshot. An internal one is deleted. An external one is taken apart
 * by hand (libvirt 9.0 cannot delete one whose parent is internal): the overlays merged back into the disks under
 * them, libvirt's record of it dropped, the definition from before restored, the overlays and the memory file removed.
 */
export async function takeBackSnapshot(
  ctx: Context,
  vm: string,
  name: string,
  definition: string,
  memoryFile: string | undefined,
): Promise<void> {
  if ((await snapshotNames(ctx, vm)).includes(name)) {
    const snapshot = await readSnapshot(ctx, vm, name);
    if (snapshot.kind === 'internal') return void (await ctx.virsh.deleteSnapshot(vm, name));
    // What was written since goes back into the disks: live (blockcommit and pivot), or by qemu-img if it stopped since.
    await mergeOverlaysBack(ctx, vm, new Map(snapshot.disks.filter((d) => d.file).map((d) => [d.target, d.file!])));
    await ctx.virsh.deleteSnapshot(vm, name, { metadataOnly: true });
    await ctx.virsh.define(definition);
    for (const f of madeBy(snapshot)) await rm(f, { force: true });
  }
  if (memoryFile) await rm(memoryFile, { force: true }); // checked not to exist before: ours
}

/**
 * libvirt deletes the snapshot (an internal one's data in the qcow2; an external one's overlays merged into the
 * files under them and removed, the VM pivoted back) but leaves an external one's memory file: vms removes it, and
 * forgets in the metadata every file of the snapshot that is gone. Returns the files vms removed itself.
 */
async function removeSnapshot(ctx: Context, vm: string, snapshot: SnapshotFacts): Promise<string[]> {
  await ctx.virsh.deleteSnapshot(vm, snapshot.name);
  const removed = snapshot.memoryFile && existsSync(snapshot.memoryFile) ? [snapshot.memoryFile] : [];
  for (const f of removed) await rm(f, { force: true });
  const gone = madeBy(snapshot).filter((f) => !existsSync(f));
  if (gone.length) await redefineMetadata(ctx.virsh, vm, dropMade(gone));
  return removed;
}

export interface RevertPlan {
  vm: string;
  /** The VM's state now: what a revert throws away. */
  vmState: DomainState;
  snapshot: SnapshotFacts;
}

/** Everything a revert needs to know, checked before anything changes (the CLI shows it before asking). */
export async function planRevert(ctx: Context, vm: string, snapshot: string): Promise<RevertPlan> {
  const { state, facts: vmFacts } = await loadVm(ctx, vm);
  const facts = await readSnapshot(ctx, vm, snapshot);
  if (facts.kind === 'external' && !(await canRevertExternal(ctx))) {
    throw conflict(
      `libvirt ${await libvirtVersion(ctx)} cannot revert to an external snapshot (libvirt ≥ ${EXTERNAL_REVERT_SINCE} can)`,
      `nothing was changed; \`vms snapshot delete ${q(vm)} ${q(snapshot)}\` merges it into the present state. Internal snapshots (qcow2 disks; a UEFI VM shut off) can be reverted to`,
    );
  }
  guardInternalData(vmFacts, facts, 'revert');
  return { vm, vmState: state, snapshot: facts };
}

export interface RevertResult {
  name: string;
  snapshot: string;
  state: DomainState;
}

/** Under plan.vm's lock (src/core/operation.ts). */
export function revertSnapshot(ctx: Context, plan: RevertPlan) {
  return withOperation(ctx, { command: 'snapshot revert', vms: [plan.vm] }, (ctx) => revertSnapshotLocked(ctx, plan));
}

async function revertSnapshotLocked(ctx: Context, plan: RevertPlan): Promise<RevertResult> {
  const { vm, snapshot } = plan;
  // Checked again after the question: what vms knows now is what the revert must keep.
  const now = await loadVm(ctx, vm);
  guardInternalData(now.facts, snapshot, 'revert');
  const virsh = ctx.virsh.uninterruptible(); // half a revert is worse than a slow one
  await ctx.progress.step(`Reverting ${vm} to ${snapshot.name}`, async () => {
    await virsh.revertSnapshot(vm, snapshot.name);
    await redefineMetadata(virsh, vm, (reverted) => metadataAfterRevert(now.facts.metadata, reverted));
  });
  return { name: vm, snapshot: snapshot.name, state: await virsh.state(vm) };
}

export interface DeleteSnapshotResult {
  name: string;
  snapshot: string;
  kind: SnapshotFacts['kind'];
  /** Files vms removed after libvirt (an external snapshot's memory file). */
  removed: string[];
}

/**
 * Deleting an external snapshot merges its overlay into the file under it and removes the overlay: refused when a
 * linked clone stands on either (vms froze them as its base), since the clone would lose its base.
 */
async function refuseUnderClone(ctx: Context, vm: LoadedVm, snapshot: SnapshotFacts): Promise<void> {
  const bases = new Set(vm.facts.metadata.bases);
  for (const disk of snapshot.disks.filter((d) => d.snapshot === 'external' && d.file)) {
    const touched = existsSync(disk.file!)
      ? (await ctx.qemuImg.chain(disk.file!)).slice(0, 2).map((i) => i.filename)
      : [disk.file!];
    const base = touched.find((f) => bases.has(f));
    if (base) {
      throw conflict(
        `${snapshot.name}'s files are the base of a linked clone of ${vm.facts.name} (${base}): deleting it would change that base`,
        'nothing was changed: destroy the clones made since the snapshot first',
      );
    }
  }
}

/** Under vm's lock (src/core/operation.ts). */
export function deleteSnapshot(ctx: Context, vm: string, snapshot: string) {
  return withOperation(ctx, { command: 'snapshot delete', vms: [vm] }, (ctx) =>
    deleteSnapshotLocked(ctx, vm, snapshot),
  );
}

async function deleteSnapshotLocked(ctx: Context, vm: string, snapshot: string): Promise<DeleteSnapshotResult> {
  const loaded = await loadVm(ctx, vm);
  const facts = await readSnapshot(ctx, vm, snapshot);
  if (facts.kind === 'external') await refuseUnderClone(ctx, loaded, facts);
  else guardInternalData(loaded.facts, facts, 'delete');
  const clean = { ...ctx, virsh: ctx.virsh.uninterruptible() }; // a half-merged external snapshot is worse than a slow delete
  const removed = await ctx.progress.step(`Deleting snapshot ${snapshot} of ${vm}`, () =>
    removeSnapshot(clean, vm, facts),
  );
  return { name: vm, snapshot, kind: facts.kind, removed };
}
