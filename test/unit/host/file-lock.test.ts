import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
