import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../../config.js';
import { VmsError } from '../../errors.js';
import type { Context } from '../context.js';
import { ndjsonLine, type StampedEvent } from '../events.js';
import { eventProgress } from '../progress.js';
import { eventLog, vmFiles } from '../vm/vm-files.js';

// An operation's events: operation.start and operation.end around it on the bus, and a log of them in the directory
// of each VM it names, so `ls <state>/<vm>/events` shows what was done to a VM. The log is written when the operation
// has succeeded, while it still holds the VMs' locks: a VM made by the operation has its directory by then, one it
// destroyed has none (and no log is left behind in it), and no other command is removing the directory. A failed
// operation is undone and leaves nothing behind, not even a log (its events went to --events and the error to the
// user); a killed one is finished by `vms repair` from its journal.

/** How many operation logs a VM keeps (the oldest go). */
export const KEPT_EVENT_LOGS = 20;

export interface OperationInfo {
  command: string;
  vms: string[];
}

export class OperationEvents {
  /** The context whose steps are tagged with the operation's VM (when it is about one). */
  readonly ctx: Context;
  private readonly recorded: StampedEvent[] = [];
  private readonly stop: () => void = () => {};
  private readonly t0 = performance.now();
  private ended = false;
  private succeeded = false;

  constructor(
    ctx: Context,
    private readonly op: OperationInfo,
  ) {
    const bus = ctx.progress.events;
    if (!bus) {
      // A Progress without events (silentProgress, a test's own): nothing to announce or keep.
      this.ctx = ctx;
      this.ended = true;
      return;
    }
    this.stop = bus.on((e) => kept(e) && this.recorded.push(e));
    bus.emit({ type: 'operation.start', command: op.command, vms: op.vms });
    this.ctx = { ...ctx, progress: eventProgress(bus, op.vms.length === 1 ? op.vms[0] : undefined) };
  }

  /** Runs `fn`, then says how the operation ended (once: an inner settle wins over an outer one). */
  async settle<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const result = await fn();
      this.end();
      return result;
    } catch (err) {
      this.end(err);
      throw err;
    }
  }

  private end(err?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.succeeded = err === undefined;
    const error = err === undefined ? undefined : describe(err);
    this.ctx.progress.events?.emit({
      type: 'operation.end',
      ...this.op,
      ok: err === undefined,
      durationMs: performance.now() - this.t0,
      ...(error && { error }),
    });
  }

  /** After a success, writes the events into each VM's directory that exists; never fails the operation. */
  async save(config: Config): Promise<void> {
    this.stop();
    if (!this.succeeded || !this.recorded.length) return;
    const text = this.recorded.map(ndjsonLine).join('');
    for (const vm of new Set(this.op.vms)) {
      const files = vmFiles(config, vm);
      if (!existsSync(files.dir)) continue;
      try {
        await mkdir(files.eventLogs, { mode: 0o755 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') continue; // not ours to write (another user's VM)
      }
      await writeFile(eventLog(files, this.recorded[0]!.operation), text, { mode: 0o644 }).catch(() => {});
      await pruneEventLogs(files.eventLogs);
    }
  }
}

/**
 * What a VM's log keeps: not the console (its directory has it already, in install.log and apply.log) and of a
 * download only its last status (a few a second would swamp the log).
 */
const kept = (e: StampedEvent) => e.type !== 'transcript' && (e.type !== 'transfer' || e.final);

function describe(err: unknown): { message: string; code?: string; reason?: string } {
  if (err instanceof VmsError)
    return { message: err.message, code: err.code, ...(err.reason && { reason: err.reason }) };
  return { message: err instanceof Error ? err.message : String(err) };
}

/**
 * Keeps the newest KEPT_EVENT_LOGS logs. Operation ids begin with the time in base 36 (newOperationId), so their
 * names sort by age.
 */
export async function pruneEventLogs(dir: string, keep = KEPT_EVENT_LOGS): Promise<void> {
  const logs = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.ndjson')).sort();
  for (const old of logs.slice(0, Math.max(0, logs.length - keep))) await rm(join(dir, old), { force: true });
}
