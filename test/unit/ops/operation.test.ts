import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Journal, journalsDir, processStart, readJournals, type JournalRecord } from '../../../src/core/ops/journal.js';
import { FlockLocks, LockBusy, lockOrder } from '../../../src/core/ops/locks.js';
import { withOperation } from '../../../src/core/ops/operation.js';
import { repairInterrupted } from '../../../src/core/ops/repair.js';
import { withUndo } from '../../../src/core/ops/undo.js';
import { VmsError } from '../../../src/errors.js';
import {
  deadJournal,
  deadPid,
  journalFiles,
  opsContext,
  opsStateDir,
  readJournal,
  writeJournal,
} from '../../helpers/journal-fixture.js';

test('locks are taken in one order: VMs by name, the host lock last', () => {
  assert.deepEqual(lockOrder({ vms: ['b', 'a', 'b'], host: true }), ['a', 'b', '~bases']);
  assert.deepEqual(lockOrder({ vms: ['z'] }), ['z']);
});

test('a held VM lock makes a second taker wait, then fail with LockBusy naming it; released, it is free again', async () => {
  const dir = opsStateDir();
  const first = await new FlockLocks(dir, 0).acquire({ vms: ['a', 'b'] });
  const t0 = Date.now();
  await assert.rejects(
    new FlockLocks(dir, 300).acquire({ vms: ['b'] }),
    (err: unknown) => err instanceof LockBusy && err.lock === 'b' && err.exitCode === 4,
  );
  assert.ok(Date.now() - t0 >= 250, 'it waited before giving up');
  const other = await new FlockLocks(dir, 0).acquire({ vms: ['c'] }); // another VM is not held
  await other.release();
  await first.release();
  await (await new FlockLocks(dir, 0).acquire({ vms: ['b'], host: true })).release();
});

test('a killed holder leaves no lock behind (the kernel drops it with the process)', async () => {
  const dir = opsStateDir();
  // A process that takes the lock and then is killed with SIGKILL, as a vms killed mid-command would be.
  const script = `import('${new URL('../../../src/core/ops/locks.ts', import.meta.url).pathname}').then(async (m) => { await new m.FlockLocks(${JSON.stringify(dir)}, 0).acquire({ vms: ['v'] }); console.log('held'); setInterval(() => {}, 1000); })`;
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout.on('data', (d) => String(d).includes('held') && resolve()));
  await assert.rejects(new FlockLocks(dir, 0).acquire({ vms: ['v'] }), LockBusy);
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  for (let i = 0; ; i++) {
    try {
      await (await new FlockLocks(dir, 0).acquire({ vms: ['v'] })).release();
      break;
    } catch (err) {
      // its `flock` helper notices the end of its pipe a moment later
      if (!(err instanceof LockBusy) || i > 50) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
});

test('undo steps are written to the journal before they are needed, and leave it when done or undone', async () => {
  const dir = opsStateDir();
  const journal = await Journal.create(dir, { id: 'op1', command: 'clone', vms: ['a'], host: false });
  const read = () => JSON.parse(readFileSync(journal.path, 'utf8')) as JournalRecord;
  const seen: string[][] = [];
  const file = join(dir, 'made');
  await assert.rejects(
    withUndo(
      async (undo) => {
        await undo.add(`remove ${file}`, { kind: 'remove-file', path: file });
        seen.push(read().steps.map((s) => s.what)); // written before the step runs
        writeFileSync(file, 'x');
        undo.push('a closure', async () => {});
        await journal.flush();
        seen.push(read().steps.map((s) => s.what));
        throw new Error('step failed');
      },
      { journal },
    ),
    /step failed/,
  );
  assert.deepEqual(seen, [[`remove ${file}`], [`remove ${file}`, 'a closure']]);
  assert.equal(existsSync(file), false, 'undone');
  assert.deepEqual(read().steps, [], 'nothing left to undo');
  assert.equal(journal.pending, false);

  await withUndo(async (undo) => undo.add('remove x', { kind: 'remove-file', path: join(dir, 'x') }), { journal });
  assert.deepEqual(read().steps, [], 'a finished command leaves nothing to undo');
  await journal.remove();
  assert.deepEqual(journalFiles(dir), []);
});

test('an undo step that fails stays in the journal for a later repair; the error says what is left', async () => {
  const dir = opsStateDir();
  const journal = await Journal.create(dir, { id: 'op2', command: 'clone', vms: ['a'], host: false });
  await assert.rejects(
    withUndo(
      async (undo) => {
        await undo.add('chmod a missing file', { kind: 'chmod', path: join(dir, 'missing'), mode: 0o644 });
        throw new Error('boom');
      },
      { journal },
    ),
    /boom \(and clean-up failed: chmod a missing file: ENOENT/,
  );
  assert.equal(journal.pending, true);
  assert.deepEqual(
    (JSON.parse(readFileSync(journal.path, 'utf8')) as JournalRecord).steps.map((s) => s.what),
    ['chmod a missing file'],
  );
});

test('repair undoes a dead operation newest first, says what it could not, and removes its journal', async () => {
  const dir = opsStateDir();
  const [a, b] = [join(dir, 'a.qcow2'), join(dir, 'b')];
  writeFileSync(a, 'a');
  writeFileSync(b, 'b');
  writeFileSync(join(dir, 'keep'), 'k');
  const record: JournalRecord = {
    id: 'dead',
    pid: deadPid(),
    command: 'clone',
    vms: ['v'],
    host: true,
    started: new Date().toISOString(),
    steps: [
      { what: 'remove a', action: { kind: 'remove-file', path: a } },
      { what: 'only the process knew' },
      { what: 'remove b', action: { kind: 'remove-file', path: b } },
    ],
  };
  const j = await Journal.create(dir, { id: 'placeholder', command: 'x', vms: [], host: false });
  await j.remove(); // makes the directory
  writeFileSync(join(journalsDir(dir), 'dead.json'), JSON.stringify(record));
  writeFileSync(join(journalsDir(dir), `dead.json.${record.pid}.tmp`), '{"half'); // a write the kill cut short
  assert.equal((await readJournals(dir))[0]!.alive, false);

  const reports = await repairInterrupted(opsContext(dir));
  assert.equal(reports.length, 1);
  assert.deepEqual(reports[0]!.done, ['remove b', 'remove a']);
  assert.deepEqual(reports[0]!.unknown, ['only the process knew']);
  assert.deepEqual(reports[0]!.failed, []);
  assert.equal(existsSync(a) || existsSync(b), false);
  assert.ok(existsSync(join(dir, 'keep')));
  assert.deepEqual(journalFiles(dir), [], 'journal and half-written copy gone');
});

test('repair leaves a live operation alone', async () => {
  const dir = opsStateDir();
  const live = await Journal.create(dir, { id: 'live', command: 'clone', vms: ['v'], host: false });
  assert.deepEqual(await repairInterrupted(opsContext(dir)), []);
  assert.ok(existsSync(live.path), 'the live journal is still there');
});

test('a busy VM is refused with the command and pid that hold it; names are checked before any file is touched', async () => {
  const dir = opsStateDir();
  const holder = await Journal.create(dir, { id: 'holder', command: 'clone', vms: ['v'], host: true });
  const lease = await new FlockLocks(dir, 0).acquire({ vms: ['v'], host: true });
  try {
    await assert.rejects(
      withOperation(opsContext(dir), { command: 'start', vms: ['v'] }, async () => assert.fail('ran while busy')),
      (err: unknown) =>
        err instanceof VmsError &&
        err.exitCode === 4 &&
        err.reason === 'lock.busy' &&
        err.message === `v is busy (vms clone, pid ${process.pid})`,
    );
    await assert.rejects(
      withOperation(opsContext(dir), { command: 'clone', vms: ['w'], host: true }, async () =>
        assert.fail('ran while busy'),
      ),
      { message: `another vms command is changing shared disks (vms clone, pid ${process.pid})` },
    );
  } finally {
    await lease.release();
    await holder.remove();
  }
  const before = readdirSync(dir);
  await assert.rejects(
    withOperation(opsContext(dir), { command: 'start', vms: ['../x'] }, async () => assert.fail('ran')),
    { code: 'usage' },
  );
  assert.deepEqual(readdirSync(dir), before);
});

test('an operation holds its VMs for its body, keeps no journal when done, and nests inside itself', async () => {
  const dir = opsStateDir();
  const ctx = opsContext(dir);
  const result = await withOperation(ctx, { command: 'set', vms: ['v', 'w'] }, async (inner) => {
    assert.equal(journalFiles(dir).length, 1, 'its journal names it while it runs');
    await assert.rejects(new FlockLocks(dir, 0).acquire({ vms: ['w'] }), LockBusy);
    // set --restart stops the VM through stop's own operation: it runs inside, it does not wait on itself
    return withOperation(inner, { command: 'stop', vms: ['v'] }, async () => 42);
  });
  assert.equal(result, 42);
  assert.deepEqual(journalFiles(dir), []);
  await (await new FlockLocks(dir, 0).acquire({ vms: ['v', 'w'] })).release();
});

test('work a killed vms could not finish blocks operations on its VMs (any of them) only, saying what is left', async () => {
  const dir = opsStateDir();
  const missing = join(dir, 'missing');
  writeJournal(
    dir,
    deadJournal('stuck', {
      vms: ['u', 'v'],
      steps: [{ what: 'chmod', action: { kind: 'chmod', path: missing, mode: 0o644 } }],
    }),
  );
  const pid = readJournal(join(journalsDir(dir), 'stuck.json')).pid;
  await assert.rejects(
    withOperation(opsContext(dir), { command: 'start', vms: ['v'] }, async () => assert.fail('ran')),
    (err: unknown) =>
      err instanceof VmsError &&
      err.code === 'conflict' &&
      err.message ===
        `an interrupted vms clone (pid ${pid}) left work on u, v that could not be finished: chmod: ` +
          `ENOENT: no such file or directory, chmod '${missing}'` &&
      err.hint === '`vms repair` tries again and says what is left',
  );
  assert.equal(await withOperation(opsContext(dir), { command: 'start', vms: ['w'] }, async () => 'ran'), 'ran');
});

test('work a killed vms left and that is finished now blocks nothing', async () => {
  const dir = opsStateDir();
  writeJournal(
    dir,
    deadJournal('done', { vms: ['v'], steps: [{ what: 'rm', action: { kind: 'remove-file', path: join(dir, 'x') } }] }),
  );
  assert.equal(await withOperation(opsContext(dir), { command: 'start', vms: ['v'] }, async () => 'ran'), 'ran');
  assert.deepEqual(journalFiles(dir), []);
});

test('"busy" names every live operation holding the lock, and no other (dead, its own, other VMs, not the host)', async () => {
  const dir = opsStateDir();
  const alive = { pid: process.pid, start: processStart(process.pid) };
  writeJournal(dir, deadJournal('holder', { ...alive, command: 'clone', vms: ['v'], host: true }));
  writeJournal(dir, deadJournal('second', { ...alive, command: 'set', vms: ['a', 'v'] }));
  writeJournal(dir, deadJournal('me', { ...alive, command: 'mine', vms: ['v'], host: true })); // the asker's own
  writeJournal(dir, deadJournal('other-vm', { ...alive, command: 'other', vms: ['w'], host: false }));
  writeJournal(dir, deadJournal('dead', { command: 'dead', vms: ['v'], host: true })); // its process is gone
  const lease = await new FlockLocks(dir, 0).acquire({ vms: ['v'], host: true });
  const ctx = { ...opsContext(dir), operationId: 'me' };
  const busy = (req: { vms: string[]; host?: boolean }) =>
    withOperation(ctx, { command: 'start', ...req }, async () => assert.fail('ran while busy')).catch(
      (err: VmsError) => [err.message, err.hint, err.reason],
    );
  try {
    const hint = 'wait for it to finish, then try again';
    assert.deepEqual(await busy({ vms: ['v'] }), [
      `v is busy (vms clone, pid ${process.pid}; vms set, pid ${process.pid})`,
      hint,
      'lock.busy',
    ]);
    assert.deepEqual(await busy({ vms: [], host: true }), [
      `another vms command is changing shared disks (vms clone, pid ${process.pid})`,
      hint,
      'lock.busy',
    ]);
  } finally {
    await lease.release();
  }
});

test('an operation inside another may take only locks the outer one holds', async () => {
  const dir = opsStateDir();
  await withOperation(opsContext(dir), { command: 'set', vms: ['v'] }, async (inner) => {
    await assert.rejects(
      withOperation(inner, { command: 'stop', vms: ['v', 'w'], host: true }, async () => assert.fail('ran')),
      { message: 'internal: stop needs locks its operation does not hold: w, ~bases' },
    );
  });
});
