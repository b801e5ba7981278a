// Shared by the power, pause, attach, info, state-table and install tests (not a test file itself): a VM's saved
// definition and the virsh calls loadVm makes for it, a runner that answers a poll's state questions however often
// they come, and a Progress that records the steps taken.
import type { Progress } from '../../src/core/progress.js';
import type { RunOptions, RunResult, Runner } from '../../src/runner.js';
import { FakeRunner, type Expected } from './fake-runner.js';
import { URI, virshCall } from './virsh-fake.js';

/** A saved definition: a unix-socket serial console with its log, and a SPICE display unless `graphics` is false. */
export function vmXml(name: string, opts: { graphics?: boolean; serial?: boolean; inner?: string } = {}): string {
  const serial =
    opts.serial === false
      ? ''
      : `<serial type='unix'><source mode='bind' path='/state/${name}/serial.sock'/>` +
        `<log file='/state/${name}/serial.log'/><target port='0'/></serial>`;
  const graphics = opts.graphics === false ? '' : `<graphics type='spice' autoport='yes'/>`;
  return (
    `<domain type='qemu'><name>${name}</name><uuid>00000000-0000-4000-8000-00000000000a</uuid>` +
    `<memory unit='KiB'>262144</memory><vcpu>2</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os>` +
    `<devices>${opts.inner ?? ''}${serial}${graphics}</devices></domain>`
  );
}

/** The two calls loadVm makes: the saved definition, then the state (as virsh prints it, with its newline). */
export const loadCalls = (name: string, state: string, xml = vmXml(name)) => [
  virshCall(['dumpxml', name, '--inactive', '--security-info'], xml),
  virshCall(['domstate', name], `${state}\n`),
];

/** A virsh call that fails the way virsh does: exit 1 and its error on stderr. */
export const virshFails = (args: string[], stderr: string) => virshCall(args, '', { exitCode: 1, stderr });

/**
 * The strict runner, except that `virsh domstate NAME` is answered by `state()` however often it is asked (how many
 * times a poll asks depends on the clock); `polls` counts those questions.
 */
export class PolledStateRunner implements Runner {
  polls = 0;

  constructor(
    readonly strict: FakeRunner,
    private readonly name: string,
    private readonly state: () => string,
  ) {}

  async run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    const polled = cmd === 'virsh' && args.length === 4 && args[1] === URI && args[2] === 'domstate';
    if (!polled || args[3] !== this.name) return this.strict.run(cmd, args, opts);
    this.polls++;
    return { stdout: `${this.state()}\n`, stderr: '', exitCode: 0 };
  }

  interactive(cmd: string, args: readonly string[]): Promise<number> {
    return this.strict.interactive(cmd, args);
  }
}

/** A Progress that records each step's title as it starts, the steps that failed, and the notes. */
export function recordingProgress() {
  const steps: string[] = [];
  const failed: string[] = [];
  const notes: string[] = [];
  const progress: Progress = {
    async step(title, fn) {
      steps.push(title);
      try {
        return await fn();
      } catch (err) {
        failed.push(title);
        throw err;
      }
    },
    note: (message) => void notes.push(message),
  };
  return { progress, steps, failed, notes };
}

/**
 * A strict runner whose calls are listed after the context is made (a test that needs the context's dirs first):
 * `expect` starts a new strict FakeRunner on them, `done` checks that one.
 */
export function listedLater() {
  let strict = new FakeRunner([]);
  const runner: Runner = {
    run: (cmd, args, opts) => strict.run(cmd, args, opts),
    interactive: (cmd, args) => strict.interactive(cmd, args),
  };
  return {
    runner,
    expect(...calls: Expected[][]) {
      strict = new FakeRunner(calls.flat());
    },
    done: () => strict.done(),
  };
}
