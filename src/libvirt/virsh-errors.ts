import { VmsError, type ErrorReason } from '../errors.js';
import { errorSummary, type RunResult } from '../runner.js';

// virsh's failures as typed errors: an exit code's class (VmsError.code) and, for the failures vms decides on, a
// reason (VmsError.reason). Only here are virsh's error messages read.

export const UNREACHABLE_HINT =
  'is libvirtd running? `vms bootstrap` installs and starts it, `vms doctor` explains what is wrong';
const DENIED_HINT =
  'libvirt lets the libvirt group in: `vms bootstrap` adds you to it, then log out and in again; `vms doctor` explains what is wrong';

/**
 * virsh's words for the failures the core decides on (by their reason, never by these words). Matched on the whole
 * error output, in order: the first match wins.
 */
const REASONS: readonly [RegExp, ErrorReason][] = [
  [/Domain snapshot not found/i, 'snapshot.notFound'],
  [/Network not found/i, 'network.notFound'],
  [/Storage pool not found/i, 'pool.notFound'],
  [/pflash based firmware/i, 'snapshot.uefiUnsupported'],
  [/No more available PCI slots/i, 'pci.noSlots'],
  [/Failed to get .*"write" lock/i, 'disk.locked'],
  [/virtiofs does not (yet )?support read-only/i, 'virtiofs.readonlyUnsupported'],
  [/'virtiofs' requires shared memory/i, 'virtiofs.needsSharedMemory'],
  // No agent channel in the definition, nobody at its end, or an agent that does not answer in time.
  [/guest agent is not (configured|connected|responding)|guest agent not available/i, 'agent.unavailable'],
  [/unable to execute QEMU agent command/i, 'agent.failed'],
  [/domain is not running/i, 'domain.notRunning'],
];

const reasonOf = (stderr: string) => REASONS.find(([words]) => words.test(stderr))?.[1];

/** Turns virsh's error text into a typed error. `subject` names the VM the command was about, if any. */
export function classifyVirshError(args: readonly string[], r: RunResult, uri: string, subject?: string): VmsError {
  const err = r.stderr;
  const line = errorSummary(r);
  // Only the connection to libvirtd itself: a domain failing to reach virtlogd or a network socket is not this.
  if (/failed to connect to the hypervisor/i.test(err)) {
    const why = line.replace(/^failed to connect to the hypervisor(: )?/i, '') || 'no answer';
    // libvirtd is there but turned us away: its socket's permissions, or polkit.
    const denied = /permission denied|not authorized|authentication (unavailable|failed)/i.test(why);
    const message = `cannot reach libvirt at ${uri}: ${why}`;
    return denied
      ? new VmsError('unreachable', message, DENIED_HINT, undefined, 'libvirt.denied')
      : new VmsError('unreachable', message, UNREACHABLE_HINT, undefined, 'libvirt.unreachable');
  }
  if (subject && /Domain not found|failed to get domain/i.test(err)) {
    const hint = '`vms list` shows the VMs';
    return new VmsError('notFound', `no VM named '${subject}'`, hint, undefined, 'domain.notFound');
  }
  const reason = reasonOf(err);
  const conflicting = /already exists|is already defined|domain is (not running|already active)|not valid: domain/i;
  if (conflicting.test(err)) return new VmsError('conflict', line, undefined, undefined, reason);
  // The CLI words "see the commands" with its -v flag (data.seeCommands).
  const hint = 'the commands run (verbose output) say more';
  return new VmsError('failed', `virsh ${args[0]} failed: ${line}`, hint, undefined, reason, { seeCommands: true });
}
