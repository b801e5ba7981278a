import type { RunOptions, RunResult } from '../../src/runner.js';
import { FakeRunner } from './fake-runner.js';

/** A strict FakeRunner that also keeps how each call was made: run (with its options) or interactive (a terminal). */
export class RecordingRunner extends FakeRunner {
  readonly log: { how: 'run' | 'interactive'; cmd: string; args: readonly string[]; opts?: RunOptions }[] = [];

  override async run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    this.log.push({ how: 'run', cmd, args, opts });
    return super.run(cmd, args, opts);
  }

  override async interactive(cmd: string, args: readonly string[]): Promise<number> {
    this.log.push({ how: 'interactive', cmd, args });
    return (await super.run(cmd, args)).exitCode;
  }
}
