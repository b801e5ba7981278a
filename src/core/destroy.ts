import { existsSync } from 'node:fs';
import { readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { VmsError, conflict } from '../errors.js';
import { domainFacts, parseDomainXml } from '../libvirt/domain-parse.js';
import type { Context } from './context.js';
import { ownFiles, vmFiles, vmPackageCache } from './vm-files.js';
import { isActive, loadVm, ownDisks } from './vm.js';

export interface DestroyPlan {
  name: string;
  /** Files that go: the VM's own disks, then bases vms froze for it that nothing else uses any more. */
  remove: string[];
  /** Files that stay, and why. */
  keep: { path: string; reason: string }[];
  dir: string;
}

/**
 * Every file the other VMs' disks stand on (their disks and all their backing files), from both their saved and
 * their running definitions. Fails closed: a VM whose definition or disk chain cannot be read stops the destroy,
 * rather than letting a base it may use look unused.
 */
async function filesUsedByOthers(ctx: Context, name: string): Promise<Map<string, string>> {
  const others = (await ctx.virsh.names()).filter((n) => n !== name);
  const xmls = await ctx.virsh.batch(others.flatMap((n) => [['dumpxml', n, '--inactive'], ['dumpxml', n]]));
  const used = new Map<string, string>();
  for (const [i, xml] of xmls.entries()) {
    const other = others[Math.floor(i / 2)]!;
    if (!xml) throw new VmsError('failed', `cannot read the definition of VM '${other}'`, 'nothing was removed: check `virsh dumpxml` for it, then try again');
    for (const disk of domainFacts(await parseDomainXml(xml)).disks) {
      if (!disk.path) continue;
      used.set(disk.path, other);
      if (disk.device !== 'disk' || !existsSync(disk.path)) continue;
      const chain = await ctx.qemuImg.chain(disk.path).catch((err: Error) => {
        throw new VmsError('failed', `cannot read the disk chain of VM '${other}' (${disk.path}): ${err.message}`, 'nothing was removed');
      });
      for (const image of chain.slice(1)) used.set(image.filename, other);
    }
  }
  return used;
}

/** Works out what `destroy` would remove, without changing anything (the CLI shows it before asking). */
export async function planDestroy(ctx: Context, name: string): Promise<DestroyPlan> {
  const { facts } = await loadVm(ctx, name);
  const used = await filesUsedByOthers(ctx, name);
  const imagesDir = ctx.config.imagesDir.value + '/';
  const plan: DestroyPlan = { name, remove: [], keep: [], dir: vmFiles(ctx.config, name).dir };
  const consider = (path: string) => {
    const user = used.get(path);
    if (user) plan.keep.push({ path, reason: `used by ${user}` });
    else if (!plan.remove.includes(path)) plan.remove.push(path);
  };
  for (const disk of ownDisks(facts)) {
    // Only files in the images dir are vms' to delete: a disk attached from elsewhere, or a device, stays.
    if (disk.type !== 'file' || !disk.path!.startsWith(imagesDir)) {
      plan.keep.push({ path: disk.path!, reason: `not in ${ctx.config.imagesDir.value}: vms did not create it` });
      continue;
    }
    if (!existsSync(disk.path!)) continue;
    consider(disk.path!);
    // Only bases vms itself froze are ever deleted: a backing file someone else made (a golden image) stays.
    for (const image of (await ctx.qemuImg.chain(disk.path!)).slice(1)) {
      if (facts.metadata.bases.includes(image.filename)) consider(image.filename);
      else plan.keep.push({ path: image.filename, reason: 'a backing file vms did not create' });
    }
  }
  return plan;
}

export interface DestroyResult {
  name: string;
  removed: string[];
  kept: { path: string; reason: string }[];
}

/** Carries out a plan; `expected`, when given, is the plan the user agreed to: anything different stops it. */
export async function destroyVm(ctx: Context, plan: DestroyPlan, expected?: DestroyPlan): Promise<DestroyResult> {
  if (expected && JSON.stringify(expected) !== JSON.stringify(plan)) {
    throw conflict(`${plan.name} changed while you were asked (a clone, a disk)`, 'nothing was removed: run the command again');
  }
  const virsh = ctx.virsh.uninterruptible(); // once started, finish: a half-removed VM is worse than a slow one
  const { progress } = ctx;
  if (isActive(await virsh.state(plan.name))) await progress.step(`Powering off ${plan.name}`, () => virsh.destroy(plan.name));
  await progress.step(`Undefining ${plan.name}`, () => virsh.undefine(plan.name));
  await progress.step('Removing disks', async () => {
    for (const path of plan.remove) await rm(path, { force: true });
  });
  // Only vms' own files, never a recursive delete: the directory may hold something a user put there.
  const files = vmFiles(ctx.config, plan.name);
  for (const f of ownFiles(files)) await rm(f, { force: true });
  for (const f of await readdir(plan.dir).catch(() => [])) {
    if (/^serial\.log\.\d+$/.test(f)) await rm(join(plan.dir, f), { force: true }); // virtlogd's rotated transcripts
  }
  await rm(vmPackageCache(ctx.config, plan.name), { recursive: true, force: true }); // vms' own, left by a kept failed install
  const kept = [...plan.keep];
  await rmdir(plan.dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOTEMPTY') kept.push({ path: plan.dir, reason: 'it holds files vms did not make' });
    else if (err.code !== 'ENOENT') throw err;
  });
  return { name: plan.name, removed: plan.remove, kept };
}
