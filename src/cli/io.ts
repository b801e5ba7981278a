import { createInterface } from 'node:readline/promises';

// What a command may reach of the world it runs in: its streams, whether they are terminals, and its environment
// (like the GitHub CLI's iostreams). Commands read these, never `process`, so a test runs them in process on its own
// streams (test/helpers/test-io.ts).

export interface Io {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  stdinIsTTY: boolean;
  stdoutIsTTY: boolean;
  stderrIsTTY: boolean;
  /** The width of stderr's terminal; 0 when it has none (a spinner needs one). */
  stderrColumns: number;
  /** Colors in what is printed (off with NO_COLOR). */
  color: boolean;
  env: Readonly<Record<string, string | undefined>>;
}

/** Asks the user; only called when `canPrompt` says someone is there to answer. */
export interface Prompter {
  /** A yes/no question; anything but yes is no. */
  confirm(question: string): Promise<boolean>;
}

/** Whether a question can be asked at all: there is a terminal to read the answer from. */
export const canPrompt = (io: Io) => io.stdinIsTTY;

export function processIo(): Io {
  return {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    stdinIsTTY: Boolean(process.stdin.isTTY),
    stdoutIsTTY: Boolean(process.stdout.isTTY),
    stderrIsTTY: Boolean(process.stderr.isTTY),
    stderrColumns: process.stderr.columns ?? 0,
    color: !process.env.NO_COLOR,
    env: process.env,
  };
}

/** Asks on the terminal: the question on stderr (stdout stays clean), the answer from stdin; y/yes is yes. */
export function terminalPrompter(io: Io): Prompter {
  return {
    async confirm(question) {
      const rl = createInterface({ input: io.stdin, output: io.stderr });
      try {
        return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
      } finally {
        rl.close();
      }
    },
  };
}
