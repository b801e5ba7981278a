import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { conflict, notFound, usageError, VmsError } from '../../errors.js';
import {
  renderDomainXml,
  type DirectKernelBoot,
  type DomainSpec,
  type Firmware,
  type NetworkSpec,
} from '../../libvirt/domain-xml.js';
import { pickDomainType } from '../../libvirt/virsh.js';
import { validateName } from '../../names.js';
import { callerPath, type Context } from '../context.js';
import { vmInfo, type VmInfo } from './info.js';
import { checkIsoImage } from '../storage/iso.js';
import { withUndo, type UndoStack } from '../ops/undo.js';
import { checkKernelBoot } from './validate.js';
import { chardevOwner, claimDiskPath, freeDiskPath, makeVmDir, vmFiles } from './vm-files.js';
import { undoOptions, withOperation } from '../ops/operation.js';

export interface CreateOptions {
  name: string;
  memory?: number; // bytes; default from config
  cpus?: number;
  disk?: number; // bytes
  firmware: Firmware;
  network: NetworkSpec;
  iso?: string;
  kernelBoot?: DirectKernelBoot;
  graphics: boolean;
  profile?: string;
  start: boolean;
}

export function parseFirmware(text: string): Firmware {
  if (text !== 'bios' && text !== 'efi') throw usageError(`invalid firmware '${text}'`, 'use bios or efi');
  return text;
}

/**
 * An ISO given by name is looked up in the ISO dir, then in the current directory; a path is taken as it is. Only an
 * ISO 9660 image is taken (see checkIsoImage); the real path of the one found is returned.
 */
export async function resolveIso(ctx: Pick<Context, 'config' | 'host'>, iso: string, hint?: string): Promise<string> {
  const isoDir = ctx.config.isoDir.value;
  const candidates = iso.includes('/') ? [callerPath(ctx, iso)] : [join(isoDir, iso), callerPath(ctx, iso)];
  const where = `an ISO 9660 image is given by its name in ${isoDir}, or its path`;
  try {
    return await checkIsoImage(candidates.find((p) => existsSync(p)) ?? candidates[0]!, hint ?? where);
  } catch (err) {
    // The CLI words "where" with its --iso flag (data.isoDir).
    if (hint || !(err instanceof VmsError) || err.hint !== where) throw err;
    throw new VmsError(err.code, err.message, err.hint, err.details, err.reason, { ...err.data, isoDir });
  }
}

export async function requireFreeName(ctx: Context, name: string): Promise<void> {
  validateName(name);
  if (await ctx.virsh.exists(name))
    throw conflict(`a VM named '${name}' already exists`, 'pick another name, or `vms destroy` the old one');
}

function requireFile(ctx: Context, what: string, path: string): string {
  const full = callerPath(ctx, path);
  if (!existsSync(full)) throw notFound(`${what} not found: ${full}`);
  return full;
}

/** Checks the input and works out every value of the domain, without touching anything. */
export async function planVm(ctx: Context, opts: CreateOptions): Promise<DomainSpec> {
  validateName(opts.name);
  const files = vmFiles(ctx.config, opts.name);
  const boot = checkKernelBoot(opts.kernelBoot);
  const kernelBoot = boot && {
    kernel: requireFile(ctx, 'kernel', boot.kernel),
    initrd: boot.initrd && requireFile(ctx, 'initrd', boot.initrd),
    cmdline: boot.cmdline,
  };
  const domainType = pickDomainType(await ctx.virsh.capabilities());
  return {
    name: opts.name,
    domainType,
    memoryBytes: opts.memory ?? ctx.config.memory.value,
    cpus: opts.cpus ?? ctx.config.cpus.value,
    firmware: opts.firmware,
    nvramPath: opts.firmware === 'efi' ? files.nvram : undefined,
    diskPath: freeDiskPath(ctx.config.imagesDir.value, opts.name),
    cdrom: opts.iso && (await resolveIso(ctx, opts.iso)),
    kernelBoot,
    network: opts.network,
    serialSocket: files.serialSocket,
    consoleOwner: chardevOwner(ctx),
    serialLog: files.serialLog,
    graphics: opts.graphics,
    metadata: { profile: opts.profile, created: new Date().toISOString(), bases: [], made: [] },
  };
}

/** Like `virt-install --print-xml`: the domain XML that create would define. */
export async function createXml(ctx: Context, opts: CreateOptions): Promise<string> {
  return renderDomainXml(await planVm(ctx, opts));
}

/**
 * What every new VM has: its directory, its disk (claimed, then created) and its definition, each with its undo
 * registered before the step runs. Sets spec.diskPath to the disk really made.
 */
export async function makeVm(ctx: Context, spec: DomainSpec, diskBytes: number, undo: UndoStack): Promise<void> {
  const { progress, virsh, qemuImg } = ctx;
  const files = vmFiles(ctx.config, spec.name);
  await progress.step(`Creating ${files.dir}`, () => makeVmDir(files, undo));
  ctx.signal?.throwIfAborted();
  spec.diskPath = await claimDiskPath(ctx.config.imagesDir.value, spec.name, undo);
  spec.metadata.made = [spec.diskPath];
  await progress.step(`Creating disk ${spec.diskPath}`, () => qemuImg.create(spec.diskPath, diskBytes));
  ctx.signal?.throwIfAborted();
  await progress.step(`Defining domain ${spec.name}`, async () => {
    await undo.add(`undefine ${spec.name}`, { kind: 'undefine', vm: spec.name });
    await virsh.define(await renderDomainXml(spec));
  });
  ctx.signal?.throwIfAborted();
}

/** Disk + definition (+ start). Any failure or interrupt removes everything made so far. */
export async function createVm(ctx: Context, opts: CreateOptions): Promise<VmInfo> {
  validateName(opts.name);
  // Bad input is refused before anything is locked or made.
  const spec = await ctx.progress.step('Checking input', async () => {
    await requireFreeName(ctx, opts.name);
    return planVm(ctx, opts);
  });
  return withOperation(ctx, { command: 'create', vms: [opts.name] }, async (ctx) => {
    const { progress, virsh } = ctx;
    await requireFreeName(ctx, opts.name); // again under the lock: a create of the same name may have won the race
    const cleanVirsh = virsh.uninterruptible();

    await withUndo(async (undo) => {
      await makeVm(ctx, spec, opts.disk ?? ctx.config.disk.value, undo);
      if (opts.start) {
        await progress.step(`Starting ${spec.name}`, async () => {
          await undo.add(`stop ${spec.name}`, { kind: 'power-off', vm: spec.name });
          await virsh.start(spec.name);
        });
      }
    }, undoOptions(ctx));
    return vmInfo({ ...ctx, virsh: cleanVirsh }, spec.name); // made: a Ctrl-C now must not report a failure
  });
}
