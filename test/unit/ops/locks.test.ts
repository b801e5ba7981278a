import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FlockLocks, HOST_LOCK, LockBusy, locksDir } from '../../../src/core/ops/locks.js';
import { VmsError } from '../../../src/errors.js';
import { opsStateDir } from '../../helpers/journal-fixture.js';

// FlockLocks' answers when the locks cannot be taken: flock(1) missing, a lock dir or file that cannot be made, and
// what each exit of flock means (a stand-in `flock` on PATH gives the exits a real one gives rarely).

/** Runs `fn` with PATH set to `path` (spawn looks `flock` up in it then). */
async function withPath<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.PATH;
  process.env.PATH = path;
  try {
    return await fn();
  } finally {
    process.env.PATH = saved;
  }
}

/** A dir holding a stand-in `flock` that prints `out` and exits with `code`. */
function fakeFlock(out: string, code: number): string {
  const bin = join(opsStateDir(), 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'flock'), `#!/bin/sh\nprintf '${out}'\nexit ${code}\n`);
  chmodSync(join(bin, 'flock'), 0o755);
  return bin;
}

/** The error `acquire` fails with, as [code, message, hint]. */
const failure = (p: Promise<unknown>) =>
  p.then(
    () => assert.fail('the locks were taken'),
    (err: VmsError) => [err instanceof LockBusy ? `LockBusy ${err.lock}` : err.code, err.message, err.hint],
  );

test('LockBusy names the VM, or the host lock in words; exit 4, reason lock.busy', () => {
  const vm = new LockBusy('v');
  const wait = 'wait for the other command to finish, then try again';
  assert.deepEqual([vm.message, vm.hint, vm.reason, vm.exitCode], ['v is busy', wait, 'lock.busy', 4]);
  const host = new LockBusy(HOST_LOCK);
  assert.deepEqual(
    [host.message, host.hint, host.reason],
    ['another vms command is changing shared disks', wait, 'lock.busy'],
  );
});

test('no locks asked for: nothing is taken, and the lease lets go of nothing', async () => {
  const dir = opsStateDir();
  await (await new FlockLocks(join(dir, 'not-made'), 0).acquire({ vms: [] })).release();
});

test('without flock(1) installed, taking a lock says so', async () => {
  const dir = opsStateDir();
  assert.deepEqual(
    await withPath(join(dir, 'empty-bin'), () => failure(new FlockLocks(dir, 0).acquire({ vms: ['v'] }))),
    ['missingTool', 'flock (util-linux) is not installed', 'install util-linux: vms locks VMs with it'],
  );
});

test("flock's exit 10 + i is lock i held; any other exit, or output without `locked`, is a failure", async () => {
  const dir = opsStateDir();
  const take = (out: string, code: number) =>
    withPath(`${fakeFlock(out, code)}:${process.env.PATH}`, () =>
      failure(new FlockLocks(dir, 0).acquire({ vms: ['b', 'a'] })),
    );
  const failed = (code: number) => [
    'failed',
    `could not take the locks (flock exited ${code})`,
    `check that you may read the files in ${locksDir(dir)}`,
  ];
  assert.deepEqual((await take('', 11))[0], 'LockBusy b');
  assert.deepEqual((await take('not yet\\n', 10))[0], 'LockBusy a');
  assert.deepEqual(await take('', 12), failed(12));
  assert.deepEqual(await take('', 9), failed(9));
  assert.deepEqual(await take('', 1), failed(1));
});

test('a locks dir that cannot be made is a failure naming it and the code', async () => {
  const file = join(opsStateDir(), 'state');
  writeFileSync(file, 'a file, not a dir');
  assert.deepEqual(await failure(new FlockLocks(file, 0).acquire({ vms: ['v'] })), [
    'failed',
    `cannot lock ${locksDir(file)}: ENOTDIR`,
    'vms locks VMs in its state dir: check that you may write there (`vms bootstrap` makes it for the libvirt group), or set VMS_STATE_DIR',
  ]);
});

test('a lock file that cannot be made is a failure naming it', async () => {
  const dir = opsStateDir();
  mkdirSync(locksDir(dir), { recursive: true });
  const lockFile = join(locksDir(dir), 'v.lock');
  symlinkSync(join(dir, 'no-such-dir', 'x'), lockFile); // leads where no file can be made
  assert.deepEqual((await failure(new FlockLocks(dir, 0).acquire({ vms: ['v'] }))).slice(0, 2), [
    'failed',
    `cannot lock ${lockFile}: ENOENT`,
  ]);
});
