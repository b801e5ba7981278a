import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal, type JournalRecord } from '../../../src/core/ops/journal.js';
import { runFileAction } from '../../../src/core/ops/undo-actions.js';
import { UndoStack } from '../../../src/core/ops/undo.js';
import { VmsError } from '../../../src/errors.js';
import { claimDiskPath, freeDiskPath, makeVmDir, readVmSecrets, vmFiles } from '../../../src/core/vm/vm-files.js';
import type { Config } from '../../../src/config.js';

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

test('freeDiskPath names the first free path (<stem>.qcow2, then -2, -3 …) and makes nothing', () => {
  const { images } = dirs();
  assert.equal(freeDiskPath(images, 'web'), join(images, 'web.qcow2'));
  writeFileSync(join(images, 'web.qcow2'), 'a frozen base');
  writeFileSync(join(images, 'web-2.qcow2'), 'another');
  assert.equal(freeDiskPath(images, 'web'), join(images, 'web-3.qcow2'));
  assert.deepEqual(readdirSync(images).sort(), ['web-2.qcow2', 'web.qcow2'], 'only named, never created');
});

test('claimDiskPath in a missing images dir: not found (exit 3) with the bootstrap hint, and no claim left', async () => {
  const { images } = dirs();
  const undo = new UndoStack();
  const missing = join(images, 'gone');
  await assert.rejects(
    claimDiskPath(missing, 'web', undo),
    (e: unknown) =>
      e instanceof VmsError &&
      e.code === 'notFound' &&
      e.message === `images directory ${missing} does not exist` &&
      e.hint === 'run `vms bootstrap`, or set VMS_IMAGES_DIR',
  );
  assert.deepEqual(await undo.rollback(), [], 'the claim was dropped: nothing to undo');
});

test('claimDiskPath where it may not write: failed, naming the directory and the reason, and no claim left', async (t) => {
  // A file in place of the directory (ENOTDIR) takes the path of any error but ENOENT and EEXIST: root writes anywhere.
  const { images } = dirs();
  const notDir = join(images, 'file');
  writeFileSync(notDir, '');
  const undo = new UndoStack();
  await assert.rejects(
    claimDiskPath(notDir, 'web', undo),
    (e: unknown) =>
      e instanceof VmsError &&
      e.code === 'failed' &&
      e.message === `cannot create a disk in ${notDir}: ENOTDIR` &&
      e.hint === 'check that you may write there (`vms bootstrap` sets it up), or set VMS_IMAGES_DIR',
  );
  assert.deepEqual(await undo.rollback(), []);
  assert.equal(readFileSync(notDir, 'utf8'), '', 'the file in the way is left alone');
  t.diagnostic('ENOTDIR stands for EACCES and the rest');
});

const config = (state: string) => ({ stateDir: { value: state } }) as unknown as Config;

test('makeVmDir refuses a non-empty directory of that name (conflict, left as it was); an empty one is taken', async () => {
  const { state } = dirs();
  const files = vmFiles(config(state), 'web');
  mkdirSync(files.dir, { recursive: true });
  writeFileSync(join(files.dir, 'left'), 'x');
  await assert.rejects(
    makeVmDir(files, new UndoStack()),
    (e: unknown) =>
      e instanceof VmsError &&
      e.code === 'conflict' &&
      e.message === `${files.dir} already exists and is not empty` &&
      e.hint === 'a VM of that name was not removed cleanly: move the directory away',
  );
  assert.deepEqual(readdirSync(files.dir), ['left']);
});

test("readVmSecrets: a VM without them is not found, with the hint that clones log in with their source's password", async () => {
  const { state } = dirs();
  const files = vmFiles(config(state), 'web');
  mkdirSync(files.dir, { recursive: true });
  await assert.rejects(
    readVmSecrets(files, 'web'),
    (e: unknown) =>
      e instanceof VmsError &&
      e.code === 'notFound' &&
      e.message === `web has no root password or settings in ${files.dir}` &&
      e.hint === "only VMs that `vms create` installed have them (a clone logs in with its source VM's password)",
  );
  writeFileSync(files.password, 'pw\n');
  writeFileSync(files.settings, 'settings');
  assert.deepEqual(await readVmSecrets(files, 'web'), { password: 'pw', settings: 'settings' });
});
