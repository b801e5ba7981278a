// Typed errors: every failure the core reports carries a stable code, a one-line message, a hint that says how to
// fix it, and the exit code the CLI maps it to. The exit codes are documented in README.md.

export const ExitCode = {
  ok: 0,
  failed: 1, // an external tool failed in a way we could not classify
  usage: 2, // bad input: names, sizes, options
  notFound: 3, // unknown VM, missing file
  conflict: 4, // name taken, wrong state, something depends on it
  unreachable: 5, // libvirtd cannot be reached
  timeout: 6,
  missingTool: 7, // a required program is not installed
  interrupted: 130,
} as const;

export type ErrorCode = keyof typeof ExitCode;

/**
 * A stable name for what went wrong, set where the failure is classified (classifyVirshError, the libvirt wrappers,
 * the locks): the core decides on it, never on an error's message text.
 */
export type ErrorReason =
  | 'lock.busy' // another vms command holds the lock
  | 'libvirt.unreachable' // libvirtd does not answer
  | 'libvirt.denied' // libvirtd answers but turns us away (socket permissions, polkit)
  | 'domain.notFound'
  | 'domain.notRunning' // the command needs a running domain
  | 'network.notFound'
  | 'pool.notFound'
  | 'snapshot.notFound'
  | 'snapshot.uefiUnsupported' // libvirt cannot take an internal snapshot of a running UEFI domain
  | 'pci.noSlots' // no free PCIe slot to hotplug a device into
  | 'disk.locked' // QEMU cannot take a disk image's write lock: another QEMU uses it
  | 'virtiofs.readonlyUnsupported' // libvirt cannot make a virtiofs share read-only
  | 'virtiofs.needsSharedMemory' // the running domain has no shared memory for virtiofs
  | 'agent.unavailable' // no guest agent: none configured, not connected, or not responding
  | 'agent.failed' // the guest agent answered with an error
  | 'agent.badReply' // the guest agent's answer is not what its protocol says
  | 'vm.paused' // the VM is paused: resume it first
  // Refusals of the core, which the CLI words with its own flags (src/cli/hints.ts):
  | 'unexpected' // a failure nobody classified
  | 'input.invalid'
  | 'set.nothing'
  | 'set.needsOff'
  | 'set.shutdownTimeout'
  | 'set.noGraphics'
  | 'set.unfinished'
  | 'apply.unfinished'
  | 'power.stopTimeout'
  | 'kernelBoot.noKernel'
  | 'clone.foreignDisk'
  | 'clone.notQcow2'
  | 'clone.fullRunning'
  | 'snapshot.internalNeedsQcow2'
  | 'snapshot.uefiInternal'
  | 'user.invalid'
  | 'sshKey.notFound'
  | 'iso.notIso'
  | 'disk.inUse'
  | 'disk.inUseReadable'
  | 'disk.readonlySata'
  | 'disk.readOnlyFile'
  | 'disk.notDeletable'
  | 'mount.systemDir'
  | 'mount.tempShutOff'
  | 'mount.notEmpty'
  | 'mount.needsRestart'
  | 'nic.badMac'
  | 'nic.twoSources'
  | 'nic.badNetwork'
  | 'nic.networkMissing'
  | 'nic.noBridge'
  | 'nic.macTaken'
  | 'serial.badBackend'
  | 'serial.serverFile';

export class VmsError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  /** Extra lines shown after the message, e.g. the tail of a transcript. */
  readonly details?: string;
  /** A stable name for what went wrong (e.g. `lock.busy`): callers decide on it, never on the message text. */
  readonly reason?: ErrorReason;
  /** The facts of the failure a caller (the CLI's hints) words its own advice from, e.g. `{ needsOff: [...] }`. */
  readonly data?: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    hint?: string,
    details?: string,
    reason?: ErrorReason,
    data?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'VmsError';
    this.code = code;
    this.hint = hint;
    this.details = details;
    this.reason = reason;
    this.data = data;
  }

  get exitCode(): number {
    return ExitCode[this.code];
  }
}

/** True when `err` is a VmsError classified as `reason`. */
export const hasReason = (err: unknown, reason: ErrorReason): err is VmsError =>
  err instanceof VmsError && err.reason === reason;

export const usageError = (message: string, hint?: string) => new VmsError('usage', message, hint);
export const notFound = (message: string, hint?: string) => new VmsError('notFound', message, hint);
export const conflict = (message: string, hint?: string) => new VmsError('conflict', message, hint);

export function interrupted(hint?: string, details?: string): VmsError {
  return new VmsError('interrupted', 'interrupted', hint, details);
}

export const isInterrupt = (err: unknown) =>
  (err instanceof VmsError && err.code === 'interrupted') || (err instanceof Error && err.name === 'AbortError');

/** Wraps anything thrown into a VmsError so the CLI can always print a message, a hint and an exit code. */
export function toVmsError(err: unknown): VmsError {
  if (err instanceof VmsError) return err;
  if (isInterrupt(err)) return interrupted();
  const message = err instanceof Error ? err.message : String(err);
  return new VmsError('failed', message.split('\n')[0] ?? message, undefined, undefined, 'unexpected');
}
