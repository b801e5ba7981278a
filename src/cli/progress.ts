import chalk from 'chalk';
import { EventBus, ndjsonFileListener, type EventListener, type StampedEvent } from '../core/events.js';
import { eventProgress, type Progress } from '../core/progress.js';

// The CLI's renderers of the core's progress events, on stderr: a spinner on a terminal, one plain `==>` line per
// step otherwise, nothing with --json. A download redraws its spinner's line with a bar; without a terminal it prints
// a line every few seconds and at the end. --events FILE also writes every event to FILE as NDJSON.

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

/** Where a renderer writes (stderr; a test gives its own). */
export type Write = (text: string) => void;
const writeTo =
  (out: NodeJS.WritableStream): Write =>
  (text) =>
    void out.write(text);
const toStderr = writeTo(process.stderr);

/** How often a download prints a plain line when stderr is not a terminal. */
export const TRANSFER_LINE_EVERY_MS = 5000;

/** "[#######.............]" for a fraction from 0 to 1. */
export function bar(fraction: number, width = 20): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

/** The few methods of an ora spinner the renderer uses. */
export interface Spinner {
  text: string;
  succeed(text: string): unknown;
  fail(text: string): unknown;
}
export type StartSpinner = (title: string) => Spinner;

/** A spinner per step, ticked off with its duration (and a download's last status) or marked failed. */
export function spinnerRenderer(start: StartSpinner, write: Write = toStderr): EventListener {
  const running = new Map<number, { spinner: Spinner; title: string; transferred?: string }>();
  let current: number | undefined;
  return (event: StampedEvent) => {
    switch (event.type) {
      case 'step.start':
        running.set(event.id, { spinner: start(event.title), title: event.title });
        current = event.id;
        return;
      case 'step.end': {
        const step = running.get(event.id);
        if (!step) return;
        running.delete(event.id);
        if (current === event.id) current = undefined;
        const transferred = step.transferred ? chalk.dim(`  ${step.transferred}`) : '';
        if (event.ok) step.spinner.succeed(`${step.title}${transferred} ${chalk.dim(seconds(event.durationMs))}`);
        else step.spinner.fail(step.title);
        return;
      }
      case 'note':
        return write(`${chalk.yellow('!')} ${event.message}\n`);
      case 'transfer': {
        const step = current === undefined ? undefined : running.get(current);
        if (!step) return;
        if (event.final) step.transferred = event.text;
        const shown = event.total ? `${bar(event.done / event.total)} ${event.text}` : event.text;
        step.spinner.text = `${step.title}  ${chalk.dim(shown)}`;
        return;
      }
    }
  };
}

/**
 * Plain lines: `==> TITLE` when a step starts, `==> TITLE: failed after 1.2s` when one fails, `note: …`, a
 * download's status every TRANSFER_LINE_EVERY_MS and at its end. @param verbose also streams guest consoles (-v)
 */
export function lineRenderer(verbose = false, write: Write = toStderr): EventListener {
  let lastLine = 0;
  return (event: StampedEvent) => {
    switch (event.type) {
      case 'step.start':
        write(`==> ${event.title}\n`);
        lastLine = performance.now();
        return;
      case 'step.end':
        if (!event.ok) write(`==> ${event.title}: failed after ${seconds(event.durationMs)}\n`);
        return;
      case 'note':
        return write(`note: ${event.message}\n`);
      case 'transcript':
        if (verbose) write(chalk.dim(event.text));
        return;
      case 'transfer': {
        const now = performance.now();
        if (!event.final && now - lastLine < TRANSFER_LINE_EVERY_MS) return;
        lastLine = now;
        return write(`    ${event.text}\n`);
      }
    }
  };
}

/** Plain lines on `out` (stderr) as a Progress of its own (an operation id is not needed to render). */
export function lineProgress(verbose = false, out: NodeJS.WritableStream = process.stderr): Progress {
  const bus = new EventBus('');
  bus.on(lineRenderer(verbose, writeTo(out)));
  return eventProgress(bus);
}

export interface ProgressChoice {
  operationId: string;
  /** --json: no rendering at all (the events still flow to --events and the VMs' logs). */
  json: boolean;
  /** A terminal with a width to redraw a spinner in. */
  spinner: boolean;
  verbose: boolean;
  /** --events FILE */
  eventsFile?: string;
  /** Where the spinner and lines go (the CLI's stderr). */
  out?: NodeJS.WritableStream;
}

/** The command's Progress: its events rendered as the user asked, and written to --events FILE. */
export async function cliProgress(choice: ProgressChoice): Promise<Progress> {
  const bus = new EventBus(choice.operationId);
  if (choice.eventsFile) bus.on(ndjsonFileListener(choice.eventsFile));
  if (choice.json) return eventProgress(bus);
  const out = choice.out ?? process.stderr;
  if (choice.spinner) {
    const { default: ora } = await import('ora'); // only on a terminal: its load time is not paid otherwise
    // discardStdin off: ora would read the terminal raw, and a Ctrl-C typed there would never become SIGINT.
    // isEnabled: the terminal was judged above; ora's own test also turns spinners off whenever CI is set, which
    // would print its "- step" lines on a terminal that vms just chose to draw a spinner on.
    const start = (title: string) => ora({ text: title, stream: out, discardStdin: false, isEnabled: true }).start();
    bus.on(spinnerRenderer(start, writeTo(out)));
  } else bus.on(lineRenderer(choice.verbose, writeTo(out)));
  return eventProgress(bus);
}
