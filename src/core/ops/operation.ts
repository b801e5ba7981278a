import { conflict, VmsError } from '../../errors.js';
import { validateName } from '../../names.js';
import type { Context } from '../context.js';
import { Journal, readJournals } from './journal.js';
import { OperationEvents } from './operation-log.js';
import { HOST_LOCK, LockBusy, lockOrder, type LockRequest } from './locks.js';
import { repairInterrupted } from './repair.js';
import { runUndoAction } from './undo-actions.js';
import type { UndoOptions } from './undo.js';

// Every command that changes a VM runs as an operation: it first finishes what killed vms processes left undone, then
// takes the locks of the VMs it touches (in one fixed order), and writes a journal of what it is doing while it runs.
// The CLI, the library and the HTTP daemon all go through here, so two commands on one VM never interleave.

export interface OperationRequest extends LockRequest {
  /** What runs, for the "busy" message and the journal: 'clone', 'disk add', … */
  command: string;
}

/** The undo options for withUndo inside an operation: undo steps as data, written to its journal. */
export function undoOptions(ctx: Context, keep?: () => boolean): UndoOptions {
  return { keep, journal: ctx.journal, rollbacks: ctx.rollbacks, runAction: (action) => runUndoAction(ctx, action) };
}

/** "X is busy (vms clone, pid N)": who holds the lock, from the journals of the operations that run. */
async function busyError(ctx: Context, err: LockBusy): Promise<VmsError> {
  const holders = (await readJournals(ctx.config.stateDir.value)).filter(
    (j) => j.alive && j.id !== ctx.operationId && (err.lock === HOST_LOCK ? j.host : j.vms.includes(err.lock)),
  );
  const by = holders.map((j) => `vms ${j.command}, pid ${j.pid}`).join('; ');
  const subject = err.lock === HOST_LOCK ? 'another vms command is changing shared disks' : `${err.lock} is busy`;
  return new VmsError(
    'conflict',
    by ? `${subject} (${by})` : subject,
    'wait for it to finish, then try again',
    undefined,
    'lock.busy',
  );
}

export async function withOperation<T>(
  ctx: Context,
  req: OperationRequest,
  body: (ctx: Context) => Promise<T>,
): Promise<T> {
  for (const vm of req.vms) validateName(vm); // a name becomes a lock file's name: no '../x' ever reaches the file system
  const wanted = lockOrder(req);
  // Inside an operation that already holds these locks (set --restart stopping and starting its VM): just run.
  const outer = ctx.journal && ctx.heldLocks;
  if (outer) {
    const missing = wanted.filter((l) => !outer.has(l));
    if (missing.length)
      throw new Error(`internal: ${req.command} needs locks its operation does not hold: ${missing.join(', ')}`);
    return body(ctx);
  }
  const events = new OperationEvents(ctx, { command: req.command, vms: req.vms });
  return events.settle(() => locked(events.ctx, req, wanted, body, events));
}

/** Repairs, locks and journals the operation (events: its announcer, which keeps its log). */
async function locked<T>(
  ctx: Context,
  req: OperationRequest,
  wanted: string[],
  body: (ctx: Context) => Promise<T>,
  events: OperationEvents,
): Promise<T> {
  const left = await repairInterrupted(ctx);
  const blocking = left.filter((r) => r.failed.length && r.vms.some((vm) => wanted.includes(vm)));
  if (blocking.length) {
    const r = blocking[0]!;
    throw conflict(
      `an interrupted vms ${r.command} (pid ${r.pid}) left work on ${r.vms.join(', ')} that could not be finished: ${r.failed[0]}`,
      '`vms repair` tries again and says what is left',
    );
  }
  let lease;
  try {
    lease = await ctx.locks.acquire(req);
  } catch (err) {
    throw err instanceof LockBusy ? await busyError(ctx, err) : err;
  }
  try {
    const journal = await Journal.create(ctx.config.stateDir.value, {
      id: ctx.operationId,
      command: req.command,
      vms: lockOrder({ vms: req.vms }),
      host: Boolean(req.host),
    });
    try {
      return await events.settle(() => body({ ...ctx, journal, heldLocks: new Set(wanted) }));
    } finally {
      // Undo steps that failed stay written down for `vms repair`; otherwise the operation leaves no trace.
      if (!journal.pending) await journal.remove();
    }
  } finally {
    await events.save(ctx.config); // while the VMs are still locked
    await lease.release();
  }
}
