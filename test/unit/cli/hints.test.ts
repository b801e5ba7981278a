import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forCommandLine } from '../../../src/cli/hints.js';
import { VmsError } from '../../../src/errors.js';

// The core's errors name no flag; the command line's words for them come from their reason and data.

const words = (err: VmsError) => {
  const shown = forCommandLine(err);
  return { message: shown.message, hint: shown.hint };
};

test('a reason the CLI has words for gets them; code, details, reason and data stay', () => {
  const err = new VmsError('timeout', 'w did not shut down within 5s', 'the guest may ignore ACPI: …', 'tail', 'power.stopTimeout', { name: 'w' });
  const shown = forCommandLine(err);
  assert.equal(shown.hint, 'the guest may ignore ACPI: wait longer with --timeout, add --force to power it off, or `vms kill` it');
  assert.equal(shown.message, err.message);
  assert.deepEqual([shown.code, shown.details, shown.reason, shown.data], ['timeout', 'tail', 'power.stopTimeout', { name: 'w' }]);
});

test('set: the changes a running VM cannot take, as flags, and --restart', () => {
  const err = new VmsError('conflict', 'core words', 'core hint', undefined, 'set.needsOff', {
    name: "it's",
    needsOff: [{ setting: 'memory', value: '8G', why: 'above the 4G it was started with' }, { setting: 'rename' }],
  });
  assert.deepEqual(words(err), {
    message: "it's is running: changing --memory 8G (above the 4G it was started with) and --rename requires the VM to be shut off; use --restart",
    hint: "--restart shuts it down (ACPI), applies everything and starts it again; or `vms stop 'it'\\''s'` first. Nothing was changed.",
  });
  assert.equal(words(new VmsError('timeout', 'm', 'h', undefined, 'set.shutdownTimeout', { name: 'w' })).hint,
    'the guest may ignore ACPI: wait longer with --timeout, or power it off with `vms stop w --force` and run this again');
});

test('a failed install: kept (--keep-failed, --resume) or removed (add --keep-failed), whatever the cause\'s reason', () => {
  const kept = new VmsError('failed', 'the install failed', 'h', undefined, 'lock.busy', { kept: { name: 'w', password: '/s/w/root-password' } });
  assert.equal(words(kept).hint,
    'kept for inspection (--keep-failed): `vms console w` (root password in /s/w/root-password); go on with `vms create w --resume`, or remove it with `vms destroy w`');
  const removed = (cleaned: boolean) => new VmsError('failed', 'm', 'h', undefined, undefined, { removed: { transcript: '/t.log', cleaned } });
  assert.equal(words(removed(true)).hint, 'the whole transcript is in /t.log; nothing else is left (add --keep-failed to keep the VM)');
  assert.equal(words(removed(false)).hint, 'the whole transcript is in /t.log');
});

test('a hint can be taken away; an error the CLI has no words for is shown as the core made it', () => {
  assert.deepEqual(words(new VmsError('usage', 'core words', 'core hint', undefined, 'kernelBoot.noKernel')), { message: '--initrd and --cmdline need --kernel', hint: undefined });
  const plain = new VmsError('notFound', 'no VM named x', 'vms list', undefined, 'vm.notFound');
  assert.equal(forCommandLine(plain), plain);
  assert.equal(words(new VmsError('failed', 'boom', undefined, undefined, 'unexpected')).hint, 'run again with -v to see the commands run');
});
