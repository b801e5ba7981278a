import { conflict } from '../../errors.js';
import type { Context } from '../context.js';
import type { PowerResult } from './power.js';
import { isActive, loadVm } from './vm.js';
import { shellQuote as q } from '../../quote.js';
import { withOperation } from '../ops/operation.js';

const notRunning = (name: string, state: string) =>
  conflict(`${name} is not running (${state})`, `start it with \`vms start ${q(name)}\``);

/** Hard reset, like the reset button: the guest reboots at once, without shutting down. */
export async function resetVm(ctx: Context, name: string): Promise<PowerResult> {
  return withOperation(ctx, { command: 'reset', vms: [name] }, async (ctx) => {
    const { state } = await loadVm(ctx, name);
    if (!isActive(state)) throw notRunning(name, state);
    await ctx.progress.step(`Resetting ${name}`, () => ctx.virsh.reset(name));
    return { name, state: await ctx.virsh.state(name), changed: true };
  });
}

/** Freezes the VM where it is (its memory stays; it runs no instruction until resumed). */
export async function suspendVm(ctx: Context, name: string): Promise<PowerResult> {
  return withOperation(ctx, { command: 'suspend', vms: [name] }, async (ctx) => {
    const { state } = await loadVm(ctx, name);
    if (state === 'paused') return { name, state, changed: false };
    if (state !== 'running') throw notRunning(name, state);
    await ctx.progress.step(`Suspending ${name}`, () => ctx.virsh.suspend(name));
    return { name, state: await ctx.virsh.state(name), changed: true };
  });
}

export async function resumeVm(ctx: Context, name: string): Promise<PowerResult> {
  return withOperation(ctx, { command: 'resume', vms: [name] }, async (ctx) => {
    const { state } = await loadVm(ctx, name);
    if (state === 'running') return { name, state, changed: false };
    if (state !== 'paused')
      throw conflict(
        `${name} is not suspended (${state})`,
        state === 'shut off' ? `start it with \`vms start ${q(name)}\`` : undefined,
      );
    await ctx.progress.step(`Resuming ${name}`, () => ctx.virsh.resume(name));
    return { name, state: await ctx.virsh.state(name), changed: true };
  });
}
