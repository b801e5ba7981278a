import { interrupted, isInterrupt } from '../errors.js';

// A multi-step command registers how to take back each thing it made; on any failure or interrupt the steps are
// undone newest first, so nothing is left half-made.
export class UndoStack {
  private readonly actions: { what: string; fn: () => Promise<unknown> }[] = [];

  push(what: string, fn: () => Promise<unknown>): void {
    this.actions.push({ what, fn });
  }

  /** Undoes everything, newest first; returns what could not be undone (so the error can say exactly what is left). */
  async rollback(): Promise<string[]> {
    const failed: string[] = [];
    rollingBack.add(this);
    try {
      while (this.actions.length) {
        const { what, fn } = this.actions[this.actions.length - 1]!;
        try {
          await fn();
        } catch (err) {
          failed.push(`${what}: ${(err as Error).message}`);
        }
        this.actions.pop(); // only now: until it has run, it is still to do
      }
    } finally {
      rollingBack.delete(this);
    }
    return failed;
  }

  /** What is still to be undone, newest first. */
  get remaining(): string[] {
    return this.actions.map((a) => a.what).reverse();
  }
}

const rollingBack = new Set<UndoStack>();

/** The clean-up steps not yet done by rollbacks under way: what a forced exit (a third Ctrl-C) would leave. */
export function cleanupInProgress(): string[] {
  return [...rollingBack].flatMap((u) => u.remaining);
}

/**
 * Runs `body`; when it throws, rolls back and rethrows the original error (with what could not be undone). When
 * `keep` says so at that moment, nothing is rolled back (`vms create --keep-failed` leaves the VM for inspection).
 */
export async function withUndo<T>(body: (undo: UndoStack) => Promise<T>, keep?: () => boolean): Promise<T> {
  const undo = new UndoStack();
  try {
    return await body(undo);
  } catch (err) {
    if (keep?.()) throw err;
    const left = await undo.rollback();
    if (isInterrupt(err)) {
      throw left.length
        ? interrupted('some clean-up failed: see above for what is left', left.join('\n'))
        : interrupted('everything this command had made so far was removed');
    }
    if (left.length && err instanceof Error) err.message += ` (and clean-up failed: ${left.join('; ')})`;
    throw err;
  }
}
