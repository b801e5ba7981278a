import chalk from 'chalk';
import type { Command, OptionValues } from 'commander';
import { loadConfig } from '../config.js';
import { createContext, newOperationId, processHost, type Context, type Host } from '../core/context.js';
import { Rollbacks } from '../core/ops/undo.js';
import { toVmsError, type VmsError } from '../errors.js';
import { ExecaRunner, type Runner } from '../runner.js';
import { forCommandLine } from './hints.js';
import { processIo, terminalPrompter, type Io, type Prompter } from './io.js';
import { cliProgress } from './progress.js';

// The one place that prints results and errors and sets the exit code. Commands return data plus a human rendering.

export interface GlobalOptions {
  connect?: string;
  json?: boolean;
  verbose?: boolean;
  /** --events FILE: every progress event as a line of NDJSON */
  events?: string;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each command pairs its own data type with its renderer
export interface Output<T = any> {
  data: T;
  /** Human rendering; omitted when the command has already done its work on the terminal (console). */
  human?: (data: T) => string;
  /** Non-zero when the command ran but its answer is "no" (doctor with a failing check). */
  exitCode?: number;
}

export interface Invocation<O> {
  ctx: Context;
  opts: O;
  globals: GlobalOptions;
  /** The command's streams and environment: read these, never `process`. */
  io: Io;
  prompter: Prompter;
}

/** What the program runs on: the process (processCli), or a test's streams and fakes (test/helpers/test-io.ts). */
export interface Cli {
  io: Io;
  prompter: Prompter;
  /** Who the commands act for. */
  host: Host;
  /** The runner of one command: `log` shows each command run (-v), `env` goes to every tool it starts. */
  runner(log: ((line: string) => void) | undefined, env: Record<string, string>): Runner;
  /** Where the exit code goes. */
  setExitCode(code: number): void;
  /** Hooks SIGINT, SIGHUP and SIGTERM; absent, no signal is hooked (a test). */
  onStopSignal?(handler: () => void): void;
  /** Leaves at once (a third Ctrl-C, commander's usage errors). */
  exit(code: number): never;
}

export function processCli(): Cli {
  const io = processIo();
  return {
    io,
    prompter: terminalPrompter(io),
    host: processHost(),
    runner: (log, env) => new ExecaRunner(log, env),
    setExitCode: (code) => {
      process.exitCode = code;
    },
    onStopSignal: (handler) => {
      for (const signal of STOP_SIGNALS) process.on(signal, handler);
    },
    exit: (code) => process.exit(code),
  };
}

const clis = new WeakMap<Command, Cli>();

/** Gives the program (and so each of its commands' actions) what it runs on. */
export function useCli(program: Command, cli: Cli): void {
  clis.set(program, cli);
}

function cliOf(command: Command): Cli {
  let root = command;
  while (root.parent) root = root.parent;
  const cli = clis.get(root);
  if (!cli) throw new Error('internal: the program has no Cli (useCli)');
  return cli;
}

function printError(io: Io, err: VmsError, json: boolean): void {
  if (json) {
    io.stdout.write(
      JSON.stringify(
        { error: { code: err.code, message: err.message, hint: err.hint, exitCode: err.exitCode } },
        null,
        2,
      ) + '\n',
    );
    return;
  }
  io.stderr.write(`${chalk.red('error:')} ${err.message}\n`);
  if (err.details) io.stderr.write(err.details.replace(/^/gm, '  ') + '\n');
  if (err.hint) io.stderr.write(`${chalk.cyan('hint:')} ${err.hint}\n`);
}

/**
 * Wraps a command's body: builds the context from the global options (config, runner, progress, Ctrl-C), prints the
 * result as a human text or as JSON, and maps any error to its exit code.
 */
export function action<O extends OptionValues = OptionValues>(
  body: (inv: Invocation<O>, ...args: string[]) => Promise<Output>,
) {
  return async (...received: unknown[]): Promise<void> => {
    const command = received[received.length - 1] as Command;
    const args = received.slice(0, -2) as string[];
    const globals = command.optsWithGlobals<GlobalOptions>();
    const cli = cliOf(command);
    const { io, prompter } = cli;
    if (!io.color) chalk.level = 0;
    const json = Boolean(globals.json);
    const abort = new AbortController();
    // SIGINT (Ctrl-C), SIGHUP (the terminal closed, ssh dropped) and SIGTERM (kill, a service manager) all stop the
    // command the same way: it stops and undoes what it made. Only once it is done does a signal no longer count:
    // a command that finished exits with its own code, whatever arrives while it prints.
    let signals = 0;
    let finished = false;
    const say = (text: string) => {
      try {
        io.stderr.write(text);
      } catch {
        // no terminal any more (SIGHUP): the clean-up goes on regardless
      }
    };
    const rollbacks = new Rollbacks();
    const onSignal = () => {
      if (finished) return;
      signals++;
      if (signals === 1) return abort.abort(); // the command stops and undoes what it made
      const left = rollbacks.remaining();
      const list = left.map((what) => `  ${what}\n`).join('');
      if (signals === 2)
        return say(
          `\nstill cleaning up; Ctrl-C once more to leave at once, which leaves:\n${list || '  (nothing yet)\n'}`,
        );
      if (left.length)
        say(`\nleft half-made, not cleaned up (the next vms command, or \`vms repair\`, finishes it):\n${list}`);
      cli.exit(130);
    };
    io.stderr.on('error', () => {}); // EIO/EPIPE after a hang-up must not crash the clean-up
    cli.onStopSignal?.(onSignal);
    try {
      const config = loadConfig(io.env, globals.connect);
      const log = globals.verbose ? (line: string) => io.stderr.write(chalk.dim(line) + '\n') : undefined;
      // A spinner needs a terminal with a width (ora redraws forever on a 0-column pty) that can move its cursor.
      const spinner = io.stderrIsTTY && io.stderrColumns > 0 && io.env.TERM !== 'dumb' && !globals.verbose;
      const operationId = newOperationId();
      const verbose = Boolean(globals.verbose);
      const progress = await cliProgress({
        operationId,
        json,
        spinner,
        verbose,
        eventsFile: globals.events,
        out: io.stderr,
      });
      const ctx = createContext({
        config,
        runner: cli.runner(log, { VMS_OPERATION: operationId }),
        progress,
        signal: abort.signal,
        operationId,
        lockWaitMs: lockWaitMs(io.env),
        host: cli.host,
        rollbacks,
      });
      const out = await body({ ctx, opts: command.opts<O>(), globals, io, prompter }, ...args);
      finished = true;
      if (out.exitCode) cli.setExitCode(out.exitCode);
      if (json) io.stdout.write(JSON.stringify(out.data, null, 2) + '\n');
      else if (out.human) {
        const text = out.human(out.data);
        if (text) io.stdout.write(text + '\n');
      }
    } catch (err) {
      finished = true;
      const error = forCommandLine(toVmsError(err));
      printError(io, error, json);
      cli.setExitCode(error.exitCode);
    }
    // The handlers stay until the process exits: a signal now finds the command done and changes nothing.
  };
}

const STOP_SIGNALS = ['SIGINT', 'SIGHUP', 'SIGTERM'] as const;

/** VMS_LOCK_WAIT: seconds a command waits for a VM another command holds (default 5). */
function lockWaitMs(env: Io['env']): number | undefined {
  const seconds = Number(env.VMS_LOCK_WAIT);
  return env.VMS_LOCK_WAIT && Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}
