import { existsSync } from 'node:fs';
import { readdir, rename } from 'node:fs/promises';
import { conflict, VmsError } from '../../errors.js';
import { buildDomainXml, parseDomainXml, type XmlNode } from '../../libvirt/domain-parse.js';
import { withMetadata } from '../../libvirt/domain-edit.js';
import { checkXmlText } from '../../libvirt/xml-text.js';
import { GuestAgent } from '../../libvirt/guest-agent.js';
import {
  readResources,
  withCpus,
  withDisplays,
  withMemory,
  withMovedDir,
  type Amount,
  type Resources,
} from '../../libvirt/set-xml.js';
import type { DomainState, Virsh } from '../../libvirt/virsh.js';
import { validateName } from '../../names.js';
import { formatSize } from '../../size.js';
import type { Context } from '../context.js';
import { stopVm } from './power.js';
import { withUndo } from '../ops/undo.js';
import { vmFiles } from './vm-files.js';
import { checkSetOptions } from './validate.js';
import { isActive, loadVm, requireDrivable, type LoadedVm } from './vm.js';
import { shellQuote as q } from '../../quote.js';
import { undoOptions, withOperation } from '../ops/operation.js';
import { pollUntil } from '../ops/poll.js';

/** What `vms set` is asked to change; undefined leaves a setting alone. */
export interface SetRequest {
  memory?: number; // bytes
  cpus?: number;
  displays?: number;
  rename?: string;
  notes?: string; // '' removes them
}

export interface SetOptions extends SetRequest {
  name: string;
  /** Shut a running VM down (ACPI) and start it again when a change needs it off. */
  restart: boolean;
  timeoutSeconds: number;
}

export type Setting = 'memory' | 'cpus' | 'displays' | 'name' | 'notes';

export interface Change {
  setting: Setting;
  before: number | string | null;
  after: number | string | null;
  /** live: on the running VM and in its saved definition; config: in the saved definition; restart: saved, then restarted. */
  applied: 'live' | 'config' | 'restart';
}

export interface SetResult {
  name: string;
  state: DomainState;
  changes: Change[];
  live: boolean;
  config: boolean;
  restarted: boolean;
  /** Things that worked but need the user's attention (a guest that did not follow). */
  warnings: string[];
}

/** A VM as `vms set` sees it: its saved settings and, while it runs, the running ones. */
export interface VmSettings {
  name: string;
  notes?: string;
  saved: Resources;
  live?: Resources;
}

/** One change a running VM cannot take: the setting, the value asked for, and why not (when it can be said). */
export interface NeedsOff {
  setting: 'memory' | 'cpus' | 'displays' | 'rename';
  value?: string;
  why?: string;
}

/** "memory 8G (above the 4G it was started with)", "displays". */
export const describeNeedsOff = (n: NeedsOff) =>
  [n.setting, n.value].filter(Boolean).join(' ') + (n.why ? ` (${n.why})` : '');

/** The changes worked out, and how to make them. */
export interface SetPlan {
  changes: Change[];
  /** Why the changes cannot be made while the VM runs; empty when they can. */
  needsOff: NeedsOff[];
  /** New saved values. */
  memory?: Amount;
  cpus?: Amount;
  displays?: number;
  name?: string;
  notes?: string;
  /** What to change on the running VM. */
  liveMemory?: number;
  liveCpus?: number;
}

/**
 * Works out what a request changes. With `live` (a running VM) what libvirt can change live is done live: memory up
 * to the maximum the VM started with (the balloon) and more vCPUs up to its maximum (hotplug); anything else needs it
 * shut off. A shut-off VM gets the memory as its boot memory, and the vCPU count as the number it boots with; its
 * vCPU maximum never shrinks, so the count can be raised again while it runs (an unplugged vCPU slot costs nothing,
 * while spare maximum memory is memory the guest boots with unless a balloon driver gives it back).
 */
export function planSet(vm: VmSettings, req: SetRequest): SetPlan {
  const { saved, live } = vm;
  const now = live ?? saved;
  const plan: SetPlan = { changes: [], needsOff: [] };
  const change = (setting: Setting, before: Change['before'], after: Change['after'], liveOp: boolean) =>
    plan.changes.push({ setting, before, after, applied: liveOp ? 'live' : 'config' });

  const memory = req.memory;
  if (memory !== undefined && (memory !== now.memory.current || memory !== saved.memory.current)) {
    if (!live) plan.memory = { max: memory, current: memory };
    else if (memory > live.memory.max)
      plan.needsOff.push({
        setting: 'memory',
        value: formatSize(memory),
        why: `above the ${formatSize(live.memory.max)} it was started with`,
      });
    else {
      plan.memory = { max: Math.max(saved.memory.max, memory), current: memory };
      if (memory !== live.memory.current) plan.liveMemory = memory;
    }
    change('memory', now.memory.current, memory, plan.liveMemory !== undefined);
  }

  const cpus = req.cpus;
  if (cpus !== undefined && (cpus !== now.cpus.current || cpus !== saved.cpus.current)) {
    const target = { max: Math.max(saved.cpus.max, cpus), current: cpus };
    if (!live) plan.cpus = target;
    else if (cpus > live.cpus.max)
      plan.needsOff.push({ setting: 'cpus', value: String(cpus), why: `above its maximum of ${live.cpus.max}` });
    else if (cpus < live.cpus.current)
      plan.needsOff.push({
        setting: 'cpus',
        value: String(cpus),
        why: `fewer than the ${live.cpus.current} it runs with: unplugging a vCPU needs the guest's help`,
      });
    else {
      plan.cpus = target;
      if (cpus !== live.cpus.current) plan.liveCpus = cpus;
    }
    change('cpus', now.cpus.current, cpus, plan.liveCpus !== undefined);
  }

  if (req.displays !== undefined && req.displays !== saved.displays) {
    if (saved.displays === undefined) {
      const message = `${vm.name} has no graphical display to give more heads`;
      throw new VmsError('conflict', message, 'it was created without one', undefined, 'set.noGraphics');
    }
    plan.displays = req.displays;
    if (live) plan.needsOff.push({ setting: 'displays' });
    change('displays', saved.displays, req.displays, false);
  }

  if (req.rename !== undefined && req.rename !== vm.name) {
    plan.name = req.rename;
    if (live) plan.needsOff.push({ setting: 'rename' });
    change('name', vm.name, req.rename, false);
  }

  if (req.notes !== undefined && req.notes !== (vm.notes ?? '')) {
    plan.notes = req.notes;
    change('notes', vm.notes ?? null, req.notes || null, false);
  }
  return plan;
}

/** The saved definition with the plan's changes; a rename points vms' own files into the VM's new directory. */
async function editedDefinition(vm: LoadedVm, plan: SetPlan, dirs: { from: string; to: string }): Promise<XmlNode> {
  let domain = vm.domain;
  if (plan.memory) domain = withMemory(domain, plan.memory);
  if (plan.cpus) domain = withCpus(domain, plan.cpus);
  if (plan.displays !== undefined) domain = withDisplays(domain, plan.displays);
  if (plan.name) domain = withMovedDir(domain, dirs.from, dirs.to);
  if (plan.notes !== undefined)
    domain = await withMetadata(domain, { ...vm.facts.metadata, notes: plan.notes || undefined });
  return domain;
}

async function checkRename(ctx: Context, vm: LoadedVm, to: string): Promise<void> {
  const name = vm.facts.name;
  validateName(to);
  if (await ctx.virsh.exists(to)) throw conflict(`a VM named '${to}' already exists`, 'pick another name');
  const dir = vmFiles(ctx.config, to).dir;
  if (existsSync(dir) && (await readdir(dir)).length > 0)
    throw conflict(`${dir} already exists and is not empty`, 'move it away or pick another name');
  if (vm.facts.metadata.pending) {
    const hint = 'finish its create (or destroy it) first';
    throw new VmsError('conflict', `${name} is an unfinished create`, hint, undefined, 'set.unfinished', { name });
  }
  if ((await ctx.virsh.snapshotNames(name)).length > 0) {
    throw conflict(
      `${name} has snapshots, and libvirt cannot rename a VM that has them`,
      `\`virsh snapshot-list ${q(name)}\` shows them`,
    );
  }
}

/** Reads the VM and works out the plan, refusing before anything is changed. */
async function prepare(ctx: Context, opts: SetOptions): Promise<{ vm: LoadedVm; plan: SetPlan; restart: boolean }> {
  if (opts.notes !== undefined) checkXmlText(opts.notes, 'the notes', "the domain's XML");
  const vm = await loadVm(ctx, opts.name);
  const running = isActive(vm.state);
  const settings: VmSettings = { name: opts.name, notes: vm.facts.metadata.notes, saved: readResources(vm.domain) };
  const live = running ? readResources(await parseDomainXml(await ctx.virsh.dumpxml(opts.name))) : undefined;
  if (opts.rename !== undefined && opts.rename !== opts.name) await checkRename(ctx, vm, opts.rename);
  const plan = planSet({ ...settings, live }, opts);
  if (plan.needsOff.length === 0) return { vm, plan, restart: false };
  if (!opts.restart) {
    throw new VmsError(
      'conflict',
      `${opts.name} is running: changing ${plan.needsOff.map(describeNeedsOff).join(' and ')} requires the VM to be shut off`,
      `a restart shuts it down (ACPI), applies everything and starts it again; or \`vms stop ${q(opts.name)}\` first. Nothing was changed.`,
      undefined,
      'set.needsOff',
      { name: opts.name, needsOff: plan.needsOff },
    );
  }
  requireDrivable(vm, 'shut down');
  // Restarted, everything is applied to the saved definition the VM then boots with.
  const offPlan = planSet(settings, opts);
  return {
    vm,
    plan: { ...offPlan, changes: offPlan.changes.map((c) => ({ ...c, applied: 'restart' })) },
    restart: true,
  };
}

async function shutDown(ctx: Context, name: string, timeoutSeconds: number): Promise<void> {
  try {
    await stopVm(ctx, name, { timeoutSeconds, force: false });
  } catch (err) {
    if (!(err instanceof VmsError && err.code === 'timeout')) throw err;
    throw new VmsError(
      'timeout',
      `${name} did not shut down within ${timeoutSeconds}s; nothing was changed`,
      'the guest may ignore ACPI: wait longer, or power it off and run this again',
      undefined,
      'set.shutdownTimeout',
      { name },
    );
  }
}

/** Ten questions, half a second apart. */
const BALLOON_WAIT_MS = 4500;

/** Waits briefly for the guest's balloon driver to reach the new size (a guest without one never does). */
async function balloonReached(ctx: Context, name: string, bytes: number): Promise<boolean> {
  const reached = async () => (await ctx.virsh.memoryStats(name)).get('actual') === bytes / 1024; // KiB
  return pollUntil(reached, { timeoutMs: BALLOON_WAIT_MS, signal: ctx.signal });
}

/** Hot-plugs vCPUs; the guest brings them online through its agent when one answers (busybox or no udev rule: by hand). */
async function plugCpus(ctx: Context, name: string, count: number, warnings: string[]): Promise<void> {
  await ctx.virsh.setLiveVcpus(name, count);
  const online = (await new GuestAgent(ctx.virsh, name).answers()) && (await ctx.virsh.setGuestVcpus(name, count));
  if (!online) {
    warnings.push(
      `no guest agent brought the new vCPUs online: a guest without a udev rule for it needs \`echo 1 > /sys/devices/system/cpu/cpuN/online\``,
    );
  }
}

const startIfOff = (virsh: Virsh, name: string) => async () => {
  if ((await virsh.exists(name)) && !isActive(await virsh.state(name))) await virsh.start(name);
};

/**
 * Changes a VM's memory, vCPUs, display heads, name and notes, all or nothing: live where libvirt can, else in the
 * saved definition; a running VM that needs to be off for a change is refused, or restarted with `restart`.
 */
export async function setVm(ctx: Context, asked: SetOptions): Promise<SetResult> {
  const opts = checkSetOptions(asked); // bad input is refused before anything is locked
  return withOperation(
    ctx,
    { command: 'set', vms: [opts.name, ...(opts.rename ? [opts.rename] : [])] },
    async (ctx) => {
      const { progress, virsh } = ctx;
      const { vm, plan, restart } = await progress.step('Checking input', () => prepare(ctx, opts));
      const name = opts.name;
      const newName = plan.name ?? name;
      if (plan.changes.length === 0)
        return { name, state: vm.state, changes: [], live: false, config: false, restarted: false, warnings: [] };

      const dirs = { from: vmFiles(ctx.config, name).dir, to: vmFiles(ctx.config, newName).dir };
      const [original, edited] = [
        await buildDomainXml(vm.domain),
        await buildDomainXml(await editedDefinition(vm, plan, dirs)),
      ];
      const clean = virsh.uninterruptible();
      const warnings: string[] = [];
      await withUndo(async (undo) => {
        if (restart) {
          undo.push(`start ${name} again`, startIfOff(clean, name));
          await shutDown(ctx, name, opts.timeoutSeconds);
        }
        if (plan.name && existsSync(dirs.from)) {
          await progress.step(`Moving ${dirs.from} to ${dirs.to}`, async () => {
            // Only a move that happened is undone: if it failed, what is at dirs.to is someone else's.
            let moved = false;
            undo.push(`move ${dirs.to} back`, async () => moved && rename(dirs.to, dirs.from));
            await rename(dirs.from, dirs.to);
            moved = true;
          });
        }
        await progress.step(`Saving ${name}'s definition`, async () => {
          undo.push(`restore ${name}'s definition`, () => clean.define(original));
          await virsh.define(edited);
        });
        if (plan.name) {
          await progress.step(`Renaming ${name} to ${newName}`, async () => {
            const back = async () => (await clean.exists(newName)) && clean.rename(newName, name);
            undo.push(`rename ${newName} back to ${name}`, back);
            await virsh.rename(name, newName);
          });
        }
        if (plan.liveMemory !== undefined) {
          const bytes = plan.liveMemory;
          await progress.step(`Setting ${name}'s memory to ${formatSize(bytes)} (balloon)`, async () => {
            const before = plan.changes.find((c) => c.setting === 'memory')!.before as number;
            undo.push(`set ${name}'s memory back`, () => clean.setLiveMemory(name, before));
            await virsh.setLiveMemory(name, bytes);
            if (!(await balloonReached(ctx, name, bytes))) {
              warnings.push(
                `the guest has not followed the balloon to ${formatSize(bytes)} (does it run the virtio_balloon driver?)`,
              );
            }
          });
        }
        // Last: a plugged vCPU cannot reliably be taken back (unplugging needs the guest's help).
        if (plan.liveCpus !== undefined)
          await progress.step(`Plugging in vCPUs (${plan.liveCpus} in all)`, () =>
            plugCpus(ctx, name, plan.liveCpus!, warnings),
          );
        if (restart) {
          await progress.step(`Starting ${newName}`, async () => {
            undo.push(
              `stop ${newName}`,
              async () =>
                (await clean.exists(newName)) && isActive(await clean.state(newName)) && clean.destroy(newName),
            );
            await virsh.start(newName);
          });
        }
      }, undoOptions(ctx));
      for (const w of warnings) progress.note(w);
      return {
        name: newName,
        state: await clean.state(newName),
        changes: plan.changes,
        live: plan.changes.some((c) => c.applied === 'live'),
        config: true,
        restarted: restart,
        warnings,
      };
    },
  );
}
