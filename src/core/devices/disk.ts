import { rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { conflict, hasReason, notFound, usageError, VmsError } from '../../errors.js';
import type { XmlNode } from '../../libvirt/domain-parse.js';
import { editMetadata } from '../../libvirt/domain-edit.js';
import {
  COLD_PLUG_ONLY,
  diskByTargetXml,
  diskDevices,
  diskNode,
  diskXml,
  nextTarget,
  hasScsiController,
  SCSI_CONTROLLER_XML,
  withDisk,
  withoutDisk,
  type DiskBus,
  type DiskDevice,
} from '../../libvirt/disk-xml.js';
import { changeDevice, liveDomain, type Placed, type Where } from '../../libvirt/device-xml.js';
import { formatCommand } from '../../runner.js';
import { explainNoSlot } from './hotplug.js';
import { formatSize } from '../../size.js';
import { callerPath, type Context } from '../context.js';
import { pollUntil } from '../ops/poll.js';
import { withUndo, type UndoStack } from '../ops/undo.js';
import { describeUse, filesInUse, noteUnchecked, type FilesInUse } from '../storage/files-in-use.js';
import { claimDiskPath } from '../vm/vm-files.js';
import { redefine, type LoadedVm } from '../vm/vm.js';
import { loadVmDevices } from './vm-devices.js';
import { shellQuote as q } from '../../quote.js';
import { undoOptions, withOperation } from '../ops/operation.js';

// `vms disk`: add, attach, detach, list and grow a VM's disks, in its saved definition and, when it runs, live.
//
// Whose file is it? vms's only when vms made it: `disk add` records the new file in the VM's metadata.made, in the
// same define that adds the disk. A file the user attached is never deleted by vms, wherever it lies (the images dir
// too). `detach --delete` deletes only a recorded file that nothing else needs; a file detached without --delete
// stays recorded, so `vms gc` finds it once nothing uses it.

/** A VM's disks as libvirt has them: the saved definition and, while it runs, the live one. */
interface VmDisks {
  vm: LoadedVm;
  active: boolean;
  saved: DiskDevice[];
  live: DiskDevice[];
  /** The live domain (parsed) while running: its controllers count for hotplug. */
  liveDomain?: XmlNode;
  /** Both matched by target: the saved ones in their order, then those only the running VM has. */
  placed: Placed<DiskDevice>[];
}

async function loadDisks(ctx: Context, name: string): Promise<VmDisks> {
  const { vm, active, saved, live, liveDomain, placed } = await loadVmDevices(ctx, name, diskDevices, (d) => d.target);
  return { vm, active, saved, live: live ?? [], liveDomain, placed };
}

/**
 * libvirt's and QEMU's refusals that have a plain explanation and a fix. `scsiFits`: the running VM has a scsi
 * controller, so a scsi disk would need no PCIe slot of its own.
 */
function explainPlugError(err: unknown, name: string, path: string, scsiFits: boolean): unknown {
  if (!(err instanceof VmsError) || err.code !== 'failed') return err;
  const scsi = scsiFits ? ', or use --bus scsi: its controller holds many disks' : '';
  const stopFirst = `stop ${name} and try again (libvirt adds slots to a shut-off VM)${scsi}`;
  if (hasReason(err, 'pci.noSlots')) return explainNoSlot(err, name, 'the disk', stopFirst);
  if (hasReason(err, 'disk.locked')) {
    return conflict(
      `${path} is in use by a running VM (QEMU holds its lock)`,
      'stop the VM that uses it first, or attach a copy of it',
    );
  }
  return err;
}

function refuseColdPlugBus(
  bus: string | undefined,
  active: boolean,
  name: string,
  verb: 'plugged into' | 'unplugged from',
): void {
  if (active && bus && COLD_PLUG_ONLY.includes(bus)) {
    throw conflict(
      `a ${bus} disk cannot be ${verb} a running VM (QEMU's AHCI has no hotplug)`,
      `stop ${name} first (\`vms stop ${q(name)}\`)${verb === 'plugged into' ? ', or use --bus virtio or scsi' : ''}`,
    );
  }
}

export interface AttachedDisk {
  name: string;
  target: string;
  bus: DiskBus;
  path: string;
  format: string;
  size: number; // virtual size, bytes
  readonly: boolean;
  /** Plugged into the running VM too (else only in the saved definition, for its next start). */
  live: boolean;
  /** A writable file vms made for this VM (in its metadata.made): `vms destroy` removes it with the VM (unless another VM uses it). */
  destroyedWithVm: boolean;
  created: boolean;
}

interface PlugRequest {
  path: string;
  format: string;
  bus: DiskBus;
  readonly: boolean;
  size: number;
  created: boolean;
}

/**
 * Plugs a disk into the VM: picks a target free in both the saved and the live definition, adds a virtio-scsi
 * controller first when a scsi disk has none. Undone on failure (the controller, a half-done attach).
 */
async function plugDisk(ctx: Context, disks: VmDisks, req: PlugRequest, undo: UndoStack): Promise<AttachedDisk> {
  const name = disks.vm.facts.name;
  const target = nextTarget(
    req.bus,
    [...disks.saved, ...disks.live].map((d) => d.target),
  );
  // A scsi disk needs a scsi controller, in the saved definition and in the running VM: added (as index 0, free on
  // a side that has none) where it is missing.
  const lacking: Where = {
    live: Boolean(disks.liveDomain && !hasScsiController(disks.liveDomain)),
    config: !hasScsiController(disks.vm.domain),
  };
  if (req.bus === 'scsi' && (lacking.live || lacking.config)) {
    await ctx.progress.step(`Adding a virtio-scsi controller to ${name}`, async () => {
      await undo.add(`remove the scsi controller from ${name}`, {
        kind: 'remove-scsi-controller',
        vm: name,
        live: lacking.live,
        config: lacking.config,
      });
      await changeDevice(ctx.virsh, 'attach-device', name, SCSI_CONTROLLER_XML, lacking).catch((err) => {
        throw explainPlugError(err, name, req.path, false);
      });
    });
  }
  ctx.signal?.throwIfAborted();
  const spec = { path: req.path, format: req.format, bus: req.bus, target, readonly: req.readonly };
  await ctx.progress.step(`Attaching ${target} to ${name}`, async () => {
    // Registered first: an attach interrupted half-way may have taken effect on either side.
    await undo.add(`detach ${target} from ${name}`, {
      kind: 'unplug-disk',
      vm: name,
      target,
      path: req.path,
      created: req.created,
    });
    if (disks.active) {
      await changeDevice(ctx.virsh, 'attach-device', name, diskXml(spec), { live: true, config: false }).catch(
        (err) => {
          throw explainPlugError(err, name, req.path, req.bus !== 'scsi' && !lacking.live);
        },
      );
    }
    // The saved definition gets the disk and, for a file vms made, the file in its metadata.made: one define, so the
    // definition never holds a disk vms made without saying so (destroy and gc delete only what is recorded there).
    await redefine(ctx, name, async (d) => {
      const withIt = withDisk(d, await diskNode(spec));
      return req.created ? editMetadata(withIt, (m) => ({ ...m, made: [...m.made, req.path] })) : withIt;
    });
  });
  return {
    name,
    target,
    bus: req.bus,
    path: req.path,
    format: req.format,
    size: req.size,
    readonly: req.readonly,
    live: disks.active,
    destroyedWithVm: !req.readonly && (req.created || disks.vm.facts.metadata.made.includes(req.path)),
    created: req.created,
  };
}

/** Undoes plugDisk's controller step: the virtio-scsi controller goes again where it was added (and is still there). */
export async function removeScsiController(ctx: Context, name: string, lacking: Where): Promise<void> {
  const virsh = ctx.virsh.uninterruptible();
  const now = await loadDisks({ ...ctx, virsh }, name);
  const added = {
    // A VM stopped since has no running definition: nothing to take out of it.
    live: lacking.live && now.liveDomain !== undefined && hasScsiController(now.liveDomain),
    config: lacking.config && hasScsiController(now.vm.domain),
  };
  if (added.live || added.config) await changeDevice(virsh, 'detach-device', name, SCSI_CONTROLLER_XML, added);
}

/**
 * Undoes plugDisk's attach, whichever sides it reached: out of the running VM, out of the saved definition, and a
 * file vms made out of the metadata (its file itself goes with the claim's own undo step).
 */
export async function unplugDisk(
  ctx: Context,
  name: string,
  target: string,
  path: string,
  created: boolean,
): Promise<void> {
  const virsh = ctx.virsh.uninterruptible();
  const ours = (d: DiskDevice) => d.target === target && d.path === path;
  const now = await loadDisks({ ...ctx, virsh }, name);
  if (now.live.some(ours))
    await changeDevice(virsh, 'detach-device', name, diskByTargetXml(target), { live: true, config: false });
  if (now.saved.some(ours) || (created && now.vm.facts.metadata.made.includes(path))) {
    await redefine({ virsh }, name, (d) =>
      editMetadata(withoutDisk(d, target), (m) => ({
        ...m,
        made: created ? m.made.filter((f) => f !== path) : m.made,
      })),
    );
  }
}

/** Sizes go to QEMU in whole 512-byte sectors (rounded up). */
const wholeSectors = (bytes: number) => Math.ceil(bytes / 512) * 512;

export interface AddOptions {
  name: string;
  size: number; // bytes
  bus: DiskBus;
}

/** A new qcow2 in the images dir (`NAME-data.qcow2`, `NAME-data-2.qcow2`, …), attached to the VM. */
export async function addDisk(ctx: Context, opts: AddOptions): Promise<AttachedDisk> {
  return withOperation(ctx, { command: 'disk add', vms: [opts.name] }, async (ctx) => {
    const disks = await loadDisks(ctx, opts.name);
    refuseColdPlugBus(opts.bus, disks.active, opts.name, 'plugged into');
    const size = wholeSectors(opts.size);
    return withUndo(async (undo) => {
      const path = await claimDiskPath(ctx.config.imagesDir.value, `${opts.name}-data`, undo);
      await ctx.progress.step(`Creating disk ${path} (${formatSize(size)})`, () => ctx.qemuImg.create(path, size));
      ctx.signal?.throwIfAborted();
      return plugDisk(ctx, disks, { path, format: 'qcow2', bus: opts.bus, readonly: false, size, created: true }, undo);
    }, undoOptions(ctx));
  });
}

export interface AttachOptions {
  name: string;
  path: string;
  bus: DiskBus;
  readonly: boolean;
}

/**
 * A file any VM uses (its disk, a base in its chain, its NVRAM, an ISO, …) is never attached where a guest could write
 * it: that VM's data would be overwritten, or a base its overlays stand on would change under them. With --readonly it
 * may be attached when every VM that uses it only reads it (a frozen base, an ISO): QEMU opens it read-only and the
 * guest cannot write it, so nothing changes for them. A file some VM writes is refused even read-only: the reader would
 * see it change under it, and QEMU's image locks would stop that VM or this one from starting.
 */
function refuseImageInUse(inUse: FilesInUse, path: string, name: string, readonly: boolean): void {
  // Its own disk from before, named by one of its snapshots: attached again, it is where it was.
  const uses = inUse.usesOf(path).filter((u) => !(u.vm === name && u.role === 'disk' && u.snapshot));
  if (uses.length === 0) return;
  const writers = uses.filter((u) => u.access !== 'read');
  if (readonly && writers.length === 0) return;
  const shown = writers[0] ?? uses[0]!;
  const others = [...new Set(uses.map((u) => u.vm))].filter((vm) => vm !== shown.vm);
  const copy = `attach a copy of it (${formatCommand('cp', ['--sparse=always', path, 'COPY'])}${writers.length ? `, with ${shown.vm} shut off` : ''})`;
  throw new VmsError(
    'conflict',
    `${path} is in use: it is ${describeUse(shown)}${others.length ? `, and used by ${others.join(', ')}` : ''}`,
    writers.length
      ? `${copy}; vms attaches no file another VM writes, not even read-only`
      : `${copy}, or attach it read-only: the VMs that use it only read it`,
    undefined,
    writers.length ? 'disk.inUse' : 'disk.inUseReadable',
    { copy },
  );
}

/** An existing image file (qcow2 or raw, as qemu-img reads it), attached as it is: vms never changes it here. */
export async function attachDisk(ctx: Context, opts: AttachOptions): Promise<AttachedDisk> {
  return withOperation(ctx, { command: 'disk attach', vms: [opts.name], host: true }, async (ctx) => {
    const path = callerPath(ctx, opts.path);
    if (opts.readonly && opts.bus === 'sata') {
      const message = 'a read-only disk cannot be on the sata bus (libvirt refuses it)';
      throw new VmsError('usage', message, 'put it on the virtio or scsi bus', undefined, 'disk.readonlySata');
    }
    const disks = await loadDisks(ctx, opts.name);
    const file = await stat(path).catch(() => undefined);
    if (!file)
      throw notFound(`no file ${path}`, 'give the path of an existing disk image; `vms disk add` makes a new one');
    if (!file.isFile())
      throw usageError(`${path} is not a regular file`, 'vms attaches disk image files (qcow2 or raw)');
    const already = [...disks.saved, ...disks.live].find((d) => d.path === path);
    if (already)
      throw conflict(
        `${path} is already attached to ${opts.name} as ${already.target}`,
        `\`vms disk list ${q(opts.name)}\` shows its disks`,
      );
    await ctx.progress.step('Checking which VMs use it', async () => {
      const inUse = await filesInUse(ctx);
      refuseImageInUse(inUse, path, opts.name, opts.readonly);
      noteUnchecked(ctx, inUse, path);
    });
    // A frozen base (vms makes them 0444) or any file without write permission must never be written through a VM.
    if (!opts.readonly && (file.mode & 0o222) === 0) {
      const hint = 'attach it read-only, or attach a copy of it';
      throw new VmsError('conflict', `${path} is read-only (a clone's base?)`, hint, undefined, 'disk.readOnlyFile');
    }
    refuseColdPlugBus(opts.bus, disks.active, opts.name, 'plugged into');
    const info = await ctx.qemuImg.info(path);
    if (info.format !== 'qcow2' && info.format !== 'raw') {
      throw usageError(
        `${path} is a ${info.format} image: vms attaches qcow2 and raw images`,
        `convert it: qemu-img convert -O qcow2 ${q(path)} NEW.qcow2`,
      );
    }
    return withUndo(
      (undo) =>
        plugDisk(
          ctx,
          disks,
          {
            path,
            format: info.format,
            bus: opts.bus,
            readonly: opts.readonly,
            size: info['virtual-size'],
            created: false,
          },
          undo,
        ),
      undoOptions(ctx),
    );
  });
}

/** A disk by target (vdb) or by its file's path, looked up in the saved and the live definition. */
function findDisk(disks: VmDisks, which: string, cwd: string): { saved?: DiskDevice; live?: DiskDevice } {
  const path = which.includes('/') ? resolve(cwd, which) : undefined;
  const matches = (d: DiskDevice) => d.device === 'disk' && (path ? d.path === path : d.target === which);
  const found = { saved: disks.saved.find(matches), live: disks.live.find(matches) };
  if (!found.saved && !found.live) {
    const name = disks.vm.facts.name;
    throw notFound(
      `${name} has no disk ${which}`,
      `\`vms disk list ${q(name)}\` shows its disks (by target, e.g. vdb, or by path)`,
    );
  }
  return found;
}

export interface DetachOptions {
  name: string;
  disk: string; // target or path
  delete: boolean;
}

export interface DetachResult {
  name: string;
  target: string;
  path?: string;
  /** Where it was removed from: the saved definition, the running VM, or both. */
  inConfig: boolean;
  live: boolean;
  deleted: boolean;
}

/**
 * `detach --delete` deletes only a file vms made for this VM (its metadata.made) that nothing else needs: no other VM
 * and no snapshot of this one (a revert would want it back); and not while a VM that might use it cannot be read.
 * Decided before anything changes.
 */
async function refuseDelete(
  ctx: Context,
  disks: VmDisks,
  path: string | undefined,
  saved: DiskDevice | undefined,
): Promise<void> {
  const name = disks.vm.facts.name;
  const refuse = (why: string) =>
    new VmsError(
      'conflict',
      `vms will not delete ${path ?? 'that disk'}: ${why}`,
      'nothing was changed; detach it and keep the file',
      undefined,
      'disk.notDeletable',
    );
  if (!path || !saved || !disks.vm.facts.metadata.made.includes(path)) throw refuse(`vms did not make it for ${name}`);
  const inUse = await filesInUse(ctx);
  const other = inUse.usesOf(path).find((u) => !(u.vm === name && u.role === 'disk' && !u.snapshot));
  if (other) throw refuse(`it is also ${describeUse(other)}`);
  const unknown = inUse.unreadable.find((u) => u.incomplete);
  if (unknown) throw refuse(`VM ${unknown.vm} might use it and cannot be read (${unknown.reason})`);
}

/** How long a running guest may take to let go of an unplugged disk (TCG guests are slow to answer the hot-unplug). */
const RELEASE_TIMEOUT_MS = 30_000;

export async function detachDisk(ctx: Context, opts: DetachOptions): Promise<DetachResult> {
  return withOperation(ctx, { command: 'disk detach', vms: [opts.name], host: true }, async (ctx) => {
    const disks = await loadDisks(ctx, opts.name);
    const { saved, live } = findDisk(disks, opts.disk, ctx.host.cwd);
    const disk = (live ?? saved)!;
    const boot = disks.saved.find((d) => d.device === 'disk');
    if (boot?.target === disk.target) {
      throw conflict(
        `${disk.target} is ${opts.name}'s boot disk: vms does not detach it`,
        `\`vms destroy ${q(opts.name)}\` removes the VM with its disk`,
      );
    }
    if (live) refuseColdPlugBus(live.bus, true, opts.name, 'unplugged from');
    const path = (saved ?? live)!.path;
    if (opts.delete) await refuseDelete(ctx, disks, path, saved);
    await ctx.progress.step(`Detaching ${disk.target} from ${opts.name}`, async () => {
      if (live)
        await changeDevice(ctx.virsh, 'detach-device', opts.name, diskByTargetXml(disk.target), {
          live: true,
          config: false,
        });
      // A deleted file leaves metadata.made with it, in the same define: no record of a file that is gone (or of
      // another file that might be put at its path later).
      if (saved) {
        await redefine(ctx, opts.name, (d) =>
          opts.delete
            ? editMetadata(withoutDisk(d, disk.target), (m) => ({ ...m, made: m.made.filter((f) => f !== path) }))
            : withoutDisk(d, disk.target),
        );
      }
      if (live) await waitForRelease(ctx, opts.name, disk.target);
    });
    if (opts.delete) await ctx.progress.step(`Deleting ${path}`, () => rm(path!, { force: true }));
    return {
      name: opts.name,
      target: disk.target,
      path,
      inConfig: Boolean(saved),
      live: Boolean(live),
      deleted: opts.delete,
    };
  });
}

/** A live unplug completes when the guest lets go; until then QEMU still has the file open. */
async function waitForRelease(ctx: Context, name: string, target: string): Promise<void> {
  const released = async () => {
    const live = await liveDomain(ctx.virsh, name, true);
    return !diskDevices(live!).some((d) => d.target === target);
  };
  await pollUntil(released, {
    timeoutMs: RELEASE_TIMEOUT_MS,
    signal: ctx.signal,
    timeoutError: () =>
      new VmsError(
        'timeout',
        `${name}'s guest has not released ${target} within ${RELEASE_TIMEOUT_MS / 1000}s`,
        'it is out of the saved definition and goes from the running VM when the guest lets go of it (or at the next stop); no file was deleted',
      ),
  });
}

export interface DiskRow {
  target: string;
  bus?: string;
  device: string; // disk | cdrom
  path?: string;
  format?: string;
  virtualSize?: number; // bytes
  actualSize?: number; // bytes used on the host
  readonly: boolean;
  backing?: string;
  /** In the saved definition (what the next start uses). */
  inConfig: boolean;
  /** In the running VM; undefined when it is not running. */
  live?: boolean;
}

/** Every disk and cdrom: the saved ones in their order, then any the running VM has only live. */
export async function listDisks(ctx: Context, name: string): Promise<DiskRow[]> {
  const disks = await loadDisks(ctx, name);
  const rows: DiskRow[] = [];
  for (const { device: d, inConfig, live } of disks.placed) {
    const info = d.path ? await ctx.qemuImg.info(d.path).catch(() => undefined) : undefined;
    rows.push({
      target: d.target,
      bus: d.bus,
      device: d.device,
      path: d.path,
      format: d.format ?? info?.format,
      virtualSize: info?.['virtual-size'],
      actualSize: info?.['actual-size'],
      readonly: d.readonly,
      backing: info?.['full-backing-filename'] ?? info?.['backing-filename'],
      inConfig,
      live,
    });
  }
  return rows;
}

export interface ResizeOptions {
  name: string;
  disk: string; // target or path
  size: number; // bytes
}

export interface ResizeResult {
  name: string;
  target: string;
  path: string;
  from: number;
  to: number;
  changed: boolean;
  /** Grown in the running VM (the guest sees the new size at once). */
  live: boolean;
}

/** Grows a disk (never shrinks: that would cut off whatever the guest keeps at its end). */
export async function resizeDisk(ctx: Context, opts: ResizeOptions): Promise<ResizeResult> {
  return withOperation(ctx, { command: 'disk resize', vms: [opts.name] }, async (ctx) => {
    const disks = await loadDisks(ctx, opts.name);
    const { saved, live } = findDisk(disks, opts.disk, ctx.host.cwd);
    const disk = (live ?? saved)!;
    if (disk.readonly) throw conflict(`${disk.target} of ${opts.name} is read-only`, 'vms grows only writable disks');
    if (!disk.path || disk.type !== 'file')
      throw usageError(`${disk.target} of ${opts.name} is not a disk image file`, 'vms grows only file-backed disks');
    const from = (await ctx.qemuImg.info(disk.path))['virtual-size'];
    const to = wholeSectors(opts.size);
    const result = { name: opts.name, target: disk.target, path: disk.path, from, to, live: Boolean(live) };
    if (to < from) {
      throw usageError(
        `${disk.target} of ${opts.name} is ${formatSize(from)}: vms does not shrink disks (asked for ${formatSize(to)})`,
        'shrinking would cut off whatever the guest keeps at the end of the disk: give a size above the current one',
      );
    }
    if (to === from) return { ...result, changed: false };
    await ctx.progress.step(`Growing ${disk.target} of ${opts.name} to ${formatSize(to)}`, async () => {
      if (live) return void (await ctx.virsh.blockResize(opts.name, disk.target, to));
      await ctx.qemuImg.resize(disk.path!, disk.format ?? 'raw', to);
    });
    return { ...result, changed: true };
  });
}
