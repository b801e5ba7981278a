import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { journalsDir, processStart, type JournalRecord } from '../../../src/core/ops/journal.js';
import { FlockLocks, type LockRequest, type Locks } from '../../../src/core/ops/locks.js';
import { interruptedOperations, repairInterrupted, type RepairReport } from '../../../src/core/ops/repair.js';
import type { Progress } from '../../../src/core/progress.js';
import { silentProgress } from '../../../src/core/progress.js';
import {
  deadJournal,
  journalFiles,
  opsContext,
  opsStateDir,
  readJournal,
  writeJournal,
} from '../../helpers/journal-fixture.js';

// `vms repair` (and every operation before it locks) finishing what killed vms processes left: real files in a temp
// dir, real flock locks, and real processes standing for the tools a killed operation had started.

/** A Progress that keeps its notes, each with the time it was given. */
function notesKept() {
  const notes: { text: string; at: number }[] = [];
  const progress: Progress = { ...silentProgress, note: (text) => notes.push({ text, at: Date.now() }) };
  return { notes, progress, texts: () => notes.map((n) => n.text) };
}

/** Undo actions on files, and how the one that finds no file fails. */
const rm = (path: string) => ({ kind: 'remove-file' as const, path });
const chmodMissing = (dir: string) => ({ kind: 'chmod' as const, path: join(dir, 'missing'), mode: 0o644 });
const chmodError = (dir: string) => `ENOENT: no such file or directory, chmod '${join(dir, 'missing')}'`;

/** `path` is still there (assert.ok without a message can hang reading the transpiled source for one). */
const assertKept = (path: string) => assert.equal(existsSync(path), true, `${path} is kept`);

/** A file with content, in `dir`. */
const made = (dir: string, name: string) => {
  const path = join(dir, name);
  writeFileSync(path, name);
  return path;
};

/** The report of a repair that did nothing for `j` (no step run), with `over` in it. */
const untouched = (j: JournalRecord, over: Partial<RepairReport> = {}): RepairReport => ({
  operation: j.id,
  command: j.command,
  pid: j.pid,
  vms: j.vms,
  started: j.started,
  done: [],
  failed: [],
  unknown: [],
  ...over,
});

/** A process standing for a tool operation `id` started (the runner marks them VMS_OPERATION=id), for `seconds`. */
function tool(id: string, seconds: number) {
  const child = spawn('sleep', [String(seconds)], { env: { ...process.env, VMS_OPERATION: id }, stdio: 'ignore' });
  const ended = new Promise((r) => child.on('exit', r));
  return { child, ended, stop: () => child.kill('SIGKILL') };
}

test('repair waits for the tools the killed operation started (its VMS_OPERATION mark), not for anyone else', async () => {
  const dir = opsStateDir();
  const file = made(dir, 'made');
  const path = writeJournal(dir, deadJournal('op-w', { steps: [{ what: 'remove made', action: rm(file) }] }));
  const others = [tool('op-wx', 5), tool('other', 5)]; // a longer id with the same start is another operation
  const own = tool('op-w', 1);
  const { notes, progress } = notesKept();
  const t0 = Date.now();
  try {
    const [r] = await repairInterrupted(opsContext(dir, { progress }));
    assert.deepEqual(r!.done, ['remove made']);
  } finally {
    for (const t of others) t.stop();
  }
  await own.ended;
  assert.equal(notes.length, 1);
  const waited = notes[0]!.at - t0;
  assert.ok(waited >= 900, `undone only once its tool had ended (after ${waited} ms)`);
  assert.ok(waited < 4500, `not held up by the other operations' tools (${waited} ms)`);
  assert.equal(existsSync(file), false);
  assert.equal(existsSync(path), false);
});

test("a wait for a killed operation's tools stops at an abort, with nothing undone and the journal kept", async () => {
  const dir = opsStateDir();
  const file = made(dir, 'made');
  const path = writeJournal(dir, deadJournal('op-a', { steps: [{ what: 'remove made', action: rm(file) }] }));
  const own = tool('op-a', 10);
  const abort = new AbortController();
  setTimeout(() => abort.abort(), 300);
  const t0 = Date.now();
  try {
    await assert.rejects(repairInterrupted(opsContext(dir, { signal: abort.signal })), { name: 'AbortError' });
  } finally {
    own.stop();
  }
  assert.ok(Date.now() - t0 < 5000, 'stopped at the abort, not when the tool ended');
  assertKept(file);
  assert.deepEqual(readJournal(path).steps, [{ what: 'remove made', action: rm(file) }]);
});

test("repair removes the dead process's private temp dirs (vms-PID-…) and no one else's", async () => {
  const dir = opsStateDir();
  const j = deadJournal('op-t');
  writeJournal(dir, j);
  const ours = join(tmpdir(), `vms-${j.pid}-abc`);
  mkdirSync(ours);
  writeFileSync(join(ours, 'domain.xml'), 'x'); // a dir with files: removed with them
  const kept = [`vms-${j.pid}0-abc`, `keep-vms-${j.pid}-`, `vms-${j.pid}`].map((n) => join(tmpdir(), n));
  for (const k of kept) mkdirSync(k);
  try {
    await repairInterrupted(opsContext(dir));
    assert.equal(existsSync(ours), false);
    assert.deepEqual(
      kept.filter((k) => existsSync(k)),
      kept,
    );
  } finally {
    for (const k of [ours, ...kept]) rmSync(k, { recursive: true, force: true });
  }
});

test("the temp dirs of a pid that went to another process since stay: they are that process's", async () => {
  const dir = opsStateDir();
  const file = made(dir, 'made');
  // This process got the dead one's pid: its start time is not the journal's.
  const j = deadJournal('op-r', {
    pid: process.pid,
    start: 'not-its-start',
    steps: [{ what: 'rm', action: rm(file) }],
  });
  writeJournal(dir, j);
  const theirs = join(tmpdir(), `vms-${process.pid}-live`);
  mkdirSync(theirs);
  try {
    const [r] = await repairInterrupted(opsContext(dir));
    assert.deepEqual(r!.done, ['rm'], 'the journal itself is repaired');
    assertKept(theirs);
  } finally {
    rmSync(theirs, { recursive: true, force: true });
  }
});

test('repair goes on when the temp dir cannot be listed', async () => {
  const dir = opsStateDir();
  const path = writeJournal(dir, deadJournal('op-n'));
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = join(dir, 'no-such-dir');
  try {
    assert.equal((await repairInterrupted(opsContext(dir))).length, 1);
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
  assert.equal(existsSync(path), false);
});

test('a dead operation whose VMs (or the host lock) another command holds is skipped, untouched, till next time', async () => {
  const dir = opsStateDir();
  const file = made(dir, 'made');
  const steps = [{ what: 'remove made', action: rm(file) }];
  const cases: [LockRequest, JournalRecord][] = [
    [{ vms: ['v'] }, deadJournal('op-b1', { vms: ['u', 'v'], steps })],
    [{ vms: [], host: true }, deadJournal('op-b2', { vms: ['w'], host: true, steps })],
  ];
  for (const [held, j] of cases) {
    const path = writeJournal(dir, j);
    const lease = await new FlockLocks(dir, 0).acquire(held);
    try {
      assert.deepEqual(await repairInterrupted(opsContext(dir)), [untouched(j, { skipped: true })]);
    } finally {
      await lease.release();
    }
    assertKept(file);
    assert.deepEqual(readJournal(path), j);
    rmSync(path);
  }
});

test('a lock that fails for another reason than "busy" fails the repair', async () => {
  const dir = opsStateDir();
  const path = writeJournal(dir, deadJournal('op-f'));
  const broken: Locks = {
    acquire: async () => {
      throw new Error('cannot lock: EROFS');
    },
  };
  await assert.rejects(repairInterrupted(opsContext(dir, { locks: broken })), { message: 'cannot lock: EROFS' });
  assertKept(path);
});

test('repair lets go of the locks it took', async () => {
  const dir = opsStateDir();
  writeJournal(dir, deadJournal('op-l', { vms: ['v'], host: true }));
  await repairInterrupted(opsContext(dir));
  await (await new FlockLocks(dir, 0).acquire({ vms: ['v'], host: true })).release();
});

/** Locks that, once taken, let `meanwhile` change the journals (as another vms could have before they were free). */
const lockingThen = (dir: string, meanwhile: () => void): Locks => {
  const real = new FlockLocks(dir, 0);
  return {
    acquire: async (req) => {
      const lease = await real.acquire(req);
      meanwhile();
      return lease;
    },
  };
};

test('a journal another vms repaired while this one waited for the locks is left alone', async () => {
  const dir = opsStateDir();
  const file = made(dir, 'made');
  const j = deadJournal('op-g', { steps: [{ what: 'remove made', action: rm(file) }] });
  const path = writeJournal(dir, j);
  const reports = await repairInterrupted(opsContext(dir, { locks: lockingThen(dir, () => rmSync(path)) }));
  assert.deepEqual(reports, [untouched(j, { skipped: false })]);
  assertKept(file);
});

test('a journal whose owner is found alive once the locks are held is left alone (skipped)', async () => {
  const dir = opsStateDir();
  const file = made(dir, 'made');
  const j = deadJournal('op-v', { steps: [{ what: 'remove made', action: rm(file) }] });
  const path = writeJournal(dir, j);
  const alive = { ...j, pid: process.pid, start: processStart(process.pid) };
  const reports = await repairInterrupted(opsContext(dir, { locks: lockingThen(dir, () => writeJournal(dir, alive)) }));
  assert.deepEqual(reports, [untouched(j, { skipped: true })]);
  assertKept(file);
  assert.deepEqual(readJournal(path), alive);
});

test('each dead journal is repaired by its own steps, also after an older one that failed', async () => {
  const dir = opsStateDir();
  const file = made(dir, 'made');
  const older = deadJournal('op-1', {
    started: '2026-01-01T00:00:00.000Z',
    steps: [{ what: 'chmod', action: chmodMissing(dir) }],
  });
  const newer = deadJournal('op-2', { started: '2026-01-02T00:00:00.000Z', steps: [{ what: 'rm', action: rm(file) }] });
  const [olderPath, newerPath] = [writeJournal(dir, older), writeJournal(dir, newer)];
  const reports = await repairInterrupted(opsContext(dir));
  assert.deepEqual(reports, [
    untouched(older, { failed: [`chmod: ${chmodError(dir)}`] }),
    untouched(newer, { done: ['rm'] }),
  ]);
  assertKept(olderPath);
  assert.equal(existsSync(newerPath), false);
  assert.equal(existsSync(file), false);
});

test('a destroy cut short is finished in order, then its journal goes; only "finishing" is said', async () => {
  const dir = opsStateDir();
  const [disk, vmDir] = [made(dir, 'disk.qcow2'), join(dir, 'vmdir')];
  mkdirSync(vmDir);
  writeFileSync(join(vmDir, 'root-password'), 'pw');
  const j = deadJournal('op-d', {
    command: 'destroy',
    finish: { what: 'destroy v', actions: [rm(disk), { kind: 'remove-dir', path: vmDir }] },
  });
  const path = writeJournal(dir, j);
  const { progress, texts } = notesKept();
  assert.deepEqual(await repairInterrupted(opsContext(dir, { progress })), [untouched(j, { done: ['destroy v'] })]);
  assert.deepEqual(texts(), [`finishing what an interrupted vms destroy (pid ${j.pid}) left: destroy v`]);
  assert.equal(existsSync(disk) || existsSync(vmDir), false);
  assert.equal(existsSync(path), false);
});

test('what fails stays in the journal for the next try: the finish from its failed action on, the steps in order', async () => {
  const dir = opsStateDir();
  const [after, a, b] = [made(dir, 'after'), made(dir, 'a'), made(dir, 'b')];
  const finish = { what: 'destroy v', actions: [chmodMissing(dir), rm(after)] };
  const steps = [
    { what: 'first', action: chmodMissing(dir) },
    { what: 'remove a', action: rm(a) },
    { what: 'second', action: { kind: 'chmod' as const, path: join(dir, 'missing'), mode: 0o600 } },
    { what: 'remove b', action: rm(b) },
  ];
  const j = deadJournal('op-p', { command: 'destroy', steps, finish });
  const path = writeJournal(dir, j);
  const { progress, texts } = notesKept();
  const umask = process.umask(0); // the journal's own mode shows, not the umask's
  let reports;
  try {
    reports = await repairInterrupted(opsContext(dir, { progress }));
  } finally {
    process.umask(umask);
  }
  assert.deepEqual(reports, [
    untouched(j, {
      done: ['remove b', 'remove a'],
      failed: [`destroy v: ${chmodError(dir)}`, `second: ${chmodError(dir)}`, `first: ${chmodError(dir)}`],
    }),
  ]);
  assert.deepEqual(texts(), [
    `finishing what an interrupted vms destroy (pid ${j.pid}) left: destroy v`,
    `undoing what an interrupted vms destroy (pid ${j.pid}) left half-made`,
  ]);
  assert.ok(existsSync(after), 'the finish stopped at its failed action');
  assert.equal(existsSync(a) || existsSync(b), false);
  const left = readJournal(path);
  assert.deepEqual([left.id, left.pid, left.command, left.started], [j.id, j.pid, j.command, j.started]);
  assert.deepEqual(left.steps, [steps[0], steps[2]]);
  assert.deepEqual(left.finish, finish);
  assert.equal(statSync(path).mode & 0o777, 0o664);
  assert.deepEqual(journalFiles(dir), ['op-p.json'], 'no temp file left');
});

test('a journal one of its own steps removed is no error', async () => {
  const dir = opsStateDir();
  const path = join(journalsDir(dir), 'op-s.json');
  writeJournal(dir, deadJournal('op-s', { steps: [{ what: 'remove the journal', action: rm(path) }] }));
  const [r] = await repairInterrupted(opsContext(dir));
  assert.deepEqual(r!.done, ['remove the journal']);
  assert.deepEqual(journalFiles(dir), []);
});

test('interruptedOperations lists the dead operations only, and changes nothing', async () => {
  const dir = opsStateDir();
  const file = made(dir, 'made');
  const dead = deadJournal('op-x', { steps: [{ what: 'rm', action: rm(file) }] });
  const deadPath = writeJournal(dir, dead);
  const live = deadJournal('op-y', { pid: process.pid, start: processStart(process.pid) });
  writeJournal(dir, live);
  assert.deepEqual(await interruptedOperations(opsContext(dir)), [{ ...dead, path: deadPath, alive: false }]);
  assertKept(file);
  assert.deepEqual(readdirSync(join(dir, '.operations')).sort(), ['op-x.json', 'op-y.json']);
});
