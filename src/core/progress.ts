import { EventBus } from './events.js';

// How the core reports progress without printing. Core code calls these methods; eventProgress turns them into typed
// events (src/core/events.ts) that the CLI renders (spinner, plain lines, nothing with --json) and writes as NDJSON.
// A library user or the HTTP API listens to the same events, or supplies a Progress of their own.
export interface Progress {
  /** Runs one named step of a multi-step command. */
  step<T>(title: string, fn: () => Promise<T>): Promise<T>;
  /** A remark worth telling the user (a fallback taken, something kept). */
  note(message: string): void;
  /** What a guest prints on its console while vms drives it (shown with -v). */
  transcript?(text: string): void;
  /** How far a download inside the current step has got: called a few times a second; the renderer picks how often to show it. */
  transfer?(status: TransferStatus): void;
  /** The bus behind an event-based Progress: operations announce themselves on it and keep its events per VM. */
  readonly events?: EventBus;
}

export interface TransferStatus {
  /** Bytes there so far (a resumed download counts what it already had). */
  done: number;
  total?: number;
  /** Bytes per second, lately. */
  rate?: number;
  /** Seconds still to go at that rate. */
  eta?: number;
  /** The same as one short line, e.g. "512M / 1.2G (42%)  10.5M/s  ETA 1m10s". */
  text: string;
  /** The transfer's last report. */
  final: boolean;
}

export const silentProgress: Progress = {
  step: (_title, fn) => fn(),
  note: () => {},
};

/**
 * A Progress that emits events on `bus`: each step a step.start and a step.end with its id, duration and outcome.
 * `vm` names the VM the steps are about (withOperation gives it for an operation on one VM).
 */
export function eventProgress(bus: EventBus, vm?: string): Progress & { readonly events: EventBus } {
  const about = vm === undefined ? {} : { vm };
  return {
    events: bus,
    async step(title, fn) {
      const id = bus.nextStepId();
      bus.emit({ type: 'step.start', id, title, ...about });
      bus.openSteps.push(id);
      const t0 = performance.now();
      let ok = false;
      try {
        const result = await fn();
        ok = true;
        return result;
      } finally {
        const at = bus.openSteps.lastIndexOf(id);
        if (at >= 0) bus.openSteps.splice(at, 1);
        bus.emit({ type: 'step.end', id, title, ...about, ok, durationMs: performance.now() - t0 });
      }
    },
    note: (message) => bus.emit({ type: 'note', message, ...inStep(bus) }),
    transcript: (text) => bus.emit({ type: 'transcript', text, ...inStep(bus) }),
    transfer: (status) => bus.emit({ type: 'transfer', ...inStep(bus), ...status }),
  };
}

const inStep = (bus: EventBus) => (bus.currentStep === undefined ? {} : { step: bus.currentStep });
