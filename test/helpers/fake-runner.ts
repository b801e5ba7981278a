import assert from 'node:assert/strict';
import type { RunOptions, RunResult, Runner } from '../../src/runner.js';

// A Runner that answers only the calls it was told about, in order, and fails the test on anything else.

export interface Expected {
  cmd: string;
  /** Exact argv, or a predicate. */
  args: readonly string[] | ((args: readonly string[]) => boolean);
  result?: Partial<RunResult>;
}

export class FakeRunner implements Runner {
  readonly calls: { cmd: string; args: readonly string[] }[] = [];
  private readonly queue: Expected[];
  /** The first call that did not match, kept for done(): code under test may catch the error run() threw. */
  private mismatch: unknown;

  constructor(expected: Expected[]) {
    this.queue = [...expected];
  }

  async run(cmd: string, args: readonly string[], _opts?: RunOptions): Promise<RunResult> {
    this.calls.push({ cmd, args });
    const next = this.queue.shift();
    try {
      assert.ok(next, `unexpected call: ${cmd} ${args.join(' ')}`);
      assert.equal(cmd, next.cmd, `unexpected command: ${cmd} ${args.join(' ')}`);
      if (typeof next.args === 'function') assert.ok(next.args(args), `unexpected arguments: ${cmd} ${args.join(' ')}`);
      else assert.deepEqual(args, next.args);
      return { stdout: '', stderr: '', exitCode: 0, ...next.result };
    } catch (err) {
      this.mismatch ??= err;
      throw err;
    }
  }

  async interactive(cmd: string, args: readonly string[]): Promise<number> {
    return (await this.run(cmd, args)).exitCode;
  }

  /** Every call made was expected (even one whose error the code caught), and every expected call was made. */
  done(): void {
    if (this.mismatch) throw this.mismatch;
    assert.equal(this.queue.length, 0, `expected calls not made: ${this.queue.map((q) => q.cmd).join(', ')}`);
  }
}
