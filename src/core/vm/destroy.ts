import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { conflict, isInterrupt } from '../../errors.js';
import type { Context } from '../context.js';
import { filesInUse } from '../storage/files-in-use.js';
import { withOperation } from '../ops/operation.js';
import { runUndoAction, type UndoAction } from '../ops/undo-actions.js';
import { ownFiles, vmFiles, vmPackageCache } from './vm-files.js';
import { isActive, loadVm, ownDisks } from './vm.js';

export interface DestroyPlan {
  name: string;
  /** Files that go: the VM's own disks, then files vms made for it (bases, overlays) that nothing else uses. */
  remove: string[];
  /** Files that stay, and why. */
  keep: { path: string; reason: string }[];
  dir: string;
  /** Other VMs whose definition or disk chain could not be read: every base they might use is kept. */
  unreadable: string[];
}

/** Works out what `destroy` would remove, without changing anything (the CLI shows it before asking). */
export async function planDestroy(ctx: Context, name: string): Promise<DestroyPlan> {
  const { facts } = await loadVm(ctx, name);
  // What every other VM uses (definitions, snapshots, chains). One that cannot be read is no reason to fail: the
  // destroy goes on and keeps whatever that VM might use (fail closed on deleting, not on destroying).
  const inUse = await filesInUse(ctx, { except: name });
  const unknownUsers = [...new Set(inUse.unreadable.filter((u) => u.incomplete).map((u) => u.vm))];
  const plan: DestroyPlan = {
    name,
    remove: [],
    keep: [],
    dir: vmFiles(ctx.config, name).dir,
    unreadable: unknownUsers,
  };
  const made = new Set([...facts.metadata.made, ...facts.metadata.bases]);
  const bases = new Set(facts.metadata.bases);
  const seen = new Set<string>();
  const consider = (path: string) => {
    if (seen.has(path)) return;
    seen.add(path);
    const user = inUse.usesOf(path)[0]?.vm;
    if (user) plan.keep.push({ path, reason: `used by ${user}` });
    else if (!made.has(path)) plan.keep.push({ path, reason: 'vms did not make it' });
    // A base may stand under a VM whose chain could not be read: it stays until that is known.
    else if (bases.has(path) && unknownUsers.length)
      plan.keep.push({ path, reason: `${unknownUsers.join(', ')} cannot be read and may stand on it` });
    else if (existsSync(path)) plan.remove.push(path);
  };
  for (const disk of ownDisks(facts)) {
    if (disk.type !== 'file') {
      plan.keep.push({ path: disk.path!, reason: 'not a file: vms did not make it' });
      continue;
    }
    consider(disk.path!);
    if (!existsSync(disk.path!)) continue;
    let chain;
    try {
      chain = await ctx.qemuImg.chain(disk.path!);
    } catch (err) {
      if (isInterrupt(err)) throw err;
      // A broken chain (a backing file gone) must not keep the VM from going: its bases are left where they are.
      plan.keep.push({
        path: `(the backing files of ${disk.path})`,
        reason: `its backing chain cannot be read: ${(err as Error).message}`,
      });
      continue;
    }
    // Only files vms made for this VM ever go: a backing file someone else made (a golden image) stays.
    for (const image of chain.slice(1)) consider(image.filename);
  }
  // Files vms made for the VM that it no longer stands on (a data disk dropped by a snapshot revert).
  for (const path of facts.metadata.made) if (existsSync(path)) consider(path);
  return plan;
}

export interface DestroyResult {
  name: string;
  removed: string[];
  kept: { path: string; reason: string }[];
}

/** Every step of a destroy, in order, as data: run now, and written down first so a repair can finish a killed one. */
function destroySteps(ctx: Context, plan: DestroyPlan, rotatedLogs: string[]): UndoAction[] {
  const files = vmFiles(ctx.config, plan.name);
  return [
    { kind: 'power-off', vm: plan.name },
    { kind: 'undefine', vm: plan.name },
    ...plan.remove.map((path): UndoAction => ({ kind: 'remove-file', path })),
    // Only vms' own files, never a recursive delete of the VM's directory: it may hold something a user put there.
    ...[...ownFiles(files), ...rotatedLogs].map((path): UndoAction => ({ kind: 'remove-file', path })),
    { kind: 'remove-dir', path: vmPackageCache(ctx.config, plan.name) }, // vms' own, left by a kept failed install
    { kind: 'remove-dir', path: files.eventLogs }, // vms' own: the logs of the VM's operations
    { kind: 'remove-dir-if-empty', path: plan.dir },
  ];
}

/**
 * Destroys a VM under its lock. The plan is made again there; `expected`, when given, is the plan the user agreed
 * to: anything different stops it before anything is removed.
 */
export async function destroyVm(ctx: Context, name: string, expected?: DestroyPlan): Promise<DestroyResult> {
  return withOperation(ctx, { command: 'destroy', vms: [name], host: true }, async (ctx) => {
    const plan = await planDestroy(ctx, name);
    if (expected && JSON.stringify(expected) !== JSON.stringify(plan)) {
      throw conflict(
        `${plan.name} changed while you were asked (a clone, a disk)`,
        'nothing was removed: run the command again',
      );
    }
    ctx.signal?.throwIfAborted(); // a Ctrl-C while it planned: nothing was changed, and it says so (exit 130)
    const rotated = (await readdir(plan.dir).catch(() => [] as string[])).filter((f) => /^serial\.log\.\d+$/.test(f)); // virtlogd's
    const steps = destroySteps(
      ctx,
      plan,
      rotated.map((f) => join(plan.dir, f)),
    );
    // Once started, finish: a half-removed VM is worse than a slow one. A kill is finished by the next vms.
    await ctx.journal?.finish({ what: `destroy ${plan.name}`, actions: steps });
    const clean = { ...ctx, virsh: ctx.virsh.uninterruptible() };
    const [powerOff, undefine, ...rest] = steps;
    if (isActive(await clean.virsh.state(plan.name)))
      await ctx.progress.step(`Powering off ${plan.name}`, () => runUndoAction(clean, powerOff!));
    await ctx.progress.step(`Undefining ${plan.name}`, () => runUndoAction(clean, undefine!));
    await ctx.progress.step('Removing disks', async () => {
      for (const step of rest) await runUndoAction(clean, step);
    });
    await ctx.journal?.finish(undefined);
    const kept = [...plan.keep];
    if (existsSync(plan.dir)) kept.push({ path: plan.dir, reason: 'it holds files vms did not make' });
    return { name: plan.name, removed: plan.remove, kept };
  });
}
