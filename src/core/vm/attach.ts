import { findProgram } from '../host/programs.js';
import { VmsError } from '../../errors.js';
import type { Context } from '../context.js';
import { isActive, loadVm } from './vm.js';
import { shellQuote as q } from '../../quote.js';

// What `vms console` and `vms viewer` attach to. The core says what to run; the CLI runs it on the user's terminal.

export interface AttachCommand {
  cmd: string;
  args: string[];
}

async function requireRunning(ctx: Context, name: string) {
  const vm = await loadVm(ctx, name);
  if (!isActive(vm.state))
    throw new VmsError('conflict', `${name} is not running (${vm.state})`, `start it with \`vms start ${q(name)}\``);
  return vm;
}

export interface ConsoleTarget {
  name: string;
  socket: string;
  log?: string;
}

/** The running VM's unix-socket serial console (and its transcript). */
export async function consoleTarget(ctx: Context, name: string): Promise<ConsoleTarget> {
  const vm = await requireRunning(ctx, name);
  if (!vm.facts.serialSocket) {
    throw new VmsError(
      'conflict',
      `${name} has no unix-socket serial console`,
      `it was not made by vms: use \`virsh console ${q(name)}\``,
    );
  }
  return { name, socket: vm.facts.serialSocket, log: vm.facts.serialLog };
}

export interface ViewerPlan {
  name: string;
  uri: string; // spice://127.0.0.1:5900
  /** What to launch; absent when there is no graphical session or no viewer installed (`reason` says which). */
  launch?: AttachCommand;
  reason?: string;
}

export async function viewerPlan(ctx: Context, name: string): Promise<ViewerPlan> {
  const { env } = ctx.host;
  const vm = await requireRunning(ctx, name);
  if (!vm.facts.graphics)
    throw new VmsError('conflict', `${name} has no graphical display`, `use \`vms console ${q(name)}\``);
  const uri = await ctx.virsh.domdisplay(name);
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY) {
    return {
      name,
      uri,
      reason:
        'no graphical session (DISPLAY and WAYLAND_DISPLAY are unset): open the URI with remote-viewer on a machine with a display',
    };
  }
  const viewer = findProgram(['virt-viewer', 'remote-viewer'], env.PATH);
  if (!viewer)
    return {
      name,
      uri,
      reason: 'neither virt-viewer nor remote-viewer is installed: `vms bootstrap` installs virt-viewer',
    };
  const launch =
    viewer === 'virt-viewer' ? { cmd: viewer, args: ['--connect', ctx.virsh.uri, name] } : { cmd: viewer, args: [uri] };
  return { name, uri, launch };
}
