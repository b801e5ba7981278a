import { VmsError } from '../../errors.js';
import type { DirectKernelBoot } from '../../libvirt/domain-xml.js';
import { formatSize, MEMORY_RANGE } from '../../size.js';
import type { SetOptions, SetRequest } from './set.js';

// The rules on what a VM may be asked to be, checked by the core itself: a library or HTTP caller never passes
// through the CLI's option parsing. The CLI parses text into these values and leaves the rules to this file; its
// words for a refusal (flag names) come from the error's reason and data (src/cli/hints.ts).

/** Most heads a virtio or QXL display device takes. */
export const MAX_DISPLAYS = 16;
export const MAX_CPUS = 512;
/** The longest a command waits for a guest to shut down (a day). */
export const MAX_TIMEOUT_SECONDS = 24 * 3600;

const invalid = (what: string, value: unknown, hint: string, data: Record<string, unknown>) =>
  new VmsError('usage', `invalid ${what} ${String(value)}`, hint, undefined, 'input.invalid', { what, value, ...data });

/** A whole number from min to max, or a usage error naming `what`. */
export function checkWhole(value: number, what: string, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalid(what, value, `use a whole number from ${min} to ${max}`, { min, max });
  }
  return value;
}

/** Memory in bytes within MEMORY_RANGE, rounded to whole KiB (libvirt counts memory in KiB). */
export function checkMemory(bytes: number): number {
  if (!Number.isFinite(bytes) || bytes < MEMORY_RANGE.min || bytes > MEMORY_RANGE.max) {
    const hint = `use a value between ${formatSize(MEMORY_RANGE.min)} and ${formatSize(MEMORY_RANGE.max)}`;
    throw invalid('memory', bytes, hint, { min: MEMORY_RANGE.min, max: MEMORY_RANGE.max });
  }
  return Math.round(bytes / 1024) * 1024;
}

/** A `vms set` that asks for no change at all is refused. */
export function requireChange(req: Partial<Record<keyof SetRequest, unknown>>): void {
  if (Object.values(pick(req)).every((v) => v === undefined)) {
    const hint = 'give a memory size, a vCPU count, display heads, a name or notes';
    throw new VmsError('usage', 'nothing to change', hint, undefined, 'set.nothing');
  }
}

const pick = ({ memory, cpus, displays, rename, notes }: Partial<Record<keyof SetRequest, unknown>>) => ({
  memory,
  cpus,
  displays,
  rename,
  notes,
});

/** What `vms set` is asked, checked and normalised (memory in whole KiB); refused when it asks for nothing. */
export function checkSetOptions(opts: SetOptions): SetOptions {
  requireChange(opts);
  return {
    ...opts,
    memory: opts.memory === undefined ? undefined : checkMemory(opts.memory),
    cpus: opts.cpus === undefined ? undefined : checkWhole(opts.cpus, 'CPU count', 1, MAX_CPUS),
    displays: opts.displays === undefined ? undefined : checkWhole(opts.displays, 'display count', 1, MAX_DISPLAYS),
    timeoutSeconds: checkWhole(opts.timeoutSeconds, 'timeout', 0, MAX_TIMEOUT_SECONDS),
  };
}

/** A direct kernel boot: an initrd or a command line only with a kernel to go with them. */
export function checkKernelBoot(boot: Partial<DirectKernelBoot> | undefined): DirectKernelBoot | undefined {
  if (!boot || (!boot.kernel && !boot.initrd && !boot.cmdline)) return undefined;
  if (!boot.kernel) {
    throw new VmsError(
      'usage',
      'an initrd or a kernel command line needs a kernel',
      undefined,
      undefined,
      'kernelBoot.noKernel',
    );
  }
  return { kernel: boot.kernel, initrd: boot.initrd || undefined, cmdline: boot.cmdline || undefined };
}
