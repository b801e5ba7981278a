import { rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { conflict, notFound, usageError, VmsError } from '../errors.js';
import type { XmlNode } from '../libvirt/domain-parse.js';
import {
  COLD_PLUG_ONLY,
  diskByTargetXml,
  diskDevices,
  diskXml,
  nextTarget,
  hasScsiController,
  SCSI_CONTROLLER_XML,
  type DiskBus,
  type DiskDevice,
} from '../libvirt/disk-xml.js';
import { changeDevice, liveDomain, placeDevices, type Where } from '../libvirt/device-xml.js';
import { formatSize } from '../size.js';
import type { Context } from './context.js';
import { planDestroy } from './destroy.js';
import { withUndo, type UndoStack } from './undo.js';
import { claimDiskPath } from './vm-files.js';
import { addMade, dropMade, editMetadata } from './vm-metadata.js';
import { isActive, loadVm, type LoadedVm } from './vm.js';
import { shellQuote as q } from '../quote.js';

// `vms disk`: add, attach, detach, list and grow a VM's disks, in its saved definition and, when it runs, live.
//
// Whose file is it? As with `vms destroy`: a writable file in the images dir is vms's, and goes with the last VM that
// uses it; anything else (a file attached from elsewhere, any read-only disk) is never deleted by vms. `detach --delete`
// deletes exactly what destroy would delete for that disk, and nothing when destroy would keep it.

/** A VM's disks as libvirt has them: the saved definition and, while it runs, the live one. */
interface VmDisks {
  vm: LoadedVm;
  active: boolean;
  saved: DiskDevice[];
  live: DiskDevice[];
  /** The live domain (parsed) while running: its controllers count for hotplug. */
  liveDomain?: XmlNode;
}

async function loadDisks(ctx: Context, name: string): Promise<VmDisks> {
  const vm = await loadVm(ctx, name);
  const active = isActive(vm.state);
  const live = await liveDomain(ctx.virsh, name, active);
  return { vm, active, saved: diskDevices(vm.domain), live: live ? diskDevices(live) : [], liveDomain: live };
}

/**
 * libvirt's and QEMU's refusals that have a plain explanation and a fix. `scsiFits`: the running VM has a scsi
 * controller, so a scsi disk would need no PCIe slot of its own.
 */
function explainPlugError(err: unknown, name: string, path: string, scsiFits: boolean): unknown {
  if (!(err instanceof VmsError) || err.code !== 'failed') return err;
  if (/No more available PCI slots/i.test(err.message)) {
    const scsi = scsiFits ? ', or use --bus scsi: its controller holds many disks' : '';
    return conflict(`${name} has no free PCIe slot left to plug the disk into`, `stop ${name} and try again (libvirt adds slots to a shut-off VM)${scsi}`);
  }
  if (/Failed to get .*"write" lock/i.test(err.message)) {
    return conflict(`${path} is in use by a running VM (QEMU holds its lock)`, 'stop the VM that uses it first, or attach a copy of it');
  }
  return err;
}

function refuseColdPlugBus(bus: string | undefined, active: boolean, name: string, verb: 'plugged into' | 'unplugged from'): void {
  if (active && bus && COLD_PLUG_ONLY.includes(bus)) {
    throw conflict(`a ${bus} disk cannot be ${verb} a running VM (QEMU's AHCI has no hotplug)`, `stop ${name} first (\`vms stop ${q(name)}\`)${verb === 'plugged into' ? ', or use --bus virtio or scsi' : ''}`);
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
  /** A writable file in the images dir: `vms destroy` removes it with the VM (unless another VM uses it). */
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
  const cleanVirsh = ctx.virsh.uninterruptible();
  const target = nextTarget(req.bus, [...disks.saved, ...disks.live].map((d) => d.target));
  // A scsi disk needs a scsi controller, in the saved definition and in the running VM: added (as index 0, free on
  // a side that has none) where it is missing.
  const lacking: Where = { live: Boolean(disks.liveDomain && !hasScsiController(disks.liveDomain)), config: !hasScsiController(disks.vm.domain) };
  if (req.bus === 'scsi' && (lacking.live || lacking.config)) {
    await ctx.progress.step(`Adding a virtio-scsi controller to ${name}`, async () => {
      undo.push(`remove the scsi controller from ${name}`, async () => {
        const now = await loadDisks({ ...ctx, virsh: cleanVirsh }, name);
        const added = { live: lacking.live && hasScsiController(now.liveDomain!), config: lacking.config && hasScsiController(now.vm.domain) };
        if (added.live || added.config) await changeDevice(cleanVirsh, 'detach-device', name, SCSI_CONTROLLER_XML, added);
      });
      await changeDevice(ctx.virsh, 'attach-device', name, SCSI_CONTROLLER_XML, lacking).catch((err) => {
        throw explainPlugError(err, name, req.path, false);
      });
    });
  }
  ctx.signal?.throwIfAborted();
  const xml = diskXml({ path: req.path, format: req.format, bus: req.bus, target, readonly: req.readonly });
  await ctx.progress.step(`Attaching ${target} to ${name}`, async () => {
    // Registered first: an attach interrupted half-way may have taken effect on either side.
    undo.push(`detach ${target} from ${name}`, async () => {
      const now = await loadDisks({ ...ctx, virsh: cleanVirsh }, name);
      const ours = (d: DiskDevice) => d.target === target && d.path === req.path;
      const where = { live: now.live.some(ours), config: now.saved.some(ours) };
      if (where.live || where.config) await changeDevice(cleanVirsh, 'detach-device', name, diskByTargetXml(target), where);
    });
    await changeDevice(ctx.virsh, 'attach-device', name, xml, { live: disks.active, config: true }).catch((err) => {
      throw explainPlugError(err, name, req.path, req.bus !== 'scsi' && !lacking.live);
    });
  });
  const imagesDir = ctx.config.imagesDir.value + '/';
  return {
    name,
    target,
    bus: req.bus,
    path: req.path,
    format: req.format,
    size: req.size,
    readonly: req.readonly,
    live: disks.active,
    destroyedWithVm: !req.readonly && req.path.startsWith(imagesDir),
    created: req.created,
  };
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
  const disks = await loadDisks(ctx, opts.name);
  refuseColdPlugBus(opts.bus, disks.active, opts.name, 'plugged into');
  const size = wholeSectors(opts.size);
  return withUndo(async (undo) => {
    const path = await claimDiskPath(ctx.config.imagesDir.value, `${opts.name}-data`, undo);
    await ctx.progress.step(`Creating disk ${path} (${formatSize(size)})`, () => ctx.qemuImg.create(path, size));
    ctx.signal?.throwIfAborted();
    const added = await plugDisk(ctx, disks, { path, format: 'qcow2', bus: opts.bus, readonly: false, size, created: true }, undo);
    // vms made it: destroy (or gc, once no definition uses it) removes it.
    undo.push(`forget ${path} in ${opts.name}'s metadata`, () => editMetadata(ctx.virsh.uninterruptible(), opts.name, dropMade([path])));
    await editMetadata(ctx.virsh, opts.name, addMade([path]));
    ctx.signal?.throwIfAborted();
    return added;
  });
}

export interface AttachOptions {
  name: string;
  path: string;
  bus: DiskBus;
  readonly: boolean;
}

/** An existing image file (qcow2 or raw, as qemu-img reads it), attached as it is: vms never changes it here. */
export async function attachDisk(ctx: Context, opts: AttachOptions): Promise<AttachedDisk> {
  const path = resolve(opts.path);
  if (opts.readonly && opts.bus === 'sata') throw usageError('a read-only disk cannot be on the sata bus (libvirt refuses it)', 'use --bus virtio or scsi');
  const disks = await loadDisks(ctx, opts.name);
  const file = await stat(path).catch(() => undefined);
  if (!file) throw notFound(`no file ${path}`, 'give the path of an existing disk image; `vms disk add` makes a new one');
  if (!file.isFile()) throw usageError(`${path} is not a regular file`, 'vms attaches disk image files (qcow2 or raw)');
  const already = [...disks.saved, ...disks.live].find((d) => d.path === path);
  if (already) throw conflict(`${path} is already attached to ${opts.name} as ${already.target}`, `\`vms disk list ${q(opts.name)}\` shows its disks`);
  // A frozen base (vms makes them 0444) or any file without write permission must never be written through a VM.
  if (!opts.readonly && (file.mode & 0o222) === 0) throw conflict(`${path} is read-only (a clone's base?)`, 'attach it with --readonly, or attach a copy of it');
  refuseColdPlugBus(opts.bus, disks.active, opts.name, 'plugged into');
  const info = await ctx.qemuImg.info(path);
  if (info.format !== 'qcow2' && info.format !== 'raw') {
    throw usageError(`${path} is a ${info.format} image: vms attaches qcow2 and raw images`, `convert it: qemu-img convert -O qcow2 ${q(path)} NEW.qcow2`);
  }
  return withUndo((undo) =>
    plugDisk(ctx, disks, { path, format: info.format, bus: opts.bus, readonly: opts.readonly, size: info['virtual-size'], created: false }, undo),
  );
}

/** A disk by target (vdb) or by its file's path, looked up in the saved and the live definition. */
function findDisk(disks: VmDisks, which: string): { saved?: DiskDevice; live?: DiskDevice } {
  const path = which.includes('/') ? resolve(which) : undefined;
  const matches = (d: DiskDevice) => d.device === 'disk' && (path ? d.path === path : d.target === which);
  const found = { saved: disks.saved.find(matches), live: disks.live.find(matches) };
  if (!found.saved && !found.live) {
    const name = disks.vm.facts.name;
    throw notFound(`${name} has no disk ${which}`, `\`vms disk list ${q(name)}\` shows its disks (by target, e.g. vdb, or by path)`);
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

/** How long a running guest may take to let go of an unplugged disk (TCG guests are slow to answer the hot-unplug). */
const RELEASE_TIMEOUT_MS = 30_000;

export async function detachDisk(ctx: Context, opts: DetachOptions): Promise<DetachResult> {
  const disks = await loadDisks(ctx, opts.name);
  const { saved, live } = findDisk(disks, opts.disk);
  const disk = (live ?? saved)!;
  const boot = disks.saved.find((d) => d.device === 'disk');
  if (boot?.target === disk.target) {
    throw conflict(`${disk.target} is ${opts.name}'s boot disk: vms does not detach it`, `\`vms destroy ${q(opts.name)}\` removes the VM with its disk`);
  }
  if (live) refuseColdPlugBus(live.bus, true, opts.name, 'unplugged from');
  const path = (saved ?? live)!.path;
  if (opts.delete) {
    // Decided before anything changes: exactly what `vms destroy` would delete of this disk.
    const plan = await planDestroy(ctx, opts.name);
    if (!path || !saved || !plan.remove.includes(path)) {
      const why = plan.keep.find((k) => k.path === path)?.reason ?? 'vms deletes only writable files in the images dir that no other VM uses';
      throw conflict(`vms will not delete ${path ?? disk.target}: ${why}`, 'nothing was changed; detach it without --delete to keep the file');
    }
  }
  await ctx.progress.step(`Detaching ${disk.target} from ${opts.name}`, async () => {
    await changeDevice(ctx.virsh, 'detach-device', opts.name, diskByTargetXml(disk.target), { live: Boolean(live), config: Boolean(saved) });
    if (live) await waitForRelease(ctx, opts.name, disk.target);
  });
  if (opts.delete) await ctx.progress.step(`Deleting ${path}`, () => rm(path!, { force: true }));
  return { name: opts.name, target: disk.target, path, inConfig: Boolean(saved), live: Boolean(live), deleted: opts.delete };
}

/** A live unplug completes when the guest lets go; until then QEMU still has the file open. */
async function waitForRelease(ctx: Context, name: string, target: string): Promise<void> {
  const deadline = Date.now() + RELEASE_TIMEOUT_MS;
  for (;;) {
    const live = await liveDomain(ctx.virsh, name, true);
    if (!diskDevices(live!).some((d) => d.target === target)) return;
    if (Date.now() >= deadline) {
      throw new VmsError(
        'timeout',
        `${name}'s guest has not released ${target} within ${RELEASE_TIMEOUT_MS / 1000}s`,
        'it is out of the saved definition and goes from the running VM when the guest lets go of it (or at the next stop); no file was deleted',
      );
    }
    await sleep(500, undefined, { signal: ctx.signal });
  }
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
  for (const { device: d, inConfig, live } of placeDevices(disks.saved, disks.active ? disks.live : undefined, (d) => d.target)) {
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
  const disks = await loadDisks(ctx, opts.name);
  const { saved, live } = findDisk(disks, opts.disk);
  const disk = (live ?? saved)!;
  if (disk.readonly) throw conflict(`${disk.target} of ${opts.name} is read-only`, 'vms grows only writable disks');
  if (!disk.path || disk.type !== 'file') throw usageError(`${disk.target} of ${opts.name} is not a disk image file`, 'vms grows only file-backed disks');
  const from = (await ctx.qemuImg.info(disk.path))['virtual-size'];
  const to = wholeSectors(opts.size);
  const result = { name: opts.name, target: disk.target, path: disk.path, from, to, live: Boolean(live) };
  if (to < from) {
    throw usageError(`${disk.target} of ${opts.name} is ${formatSize(from)}: vms does not shrink disks (asked for ${formatSize(to)})`, 'shrinking would cut off whatever the guest keeps at the end of the disk: give a size above the current one');
  }
  if (to === from) return { ...result, changed: false };
  await ctx.progress.step(`Growing ${disk.target} of ${opts.name} to ${formatSize(to)}`, async () => {
    if (live) return void (await ctx.virsh.run(['blockresize', opts.name, disk.target, `${to}B`], { subject: opts.name }));
    await ctx.qemuImg.resize(disk.path!, disk.format ?? 'raw', to);
  });
  return { ...result, changed: true };
}
