import type { Command } from 'commander';
import { parseCpus } from '../../config.js';
import type { PowerResult } from '../../core/vm/power.js';
import { resetVm, resumeVm, suspendVm } from '../../core/vm/pause.js';
import { setVm, type Change, type SetOptions, type SetResult } from '../../core/vm/set.js';
import { checkSetOptions, MAX_DISPLAYS, MAX_TIMEOUT_SECONDS, requireChange } from '../../core/vm/validate.js';
import { usageError } from '../../errors.js';
import { formatSize, MEMORY_RANGE, parseSize } from '../../size.js';
import { action } from '../app.js';
import { fields } from '../format.js';

export interface SetFlags {
  memory?: string;
  cpus?: string;
  displays?: string;
  rename?: string;
  notes?: string;
  restart?: boolean;
  timeout: string;
}

function wholeNumber(text: string, what: string, min: number, max: number, example: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < min || n > max)
    throw usageError(`invalid ${what} '${text}'`, `use a whole number from ${min} to ${max}, for example ${example}`);
  return n;
}

export function toSetOptions(name: string, f: SetFlags): SetOptions {
  requireChange(f);
  // Text becomes values here; the rules on the values (ranges, whole KiB, the notes) are the core's (validate.ts).
  return checkSetOptions({
    name,
    memory: f.memory === undefined ? undefined : parseSize(f.memory, MEMORY_RANGE),
    cpus: f.cpus === undefined ? undefined : parseCpus(f.cpus),
    displays:
      f.displays === undefined ? undefined : wholeNumber(f.displays, 'display count', 1, MAX_DISPLAYS, '--displays 2'),
    rename: f.rename,
    notes: f.notes,
    restart: Boolean(f.restart),
    timeoutSeconds: wholeNumber(f.timeout, '--timeout', 0, MAX_TIMEOUT_SECONDS, '--timeout 120'),
  });
}

const APPLIED: Record<Change['applied'], string> = {
  live: 'now and saved',
  config: 'saved',
  restart: 'saved, restarted',
};

function show(c: Change, value: Change['before']): string {
  if (value === null) return '-';
  return c.setting === 'memory'
    ? formatSize(value as number)
    : c.setting === 'notes'
      ? JSON.stringify(value)
      : String(value);
}

export function renderSet(r: SetResult): string {
  if (r.changes.length === 0) return `nothing to change: ${r.name} already has these settings`;
  return fields(
    r.changes.map((c) => [c.setting, `${show(c, c.before)} → ${show(c, c.after)} (${APPLIED[c.applied]})`]),
  );
}

const say = (verb: string, unchanged: string) => (r: PowerResult) =>
  r.changed ? `${r.name} ${verb}` : `${r.name} is already ${unchanged}`;

export function register(program: Command): void {
  program
    .command('set')
    .description(
      "change a VM's memory, vCPUs, display heads, name or notes: live where libvirt can, else in its saved definition",
    )
    .argument('<name>', 'VM name')
    .option('--memory <size>', 'memory, e.g. 8G (live up to what it was started with)')
    .option('--cpus <n>', 'virtual CPUs (live: more, up to its maximum)')
    .option('--displays <n>', 'display heads of its graphical display (needs it shut off)')
    .option('--rename <new>', 'a new name; its directory moves along, its disks stay (needs it shut off)')
    .option('--notes <text>', 'your notes about the VM, shown by `vms info` ("" removes them)')
    .option('--restart', 'shut a running VM down (ACPI) and start it again when a change needs it off')
    .option('--timeout <seconds>', 'how long --restart waits for the guest to shut down', '60')
    .action(
      action<SetFlags>(async ({ ctx, opts }, name) => ({
        data: await setVm(ctx, toSetOptions(name!, opts)),
        human: renderSet,
      })),
    );

  program
    .command('reset')
    .description('hard-reset a running VM (like the reset button: no clean shutdown)')
    .argument('<name>', 'VM name')
    .action(action(async ({ ctx }, name) => ({ data: await resetVm(ctx, name!), human: say('reset', 'reset') })));

  program
    .command('suspend')
    .description('pause a running VM where it is (it keeps its memory)')
    .argument('<name>', 'VM name')
    .action(
      action(async ({ ctx }, name) => ({ data: await suspendVm(ctx, name!), human: say('suspended', 'paused') })),
    );

  program
    .command('resume')
    .description('let a suspended VM run on')
    .argument('<name>', 'VM name')
    .action(action(async ({ ctx }, name) => ({ data: await resumeVm(ctx, name!), human: say('resumed', 'running') })));
}
