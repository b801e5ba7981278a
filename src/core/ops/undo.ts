import { interrupted, isInterrupt } from '../../errors.js';
import type { Journal, JournalStep } from './journal.js';
import { runFileAction, type UndoAction } from './undo-actions.js';

// A multi-step command registers how to take back each thing it made; on any failure or interrupt the steps are
// undone newest first, so nothing is left half-made. Inside an operation (src/core/operation.ts) every step is also
// written to the operation's journal before the step runs, so a vms killed outright is undone by the next one.

export class UndoStack {
  private readonly actions: { what: string; fn: () => Promise<unknown> }[] = [];
  private readonly steps?: JournalStep[];

  /**
   * @param runAction runs an undo action given as data (add); @param journal where the steps are written down;
   * @param rollbacks where a rollback under way is told (what a forced exit would leave)
   */
  constructor(
    private readonly runAction?: (action: UndoAction) => Promise<void>,
    private readonly journal?: Journal,
    private readonly rollbacks?: Rollbacks,
  ) {
    this.steps = journal?.openStack();
  }

  /** An undo step only this process knows how to run (a closure): a repair after a kill can only report it. */
  push(what: string, fn: () => Promise<unknown>): void {
    this.actions.push({ what, fn });
    this.steps?.push({ what });
    void this.journal?.flush().catch(() => {});
  }

  /** An undo step as data: journaled (awaited) before the step it undoes runs, so a kill at any point is undone. */
  async add(what: string, action: UndoAction): Promise<void> {
    const run = this.runAction ?? runFileAction;
    this.actions.push({ what, fn: () => run(action) });
    this.steps?.push({ what, action });
    await this.journal?.flush();
  }

  /** Takes back the newest step unrun: what it would undo did not happen (e.g. a claim that found the file taken). */
  async drop(): Promise<void> {
    this.actions.pop();
    this.steps?.pop();
    await this.journal?.flush();
  }

  /**
   * Undoes everything, newest first; returns what could not be undone (so the error can say exactly what is left).
   * A journaled step that failed stays in the journal: a later `vms repair` tries it again.
   */
  async rollback(): Promise<string[]> {
    const failed: string[] = [];
    this.rollbacks?.add(this);
    try {
      while (this.actions.length) {
        const { what, fn } = this.actions[this.actions.length - 1]!;
        let ok = true;
        try {
          await fn();
        } catch (err) {
          ok = false;
          failed.push(`${what}: ${(err as Error).message}`);
        }
        this.actions.pop(); // only now: until it has run, it is still to do
        if (this.steps) {
          const step = this.steps.pop();
          if (!ok && step?.action) this.steps.unshift(step); // kept for a repair (order among failures is kept)
          await this.journal?.flush().catch(() => {});
        }
      }
    } finally {
      this.rollbacks?.delete(this);
    }
    return failed;
  }

  /** The command is done: nothing is to be undone any more. */
  async commit(): Promise<void> {
    this.actions.length = 0;
    if (this.steps) await this.journal?.closeStack(this.steps);
  }

  /** The rollback is over: the journal keeps only the steps that failed and can be tried again. */
  async close(): Promise<void> {
    if (this.steps && this.steps.length === 0) await this.journal?.closeStack(this.steps);
  }

  /** What is still to be undone, newest first. */
  get remaining(): string[] {
    return this.actions.map((a) => a.what).reverse();
  }
}

/**
 * The rollbacks under way in one caller's operations (a Context's `rollbacks`, never a global: a daemon runs many
 * operations at once, each told apart).
 */
export class Rollbacks {
  private readonly running = new Set<UndoStack>();

  add(stack: UndoStack): void {
    this.running.add(stack);
  }

  delete(stack: UndoStack): void {
    this.running.delete(stack);
  }

  /** The clean-up steps not yet done by rollbacks under way: what a forced exit (a third Ctrl-C) would leave. */
  remaining(): string[] {
    return [...this.running].flatMap((u) => u.remaining);
  }
}

export interface UndoOptions {
  /** When it says so at the moment of failure, nothing is rolled back (`vms create --keep-failed`). */
  keep?: () => boolean;
  /** Runs undo steps given as data (UndoStack.add); a Context's `undoRunner`. */
  runAction?: (action: UndoAction) => Promise<void>;
  journal?: Journal;
  /** Told of the rollback while it runs; a Context's `rollbacks`. */
  rollbacks?: Rollbacks;
}

const LEFT_BEHIND = Symbol('vms.leftBehind');

/** What the undo of a failed command could not take back (empty when it all went): decided on, never the message. */
export const leftBehind = (err: unknown): readonly string[] =>
  (err instanceof Error && (err as { [LEFT_BEHIND]?: string[] })[LEFT_BEHIND]) || [];

/**
 * Runs `body`; when it throws, rolls back and rethrows the original error (with what could not be undone). `opts`
 * may be just the `keep` function.
 */
export async function withUndo<T>(
  body: (undo: UndoStack) => Promise<T>,
  opts: UndoOptions | (() => boolean) = {},
): Promise<T> {
  const o = typeof opts === 'function' ? { keep: opts } : opts;
  const undo = new UndoStack(o.runAction, o.journal, o.rollbacks);
  let result: T;
  try {
    result = await body(undo);
  } catch (err) {
    if (o.keep?.()) {
      await undo.commit(); // kept on purpose: not for a repair to undo
      throw err;
    }
    const left = await undo.rollback();
    await undo.close();
    if (isInterrupt(err)) {
      throw left.length
        ? interrupted('some clean-up failed: see above for what is left', left.join('\n'))
        : interrupted('everything this command had made so far was removed');
    }
    if (left.length && err instanceof Error) {
      err.message += ` (and clean-up failed: ${left.join('; ')})`;
      Object.assign(err, { [LEFT_BEHIND]: left });
    }
    throw err;
  }
  await undo.commit();
  return result;
}
