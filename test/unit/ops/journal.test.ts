import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  Journal,
  journalOwnerAlive,
  journalsDir,
  processStart,
  readJournals,
  removeDeadTempJournals,
  rewriteJournal,
} from '../../../src/core/ops/journal.js';
import { afterLooking } from '../../helpers/fs-race.js';
import { deadJournal, deadPid, journalFiles, opsStateDir, readJournal } from '../../helpers/journal-fixture.js';

// The journal an operation keeps while it runs: which process wrote it (a pid can be reused), the undo steps of every
// withUndo in it, and the files a killed writer leaves (half-written copies), on real files in a temp dir.

/** Clock ticks since boot (USER_HZ is 100 on Linux), now. */
const ticksNow = () => Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 100;

test("processStart is the process's start time in clock ticks since boot (/proc/PID/stat field 22)", async () => {
  const expected = ticksNow() - process.uptime() * 100;
  const own = Number(processStart(process.pid));
  assert.ok(Math.abs(own - expected) < 300, `started at tick ${own}, about ${Math.round(expected)}`);
  const child = spawn('sleep', ['5'], { stdio: 'ignore' });
  try {
    await new Promise((r) => child.on('spawn', r));
    const later = Number(processStart(child.pid!));
    assert.ok(later >= own && later <= ticksNow() + 1, `a child started later: tick ${later}`);
  } finally {
    child.kill('SIGKILL');
  }
  assert.equal(processStart(deadPid()), undefined);
});

test("a journal's owner is alive only while its pid runs and (when recorded) has the same start time", () => {
  const start = processStart(process.pid);
  assert.equal(journalOwnerAlive({ pid: process.pid, start }), true);
  assert.equal(journalOwnerAlive({ pid: process.pid, start: `${start}0` }), false, 'the pid went to another process');
  assert.equal(journalOwnerAlive({ pid: process.pid }), true, 'no start recorded: the pid alone decides');
  assert.equal(journalOwnerAlive({ pid: deadPid(), start }), false);
  assert.equal(journalOwnerAlive({ pid: deadPid() }), false);
});

test('each withUndo keeps its own stack in the journal: closing one leaves the others written down', async () => {
  const dir = opsStateDir();
  const journal = await Journal.create(dir, { id: 'op-s', command: 'set', vms: ['v'], host: false });
  assert.equal(journal.pending, false);
  const [outer, inner] = [journal.openStack(), journal.openStack()];
  assert.equal(journal.pending, false, 'stacks with no steps leave nothing to do');
  outer.push({ what: 'outer step' });
  inner.push({ what: 'inner step' });
  await journal.flush();
  assert.deepEqual(readJournal(journal.path).steps, [{ what: 'outer step' }, { what: 'inner step' }]);
  await journal.closeStack(inner);
  assert.deepEqual(readJournal(journal.path).steps, [{ what: 'outer step' }]);
  assert.equal(journal.pending, true);
  await journal.closeStack(outer);
  assert.deepEqual(readJournal(journal.path).steps, []);
  assert.equal(journal.pending, false);
});

test('a finish to do keeps the journal pending until it is cleared', async () => {
  const dir = opsStateDir();
  const journal = await Journal.create(dir, { id: 'op-f', command: 'destroy', vms: ['v'], host: true });
  const finish = { what: 'destroy v', actions: [{ kind: 'remove-dir' as const, path: join(dir, 'v') }] };
  await journal.finish(finish);
  assert.equal(journal.pending, true);
  assert.deepEqual(readJournal(journal.path).finish, finish);
  await journal.finish(undefined);
  assert.equal(journal.pending, false);
  assert.equal(readJournal(journal.path).finish, undefined);
});

test('readJournals reads ID.json files only (never a copy being written), oldest first, skipping what is no journal', async () => {
  const dir = opsStateDir();
  const ops = journalsDir(dir);
  mkdirSync(ops, { recursive: true });
  const [older, newer] = [
    deadJournal('b', { started: '2026-01-01T00:00:00.000Z' }),
    deadJournal('a', { started: '2026-01-02T00:00:00.000Z' }),
  ];
  writeFileSync(join(ops, 'a.json'), JSON.stringify(newer));
  writeFileSync(join(ops, 'b.json'), JSON.stringify(older));
  writeFileSync(join(ops, 'c.json'), '{"half');
  // A whole copy a killed writer had not renamed yet, and files of other kinds: none is a journal.
  for (const name of [`c.json.${deadPid()}.tmp`, 'c.json.bak', 'c'])
    writeFileSync(join(ops, name), JSON.stringify(older));
  assert.deepEqual(await readJournals(dir), [
    { ...older, path: join(ops, 'b.json'), alive: false },
    { ...newer, path: join(ops, 'a.json'), alive: false },
  ]);
  assert.deepEqual(await readJournals(join(dir, 'none')), [], 'no journals dir: no journals');
});

test("the half-written journals of dead processes go; a live writer's and other files stay; one gone meanwhile is no error", async () => {
  const dir = opsStateDir();
  const ops = journalsDir(dir);
  mkdirSync(ops, { recursive: true });
  const dead = Array.from({ length: 12 }, (_, i) => `op${i}.json.${deadPid()}.tmp`);
  const kept = [`live.json.${process.pid}.tmp`, `x.json.${deadPid()}.tmp.keep`, 'y.json', `z.${deadPid()}.tmp`];
  for (const name of [...dead, ...kept]) writeFileSync(join(ops, name), '{');
  // Another vms cleaning up at the same time, ahead of this one (it goes the other way): files vanish meanwhile.
  const other = (async () => {
    for (const name of [...dead].reverse()) await rm(join(ops, name), { force: true });
  })();
  await Promise.all([removeDeadTempJournals(dir), other]);
  assert.deepEqual(journalFiles(dir), [...kept].sort());
  await removeDeadTempJournals(join(dir, 'none'));
});

test('rewriteJournal replaces the file whole (via a temp copy): indented JSON, a final newline, group-writable', async () => {
  const dir = opsStateDir();
  mkdirSync(journalsDir(dir), { recursive: true });
  const path = join(journalsDir(dir), 'op-w.json');
  writeFileSync(path, 'old');
  const record = deadJournal('op-w', { steps: [{ what: 'remove x', action: { kind: 'remove-file', path: '/x' } }] });
  const umask = process.umask(0); // the mode asked for shows, not the umask's
  try {
    await rewriteJournal(path, record);
  } finally {
    process.umask(umask);
  }
  assert.equal(readFileSync(path, 'utf8'), JSON.stringify(record, null, 1) + '\n');
  assert.equal(statSync(path).mode & 0o777, 0o664);
  assert.deepEqual(journalFiles(dir), ['op-w.json']);
});

test('Journal.create writes down who runs it: the command, its VMs and locks, this pid and its start time', async () => {
  const dir = opsStateDir();
  const before = new Date().toISOString();
  const umask = process.umask(0); // the mode asked for shows, not the umask's
  const journal = await Journal.create(dir, { id: 'op-c', command: 'clone', vms: ['a', 'b'], host: true }).finally(() =>
    process.umask(umask),
  );
  assert.equal(statSync(journal.path).mode & 0o777, 0o664);
  const text = readFileSync(journal.path, 'utf8');
  assert.equal(text, JSON.stringify(JSON.parse(text), null, 1) + '\n');
  const { started, ...rest } = readJournal(journal.path);
  assert.deepEqual(rest, {
    id: 'op-c',
    command: 'clone',
    vms: ['a', 'b'],
    host: true,
    pid: process.pid,
    start: processStart(process.pid),
    steps: [],
  });
  assert.equal(started >= before && started <= new Date().toISOString(), true, `started ${started}`);
  assert.equal(journal.path, join(journalsDir(dir), 'op-c.json'));
});

test('a removed journal stays removed: a write under way ends first, a flush after is not written', async () => {
  const dir = opsStateDir();
  const journal = await Journal.create(dir, { id: 'op-r', command: 'start', vms: ['v'], host: false });
  let removing: Promise<void> | undefined;
  // The removal is asked for while a write is under way (its temp copy written, not yet renamed into place), and
  // has the time to finish before the write goes on, if it does not wait for it.
  await afterLooking(
    'writeFile',
    `${journal.path}.${process.pid}.tmp`,
    async () => {
      removing ??= journal.remove();
      await new Promise((r) => setTimeout(r, 50));
    },
    () => journal.flush(),
  );
  await removing;
  assert.deepEqual(journalFiles(dir), []);
  await journal.flush(); // a step pushed late (its flush is not awaited)
  assert.deepEqual(journalFiles(dir), []);
  await journal.remove(); // removed twice: no error
});

test('a journal whose last write failed is still removed without an error', async () => {
  const dir = opsStateDir();
  const journal = await Journal.create(dir, { id: 'op-e', command: 'start', vms: ['v'], host: false });
  rmSync(journalsDir(dir), { recursive: true });
  await assert.rejects(journal.flush(), { code: 'ENOENT' });
  await journal.remove();
  assert.deepEqual(journalFiles(dir), []);
});
