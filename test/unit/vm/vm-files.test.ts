import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal, type JournalRecord } from '../../../src/core/ops/journal.js';
import { runFileAction } from '../../../src/core/ops/undo-actions.js';
import { UndoStack } from '../../../src/core/ops/undo.js';
import { claimDiskPath } from '../../../src/core/vm/vm-files.js';

// A disk path is claimed by creating the file exclusively; its removal is journaled before the file exists, so a
// kill at any point leaves no orphan, and a file someone else had there is never taken or removed.

function dirs() {
  const root = mkdtempSync(join(tmpdir(), 'vms-claim-'));
  const images = join(root, 'images');
  mkdirSync(images);
  return { images, state: join(root, 'state') };
}

test('claimDiskPath skips a name that is taken (the file left alone) and claims the next; a rollback removes only its own', async () => {
  const { images } = dirs();
  writeFileSync(join(images, 'web.qcow2'), 'a user file');
  const undo = new UndoStack();
  const path = await claimDiskPath(images, 'web', undo);
  assert.equal(path, join(images, 'web-2.qcow2'));
  assert.ok(existsSync(path));
  assert.deepEqual(await undo.rollback(), []);
  assert.ok(!existsSync(path), 'the claimed file went');
  assert.equal(readFileSync(join(images, 'web.qcow2'), 'utf8'), 'a user file');
});

test('the journal holds the claim (written before the file is made) and its removal, nothing for a taken name', async () => {
  const { images, state } = dirs();
  writeFileSync(join(images, 'web.qcow2'), '');
  const journal = await Journal.create(state, { id: 'op1', command: 'create', vms: ['web'], host: false });
  const undo = new UndoStack(runFileAction, journal);
  const path = await claimDiskPath(images, 'web', undo);
  const record = JSON.parse(readFileSync(journal.path, 'utf8')) as JournalRecord;
  assert.deepEqual(
    record.steps.map((s) => s.action),
    [
      { kind: 'remove-claim', path, since: (record.steps[0]!.action as { since: number }).since },
      { kind: 'remove-file', path },
    ],
  );
  // Killed before the remove-file step was written: the claim alone takes the new empty file back.
  await runFileAction(record.steps[0]!.action!);
  assert.ok(!existsSync(path));
  assert.ok(existsSync(join(images, 'web.qcow2')), 'the empty file that was there before stays');
});

test('remove-claim removes only an empty file made after the claim began', async () => {
  const { images } = dirs();
  const path = join(images, 'x.qcow2');
  writeFileSync(path, '');
  await runFileAction({ kind: 'remove-claim', path, since: Date.now() + 60_000 });
  assert.ok(existsSync(path), 'older than the claim: someone else made it');
  writeFileSync(path, 'data');
  await runFileAction({ kind: 'remove-claim', path, since: 0 });
  assert.ok(existsSync(path), 'it has content: not the empty claim');
  writeFileSync(path, '');
  await runFileAction({ kind: 'remove-claim', path, since: Date.now() - 2000 });
  assert.ok(!existsSync(path));
  await runFileAction({ kind: 'remove-claim', path, since: 0 }); // twice is safe (a repair may be interrupted)
});
