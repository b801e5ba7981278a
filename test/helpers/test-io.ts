// Runs the vms program in this process on streams of its own (like the GitHub CLI's iostreams.Test): what it prints
// is kept, questions are answered from a script, processes go to a strict fake runner, signals are not hooked.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import type { Cli } from '../../src/cli/app.js';
import type { Io, Prompter } from '../../src/cli/io.js';
import { buildProgram } from '../../src/cli/program.js';
import { processHost } from '../../src/core/context.js';
import type { Runner } from '../../src/runner.js';
import { URI } from './virsh-fake.js';

export interface TestIo {
  io: Io;
  /** All the program wrote to stdout so far. */
  stdout(): string;
  stderr(): string;
}

/** Streams that keep what is written; `tty` says whether they pass for terminals (stdin too: whether one can ask). */
export function testIo(opts: { tty?: boolean; env?: Record<string, string> } = {}): TestIo {
  const tty = Boolean(opts.tty);
  const capture = () => {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        chunks.push(chunk.toString()); // at once: what was printed is there when the command returns
        done();
      },
    });
    return { stream: stream as unknown as NodeJS.WriteStream, text: () => chunks.join('') };
  };
  const out = capture();
  const err = capture();
  const io: Io = {
    stdin: new PassThrough() as unknown as NodeJS.ReadStream,
    stdout: out.stream,
    stderr: err.stream,
    stdinIsTTY: tty,
    stdoutIsTTY: tty,
    stderrIsTTY: tty,
    stderrColumns: 0, // plain lines, never a spinner
    color: false,
    env: opts.env ?? {},
  };
  return { io, stdout: out.text, stderr: err.text };
}

/** Answers each question with the next scripted answer; a question with no answer left fails the test. */
export function scriptedPrompter(answers: boolean[]): Prompter & { asked: string[] } {
  const left = [...answers];
  const asked: string[] = [];
  return {
    asked,
    async confirm(question) {
      asked.push(question);
      assert.ok(left.length > 0, `unexpected question: ${question}`);
      return left.shift()!;
    },
  };
}

/** What commander's usage errors and a forced exit throw instead of ending the process. */
class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The questions asked, in order. */
  asked: string[];
}

/**
 * Runs `vms ARGS…` in process: `runner` gets every process the command starts; the config points at a fresh state
 * dir (and `env` over it); `tty` makes the streams terminals; `answers` answer the questions asked.
 */
export async function runCli(
  args: string[],
  opts: { runner: Runner; env?: Record<string, string>; tty?: boolean; answers?: boolean[] },
): Promise<CliRun> {
  const dir = mkdtempSync(join(tmpdir(), 'vms-cli-'));
  const env = {
    VMS_CONFIG: join(dir, 'none.json'),
    VMS_STATE_DIR: join(dir, 'state'),
    VMS_IMAGES_DIR: join(dir, 'images'),
    LIBVIRT_DEFAULT_URI: URI,
    ...opts.env,
  };
  const t = testIo({ tty: opts.tty, env });
  const prompter = scriptedPrompter(opts.answers ?? []);
  let exitCode = 0;
  const cli: Cli = {
    io: t.io,
    prompter,
    host: { ...processHost(), env },
    runner: () => opts.runner,
    setExitCode: (code) => {
      exitCode = code;
    },
    exit: (code) => {
      throw new Exit(code);
    },
  };
  try {
    await buildProgram('0.0.0-test', cli).parseAsync(args, { from: 'user' });
  } catch (err) {
    if (!(err instanceof Exit)) throw err;
    exitCode = err.code;
  }
  return { exitCode, stdout: t.stdout(), stderr: t.stderr(), asked: prompter.asked };
}
