// Typed errors: every failure the core reports carries a stable code, a one-line message, a hint that says how to
// fix it, and the exit code the CLI maps it to. The exit codes are documented in README.md.

export const ExitCode = {
  ok: 0,
  failed: 1, // an external tool failed in a way we could not classify
  usage: 2, // bad input: names, sizes, options
  notFound: 3, // unknown VM, missing file
  conflict: 4, // name taken, wrong state, something depends on it
  unreachable: 5, // libvirtd cannot be reached
  timeout: 6,
  missingTool: 7, // a required program is not installed
  interrupted: 130,
} as const;

export type ErrorCode = keyof typeof ExitCode;

export class VmsError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  /** Extra lines shown after the message, e.g. the tail of a transcript. */
  readonly details?: string;
  /** A stable name for what went wrong (e.g. `lock.busy`): callers decide on it, never on the message text. */
  readonly reason?: string;
  /** The facts of the failure a caller (the CLI's hints) words its own advice from, e.g. `{ needsOff: [...] }`. */
  readonly data?: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, hint?: string, details?: string, reason?: string, data?: Record<string, unknown>) {
    super(message);
    this.name = 'VmsError';
    this.code = code;
    this.hint = hint;
    this.details = details;
    this.reason = reason;
    this.data = data;
  }

  get exitCode(): number {
    return ExitCode[this.code];
  }
}

export const usageError = (message: string, hint?: string) => new VmsError('usage', message, hint);
export const notFound = (message: string, hint?: string) => new VmsError('notFound', message, hint);
export const conflict = (message: string, hint?: string) => new VmsError('conflict', message, hint);

export function interrupted(hint?: string, details?: string): VmsError {
  return new VmsError('interrupted', 'interrupted', hint, details);
}

export const isInterrupt = (err: unknown) =>
  (err instanceof VmsError && err.code === 'interrupted') || (err instanceof Error && err.name === 'AbortError');

/** Wraps anything thrown into a VmsError so the CLI can always print a message, a hint and an exit code. */
export function toVmsError(err: unknown): VmsError {
  if (err instanceof VmsError) return err;
  if (isInterrupt(err)) return interrupted();
  const message = err instanceof Error ? err.message : String(err);
  return new VmsError('failed', message.split('\n')[0] ?? message, undefined, undefined, 'unexpected');
}
