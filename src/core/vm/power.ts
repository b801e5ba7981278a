import { VmsError } from '../../errors.js';
import type { DomainState } from '../../libvirt/virsh.js';
import type { Context } from '../context.js';
import { isActive, isPaused, loadVm, requireDrivable, waitUntilOff } from './vm.js';
import { withOperation } from '../ops/operation.js';

export interface PowerResult {
  name: string;
  state: DomainState;
  changed: boolean; // false when the VM already was in the wanted state
  forced?: boolean; // stop --force had to kill it
  wasPaused?: boolean; // … at once, because the guest was paused (no ACPI reaches it, so no timeout was waited)
}

export async function startVm(ctx: Context, name: string): Promise<PowerResult> {
  return withOperation(ctx, { command: 'start', vms: [name] }, async (ctx) => {
    const { state } = await loadVm(ctx, name);
    if (isActive(state)) return { name, state, changed: false };
    await ctx.progress.step(`Starting ${name}`, () => ctx.virsh.start(name));
    return { name, state: await ctx.virsh.state(name), changed: true };
  });
}

export async function killVm(ctx: Context, name: string): Promise<PowerResult> {
  return withOperation(ctx, { command: 'kill', vms: [name] }, async (ctx) => {
    const { state } = await loadVm(ctx, name);
    if (!isActive(state)) return { name, state, changed: false };
    await ctx.progress.step(`Killing ${name}`, () => ctx.virsh.destroy(name));
    return { name, state: await ctx.virsh.state(name), changed: true };
  });
}

/**
 * ACPI shutdown, then waits for the guest to power off; on timeout fails with a hint, or kills with `force`. A paused
 * VM is refused (vm.paused), or killed at once with `force`.
 */
export async function stopVm(
  ctx: Context,
  name: string,
  opts: { timeoutSeconds: number; force: boolean },
): Promise<PowerResult> {
  return withOperation(ctx, { command: 'stop', vms: [name] }, async (ctx) => {
    const vm = await loadVm(ctx, name);
    const { state } = vm;
    if (!isActive(state)) return { name, state, changed: false };
    // A paused guest runs no instruction, so ACPI cannot shut it down: refused, or with `force` powered off at once.
    if (!opts.force) requireDrivable(vm, 'shut down');
    const stopped =
      !isPaused(state) &&
      (await ctx.progress.step(`Shutting down ${name} (ACPI, up to ${opts.timeoutSeconds}s)`, async () => {
        await ctx.virsh.shutdown(name);
        return waitUntilOff(ctx, name, opts.timeoutSeconds * 1000);
      }));
    if (stopped) return { name, state: await ctx.virsh.state(name), changed: true };
    if (!opts.force) {
      throw new VmsError(
        'timeout',
        `${name} did not shut down within ${opts.timeoutSeconds}s`,
        'the guest may ignore ACPI: wait longer, power it off when the time is up, or `vms kill` it',
        undefined,
        'power.stopTimeout',
        { name },
      );
    }
    await ctx.progress.step(`Powering off ${name}`, () => ctx.virsh.destroy(name));
    const forced = { name, state: await ctx.virsh.state(name), changed: true, forced: true };
    return isPaused(state) ? { ...forced, wasPaused: true } : forced;
  });
}
