import { closeSync, openSync, writeSync } from 'node:fs';
import { VmsError } from '../errors.js';
import type { TransferStatus } from './progress.js';

// What the core reports while it works, as typed events (modelled on lima's hostagent events and changesets'
// reporter): the CLI renders them (a spinner, `==>` lines), writes them as NDJSON (--events FILE) and each operation
// keeps them in the directories of its VMs. A library or the HTTP daemon listens to the same bus.

export type VmsEvent =
  /** A command that changes VMs begins (withOperation): what runs, and on which VMs. */
  | { type: 'operation.start'; command: string; vms: string[] }
  | {
      type: 'operation.end';
      command: string;
      vms: string[];
      ok: boolean;
      durationMs: number;
      /** Why it failed: the VmsError's code and reason when it has them. */
      error?: { message: string; code?: string; reason?: string };
    }
  /** One named step of a command; `vm` when the operation is about one VM. */
  | { type: 'step.start'; id: number; title: string; vm?: string }
  | { type: 'step.end'; id: number; title: string; vm?: string; ok: boolean; durationMs: number }
  /** A remark worth telling the user; `step` is the step running then, if any. */
  | { type: 'note'; message: string; step?: number }
  /** How far a download has got (a few a second); the same fields as TransferStatus. */
  | ({ type: 'transfer'; step?: number } & TransferStatus)
  /** What a guest printed on its console, as it came (chunks, not always whole lines). */
  | { type: 'transcript'; text: string; step?: number };

export type VmsEventType = VmsEvent['type'];

/** An event as listeners get it: when it happened and which operation (VMS_OPERATION, the journal's id) it is of. */
export type StampedEvent = VmsEvent & { time: string; operation: string };

export type EventListener = (event: StampedEvent) => void;

/** One operation's events: listeners subscribe, the core emits (through eventProgress and withOperation). */
export class EventBus {
  private readonly listeners = new Set<EventListener>();
  private lastStep = 0;
  /** The steps begun and not yet ended, innermost last: notes, transfers and transcripts belong to the last one. */
  readonly openSteps: number[] = [];

  constructor(readonly operationId: string) {}

  /** Adds a listener; returns the function that removes it. */
  on(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: VmsEvent): void {
    // `type` first: a line of the NDJSON log reads as what happened, then when.
    const { type, ...rest } = event;
    const stamped = { type, time: new Date().toISOString(), operation: this.operationId, ...rest } as StampedEvent;
    for (const listener of this.listeners) {
      try {
        listener(stamped);
      } catch {
        // A listener that fails (a full disk under --events) is dropped: reporting must never fail the command.
        this.listeners.delete(listener);
      }
    }
  }

  /** Ids are unique within the operation, so a step.end pairs with its step.start even when steps nest. */
  nextStepId(): number {
    return ++this.lastStep;
  }

  get currentStep(): number | undefined {
    return this.openSteps.at(-1);
  }
}

/** One event as one line of NDJSON (newline included). */
export const ndjsonLine = (event: StampedEvent) => JSON.stringify(event) + '\n';

/**
 * A listener that appends each event to FILE as one NDJSON line (created 0644 if missing; appended to, so several
 * commands can share one file: the operation field tells them apart). Written synchronously: the file is complete
 * whenever the process ends, even by a third Ctrl-C.
 */
export function ndjsonFileListener(path: string): EventListener & { close(): void } {
  let fd: number;
  try {
    fd = openSync(path, 'a', 0o644);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new VmsError(
      'usage',
      `cannot write events to ${path}: ${code}`,
      'give a file in a directory you may write to',
    );
  }
  return Object.assign((event: StampedEvent) => void writeSync(fd, ndjsonLine(event)), { close: () => closeSync(fd) });
}
