// Shared by the pool and snapshot tests (not a test file itself): expected virsh calls for the FakeRunner, and a
// core Context on it.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../src/config.js';
import { createContext } from '../../src/core/context.js';
import type { RunResult, Runner } from '../../src/runner.js';
import { FakeRunner, type Expected } from './fake-runner.js';

export const URI = 'qemu:///system';

/** One `virsh -c URI ARGS…` call and its answer. */
export const virshCall = (args: string[], stdout = '', extra: Partial<RunResult> = {}): Expected => ({
  cmd: 'virsh',
  args: ['-c', URI, ...args],
  result: { stdout, ...extra },
});

/**
 * One Virsh.batch call: its script must hold `commands` (in order); it is answered like virsh does, each output
 * after its marker ("" for a failed command). The markers carry a time stamp, so they are read from the script.
 */
export function batchCall(commands: string[], outputs: string[]): Expected {
  const call: Expected = {
    cmd: 'virsh',
    args: (args) => {
      const script = args[2] ?? '';
      const marker = /^echo (@@vms-\d+-\d+@@)0;/.exec(script)?.[1];
      const ok =
        args[0] === '-c' &&
        args[1] === URI &&
        marker !== undefined &&
        commands.every((c) => script.includes(`; ${c};`));
      if (ok) call.result = { stdout: outputs.map((o, i) => `${marker}${i}\n${o}\n`).join('') + `${marker}end\n` };
      return ok;
    },
  };
  return call;
}

/** A Context whose processes are the expected calls, with its own state dir (and `env` over its settings). */
export function fakeContext(expected: Expected[], extraEnv: Record<string, string> = {}) {
  const runner = new FakeRunner(expected);
  return { ...contextOn(runner, extraEnv), runner };
}

/** A Context on any runner, with its own state dir (and `env` over its settings). */
export function contextOn(runner: Runner, extraEnv: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-'));
  const env = {
    VMS_CONFIG: join(dir, 'none.json'),
    VMS_STATE_DIR: join(dir, 'state'),
    VMS_IMAGES_DIR: join(dir, 'images'),
    LIBVIRT_DEFAULT_URI: URI,
    ...extraEnv,
  };
  return { ctx: createContext({ config: resolveConfig({ env }), runner }), dir };
}
