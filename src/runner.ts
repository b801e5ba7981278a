import { VmsError, interrupted } from './errors.js';
import { shellQuote } from './quote.js';

// The only way the core spawns processes. Always argv arrays, never a shell. Tests swap in a fake (test/helpers).

export interface RunOptions {
  /** Written to the child's stdin (otherwise stdin is closed). */
  input?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface Runner {
  /** Runs to completion and never throws for a non-zero exit: the caller classifies the failure. */
  run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Runs attached to the user's terminal (console, viewer) and resolves with the exit code. */
  interactive(cmd: string, args: readonly string[]): Promise<number>;
}

export type CommandLog = (line: string) => void;

export const formatCommand = (cmd: string, args: readonly string[]) => [cmd, ...args].map(shellQuote).join(' ');

function missingTool(cmd: string): VmsError {
  return new VmsError('missingTool', `${cmd} is not installed`, 'run `vms bootstrap` to install what vms needs');
}

export class ExecaRunner implements Runner {
  /**
   * @param log receives each command line and its output (the CLI's -v)
   * @param env added to every tool's environment: VMS_OPERATION marks the tools an operation started, so a repair
   *   after a kill waits for the ones still running before it undoes their work
   */
  constructor(
    private readonly log?: CommandLog,
    private readonly env: Record<string, string> = {},
  ) {}

  async run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    opts.signal?.throwIfAborted();
    this.log?.(`$ ${formatCommand(cmd, args)}`);
    const { execa } = await import('execa'); // loaded on first use: keeps `vms --version` fast
    const r = await execa(cmd, args, {
      reject: false,
      ...(opts.input === undefined ? { stdin: 'ignore' as const } : { input: opts.input }),
      // Its own process group: Ctrl-C on the terminal reaches only vms, which cancels what runs and then cleans up
      // (clean-up commands must not be killed by the same keypress).
      detached: true,
      timeout: opts.timeoutMs,
      cancelSignal: opts.signal,
      stripFinalNewline: false,
      env: { ...this.env, LC_ALL: 'C' }, // tools' messages are parsed: keep them in English
    });
    if (r.isCanceled) throw interrupted();
    if (r.code === 'ENOENT') throw missingTool(cmd);
    if (r.timedOut) {
      throw new VmsError('timeout', `${cmd} did not finish within ${Math.round(opts.timeoutMs! / 1000)}s`);
    }
    const result = { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode ?? 1 };
    if (this.log) {
      for (const line of (result.stdout + result.stderr).split('\n').filter(Boolean)) this.log(`  ${line}`);
      if (result.exitCode !== 0) this.log(`  (exit ${result.exitCode})`);
    }
    return result;
  }

  async interactive(cmd: string, args: readonly string[]): Promise<number> {
    this.log?.(`$ ${formatCommand(cmd, args)}`);
    const { execa } = await import('execa');
    const r = await execa(cmd, args, { reject: false, stdio: 'inherit' });
    if (r.code === 'ENOENT') throw missingTool(cmd);
    return r.exitCode ?? 1;
  }
}

/**
 * A tool's error output as one line: its "error:" lines joined (virsh puts the cause on the second one, e.g.
 * "Failed to start domain 'x'" then "Network not found: …"), else its first line.
 */
export function errorSummary(r: RunResult): string {
  const lines = r.stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const errors = lines.filter((l) => /^error:/i.test(l)).map((l) => l.replace(/^error:\s*/i, ''));
  return errors.length ? errors.join(': ') : (lines[0] ?? `exit status ${r.exitCode}`);
}
