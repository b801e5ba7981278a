import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { VmsError } from '../../../src/errors.js';
import { processAlive, takeLock } from '../../../src/core/host/file-lock.js';

const dir = mkdtempSync(join(tmpdir(), 'vms-lock-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const deadPid = () => spawnSync('true').pid!; // exited and reaped: no such process (unless the pid is reused at once)

test('takeLock: held by a live process it is a conflict naming the pid; released, it can be taken again', async () => {
  const lock = join(dir, 'a.lock');
  const release = await takeLock(lock, '`vms iso fetch`');
  assert.equal(readFileSync(lock, 'utf8'), `${process.pid}\n`);
  await assert.rejects(takeLock(lock, '`vms iso fetch`'), (err: unknown) => {
    assert.ok(err instanceof VmsError);
    assert.equal(err.message, `\`vms iso fetch\` is already running (pid ${process.pid})`);
    assert.equal(err.exitCode, 4);
    return true;
  });
  await release();
  assert.ok(!existsSync(lock));
  await (
    await takeLock(lock, 'x')
  )();
});

test('takeLock takes over a lock whose process is gone, and an empty one that stays empty', async () => {
  for (const [name, content] of [
    ['dead.lock', `${deadPid()}\n`],
    ['empty.lock', ''],
  ] as const) {
    const lock = join(dir, name);
    writeFileSync(lock, content);
    const release = await takeLock(lock, 'x');
    assert.equal(readFileSync(lock, 'utf8'), `${process.pid}\n`, name);
    await release();
  }
});

test("processAlive: this process yes, a reaped one no, pid 1 (another user's, or ours as root) yes", () => {
  assert.equal(processAlive(process.pid), true);
  assert.equal(processAlive(deadPid()), false);
  assert.equal(processAlive(1), true);
});

test('takeLock where the lock cannot be created is a `failed` error naming the path and errno, with a hint', async () => {
  const lock = join(dir, 'no-such-dir', 'c.lock');
  await assert.rejects(takeLock(lock, 'x'), (err: unknown) => {
    assert.ok(err instanceof VmsError);
    assert.equal(err.code, 'failed');
    assert.equal(err.message, `cannot create ${lock}: ENOENT`);
    assert.equal(err.hint, 'check that you may write there');
    return true;
  });
  assert.ok(!existsSync(join(dir, 'no-such-dir')));
});

test('takeLock: the conflict hint names the lock file', async () => {
  const lock = join(dir, 'hint.lock');
  const release = await takeLock(lock, 'x');
  await assert.rejects(takeLock(lock, 'x'), (err: unknown) => {
    assert.ok(err instanceof VmsError);
    assert.equal(err.code, 'conflict');
    assert.equal(err.hint, `wait for it to finish; ${lock} is its lock`);
    return true;
  });
  await release();
});

test('takeLock: an empty lock is looked at again after a pause; filled by a live owner meanwhile, it is a conflict', async () => {
  const lock = join(dir, 'filling.lock');
  writeFileSync(lock, '');
  setTimeout(() => writeFileSync(lock, `${process.pid}\n`), 30);
  await assert.rejects(takeLock(lock, 'x'), /already running \(pid \d+\)/);
  assert.equal(readFileSync(lock, 'utf8'), `${process.pid}\n`);
  rmSync(lock);
});

test('takeLock: an empty lock that stays empty is taken over only after the pause', async () => {
  const lock = join(dir, 'slow.lock');
  writeFileSync(lock, '');
  const started = Date.now();
  await (
    await takeLock(lock, 'x')
  )();
  assert.ok(Date.now() - started >= 90, 'took over without a second look');
});

test('takeLock takes over an unreadable lock (a dangling symlink) as an empty one', async () => {
  const lock = join(dir, 'dangling.lock');
  symlinkSync(join(dir, 'nowhere'), lock);
  const release = await takeLock(lock, 'x');
  assert.ok(!lstatSync(lock).isSymbolicLink());
  assert.equal(readFileSync(lock, 'utf8'), `${process.pid}\n`);
  await release();
  assert.ok(!existsSync(lock));
});

test('takeLock: a dead lock that another taker removed first is not an error', async (t) => {
  const lock = join(dir, 'raced.lock');
  const dead = 2 ** 22 + 1; // above pid_max's default: no such process
  writeFileSync(lock, `${dead}\n`);
  // The other taker removes the stale lock between our look at its pid and our removal.
  t.mock.method(process, 'kill', (pid: number) => {
    assert.equal(pid, dead);
    rmSync(lock);
    throw Object.assign(new Error('kill ESRCH'), { code: 'ESRCH' });
  });
  const release = await takeLock(lock, 'x');
  assert.equal(readFileSync(lock, 'utf8'), `${process.pid}\n`);
  await release();
});

test('takeLock: releasing a lock someone already removed is not an error', async () => {
  const lock = join(dir, 'gone.lock');
  const release = await takeLock(lock, 'x');
  rmSync(lock);
  await release();
  assert.ok(!existsSync(lock));
});

test("processAlive: EPERM (another user's process) is alive, ESRCH is not; it probes with signal 0", (t) => {
  const kill = t.mock.method(process, 'kill', (_pid: number, _signal: number) => {
    throw Object.assign(new Error('kill EPERM'), { code: 'EPERM' });
  });
  assert.equal(processAlive(4242), true);
  assert.deepEqual(kill.mock.calls[0]!.arguments, [4242, 0]);
  kill.mock.mockImplementation(() => {
    throw Object.assign(new Error('kill ESRCH'), { code: 'ESRCH' });
  });
  assert.equal(processAlive(4242), false);
});
