import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { domainFacts, parseDomainXml } from '../libvirt/domain-parse.js';
import type { Context } from './context.js';
import { vmFiles } from './vm-files.js';
import { isActive, loadVm, ownDisks } from './vm.js';

export interface DestroyPlan {
  name: string;
  running: boolean;
  /** Files that go: the VM's own disks, then bases vms froze for it that nothing else uses any more. */
  remove: string[];
  /** Files that stay, and why. */
  keep: { path: string; reason: string }[];
  dir: string;
}

/** Every file that the other VMs' disks stand on (their disks and all their backing files). */
async function filesUsedByOthers(ctx: Context, name: string): Promise<Map<string, string>> {
  const others = (await ctx.virsh.list()).filter((d) => d.name !== name);
  const xmls = await ctx.virsh.batch(others.map((d) => ['dumpxml', d.name, '--inactive']));
  const used = new Map<string, string>();
  for (const [i, xml] of xmls.entries()) {
    if (!xml) continue;
    for (const disk of domainFacts(await parseDomainXml(xml)).disks) {
      if (!disk.path) continue;
      used.set(disk.path, others[i]!.name);
      if (disk.device !== 'disk' || !existsSync(disk.path)) continue;
      for (const image of (await ctx.qemuImg.chain(disk.path)).slice(1)) used.set(image.filename, others[i]!.name);
    }
  }
  return used;
}

/** Works out what `destroy` would remove, without changing anything (the CLI shows it before asking). */
export async function planDestroy(ctx: Context, name: string): Promise<DestroyPlan> {
  const { facts, state } = await loadVm(ctx, name);
  const used = await filesUsedByOthers(ctx, name);
  const plan: DestroyPlan = { name, running: isActive(state), remove: [], keep: [], dir: vmFiles(ctx.config, name).dir };
  const consider = (path: string) => {
    const user = used.get(path);
    if (user) plan.keep.push({ path, reason: `used by ${user}` });
    else if (!plan.remove.includes(path)) plan.remove.push(path);
  };
  for (const disk of ownDisks(facts)) {
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

export async function destroyVm(ctx: Context, plan: DestroyPlan): Promise<DestroyResult> {
  const virsh = ctx.virsh.uninterruptible(); // once started, finish: a half-removed VM is worse than a slow one
  const { progress } = ctx;
  if (plan.running) await progress.step(`Powering off ${plan.name}`, () => virsh.destroy(plan.name).catch(() => undefined));
  await progress.step(`Undefining ${plan.name}`, () => virsh.undefine(plan.name));
  await progress.step('Removing disks', async () => {
    for (const path of plan.remove) await rm(path, { force: true });
  });
  await rm(plan.dir, { recursive: true, force: true });
  return { name: plan.name, removed: plan.remove, kept: plan.keep };
}
