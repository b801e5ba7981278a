import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  checkKernelBoot,
  checkMemory,
  checkSetOptions,
  checkWhole,
  MAX_DISPLAYS,
} from '../../../src/core/vm/validate.js';
import { VmsError } from '../../../src/errors.js';
import { GiB, MiB } from '../../../src/size.js';

// The core's own rules on input: what a library or HTTP caller passes is checked here, past any CLI parsing.

const refused = (reason: string, message?: RegExp) => (err: unknown) =>
  err instanceof VmsError && err.code === 'usage' && err.reason === reason && (!message || message.test(err.message));

const set = { name: 'a', restart: false, timeoutSeconds: 60 };

test('checkSetOptions: memory rounded to whole KiB; counts and the timeout as given', () => {
  const checked = checkSetOptions({ ...set, memory: 300.3 * MiB, cpus: 4, displays: MAX_DISPLAYS, notes: '' });
  assert.equal(checked.memory, Math.round((300.3 * MiB) / 1024) * 1024);
  assert.equal(checked.memory! % 1024, 0);
  assert.deepEqual([checked.cpus, checked.displays, checked.notes, checked.timeoutSeconds], [4, 16, '', 60]);
  assert.equal(checkSetOptions({ ...set, rename: 'b' }).memory, undefined, 'unset stays unset');
});

test('checkSetOptions refuses what the CLI would never pass (exit 2, a reason, the value in data)', () => {
  assert.throws(() => checkSetOptions({ ...set }), refused('set.nothing', /^nothing to change$/));
  const cases: [Partial<typeof set> & Record<string, unknown>, RegExp][] = [
    [{ displays: 17 }, /^invalid display count 17$/],
    [{ displays: 0 }, /^invalid display count 0$/],
    [{ displays: 1.5 }, /^invalid display count 1\.5$/],
    [{ cpus: 0 }, /^invalid CPU count 0$/],
    [{ cpus: 513 }, /^invalid CPU count 513$/],
    [{ memory: 1 * MiB }, /^invalid memory 1048576$/],
    [{ memory: Number.NaN }, /^invalid memory NaN$/],
    [{ memory: 8 * GiB, timeoutSeconds: -1 }, /^invalid timeout -1$/],
    [{ memory: 8 * GiB, timeoutSeconds: 86401 }, /^invalid timeout 86401$/],
  ];
  for (const [opts, message] of cases)
    assert.throws(() => checkSetOptions({ ...set, ...opts }), refused('input.invalid', message), JSON.stringify(opts));
});

test('checkWhole and checkMemory: the bounds are inclusive; the refusal says the range', () => {
  assert.equal(checkWhole(1, 'x', 1, 3), 1);
  assert.equal(checkWhole(3, 'x', 1, 3), 3);
  assert.throws(
    () => checkWhole(4, 'x', 1, 3),
    (err: unknown) => err instanceof VmsError && err.hint === 'use a whole number from 1 to 3',
  );
  assert.equal(checkMemory(64 * MiB), 64 * MiB);
  assert.throws(
    () => checkMemory(64 * MiB - 1024),
    (err: unknown) => err instanceof VmsError && err.hint === 'use a value between 64M and 4T',
  );
});

test('checkMemory: both bounds taken, one byte beyond either refused with the range in its data; not a number refused', () => {
  const range = { min: 64 * MiB, max: 4 * 1024 * GiB };
  assert.deepEqual([checkMemory(range.min), checkMemory(range.max)], [range.min, range.max]);
  for (const bytes of [range.min - 1, range.max + 1, Number.NaN]) {
    assert.throws(
      () => checkMemory(bytes),
      (err: unknown) =>
        err instanceof VmsError &&
        err.reason === 'input.invalid' &&
        JSON.stringify(err.data) === JSON.stringify({ what: 'memory', value: bytes, ...range }),
      String(bytes),
    );
  }
  assert.throws(
    () => checkWhole(0, 'vCPU count', 1, 3),
    (err: unknown) =>
      err instanceof VmsError &&
      err.message === 'invalid vCPU count 0' &&
      JSON.stringify(err.data) === JSON.stringify({ what: 'vCPU count', value: 0, min: 1, max: 3 }),
  );
});

test('checkKernelBoot: an initrd or a command line needs a kernel; empty parts are left out', () => {
  assert.equal(checkKernelBoot(undefined), undefined);
  assert.equal(checkKernelBoot({}), undefined);
  assert.equal(checkKernelBoot({ kernel: '', initrd: '', cmdline: '' }), undefined);
  assert.deepEqual(checkKernelBoot({ kernel: '/k', initrd: '', cmdline: 'console=ttyS0' }), {
    kernel: '/k',
    initrd: undefined,
    cmdline: 'console=ttyS0',
  });
  for (const boot of [{ initrd: '/i' }, { cmdline: 'quiet' }, { kernel: '', initrd: '/i' }]) {
    assert.throws(
      () => checkKernelBoot(boot),
      refused('kernelBoot.noKernel', /^an initrd or a kernel command line needs a kernel$/),
      JSON.stringify(boot),
    );
  }
});
