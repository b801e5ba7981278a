import { test } from 'node:test';
import assert from 'node:assert/strict';
import { leftBehind, Rollbacks, UndoStack, withUndo } from '../../../src/core/ops/undo.js';
import { Journal } from '../../../src/core/ops/journal.js';
import type { UndoAction } from '../../../src/core/ops/undo-actions.js';
import { interrupted, VmsError } from '../../../src/errors.js';
import { opsStateDir, readJournal } from '../../helpers/journal-fixture.js';

test('rollback undoes newest first, reports failures and keeps going', async () => {
  const undo = new UndoStack();
  const ran: string[] = [];
  undo.push('remove dir', async () => {
    ran.push('dir');
  });
  undo.push('remove disk', async () => {
    ran.push('disk');
    throw new Error('EBUSY');
  });
  undo.push('undefine vm', async () => {
    ran.push('vm');
  });
  assert.deepEqual(await undo.rollback(), ['remove disk: EBUSY']);
  assert.deepEqual(ran, ['vm', 'disk', 'dir']);
  // Everything was taken back: a second rollback does nothing.
  assert.deepEqual(await undo.rollback(), []);
  assert.deepEqual(ran, ['vm', 'disk', 'dir']);
});

test('withUndo rolls back on failure and rethrows the original error with what is left', async () => {
  const ran: string[] = [];
  const original = new Error('define failed');
  await assert.rejects(
    withUndo(async (undo) => {
      undo.push('remove a', async () => {
        ran.push('a');
        throw new Error('busy');
      });
      undo.push('remove b', async () => {
        ran.push('b');
      });
      undo.push('remove c', async () => {
        ran.push('c');
        throw new Error('gone');
      });
      throw original;
    }),
    (err: unknown) => {
      assert.equal(err, original);
      assert.equal((err as Error).message, 'define failed (and clean-up failed: remove c: gone; remove a: busy)');
      assert.deepEqual(leftBehind(err), ['remove c: gone', 'remove a: busy']);
      return true;
    },
  );
  assert.deepEqual(ran, ['c', 'b', 'a']);
});

test('withUndo leaves the message alone when every undo step succeeds', async () => {
  const ran: string[] = [];
  await assert.rejects(
    withUndo(async (undo) => {
      undo.push('one', async () => {
        ran.push('one');
      });
      undo.push('two', async () => {
        ran.push('two');
      });
      throw new Error('boom');
    }),
    (err: unknown) => (err as Error).message === 'boom' && leftBehind(err).length === 0,
  );
  assert.deepEqual(ran, ['two', 'one']);
});

test('withUndo returns the result and runs no undo step on success', async () => {
  const ran: string[] = [];
  const result = await withUndo(async (undo) => {
    undo.push('one', async () => {
      ran.push('one');
    });
    return 42;
  });
  assert.equal(result, 42);
  assert.deepEqual(ran, []);
});

test('while a rollback runs, its Rollbacks name the steps not yet done (what a forced exit would leave)', async () => {
  const rollbacks = new Rollbacks();
  const cleanupInProgress = () => rollbacks.remaining();
  const undo = new UndoStack(undefined, undefined, rollbacks);
  const seen: string[][] = [];
  undo.push('remove dir', async () => {
    seen.push(cleanupInProgress());
  });
  undo.push('remove disk', async () => {
    seen.push(cleanupInProgress());
  });
  undo.push('undefine vm', async () => {
    seen.push(cleanupInProgress());
  });
  assert.deepEqual(cleanupInProgress(), [], 'nothing before the rollback');
  await undo.rollback();
  // Each step still counts as left while it runs: it may not finish.
  assert.deepEqual(seen, [['undefine vm', 'remove disk', 'remove dir'], ['remove disk', 'remove dir'], ['remove dir']]);
  assert.deepEqual(cleanupInProgress(), [], 'nothing after it');
});

test('withUndo with a keep function that says so keeps everything made and rethrows the error as it was', async () => {
  const ran: string[] = [];
  const original = new Error('install failed');
  await assert.rejects(
    withUndo(
      async (undo) => {
        undo.push('remove disk', async () => {
          ran.push('disk');
        });
        throw original;
      },
      () => true,
    ),
    (err: unknown) => err === original && original.message === 'install failed',
  );
  assert.deepEqual(ran, []);
});

test('an interrupted command is rolled back and reported as an interrupt, saying whether clean-up was complete', async () => {
  const interruptedWith = async (failing: boolean) => {
    let thrown: unknown;
    await withUndo(async (undo) => {
      undo.push('remove dir', async () => {
        if (failing) throw new Error('EBUSY');
      });
      undo.push('undefine vm', async () => {
        if (failing) throw new Error('gone');
      });
      throw interrupted();
    }).catch((err: unknown) => (thrown = err));
    assert.ok(thrown instanceof VmsError, 'a VmsError');
    return { code: thrown.code, hint: thrown.hint, details: thrown.details };
  };
  assert.deepEqual(await interruptedWith(false), {
    code: 'interrupted',
    hint: 'everything this command had made so far was removed',
    details: undefined,
  });
  assert.deepEqual(await interruptedWith(true), {
    code: 'interrupted',
    hint: 'some clean-up failed: see above for what is left',
    details: 'undefine vm: gone\nremove dir: EBUSY',
  });
});

/** A journal in a state dir of its own, and its steps as written now. */
async function journaled() {
  const journal = await Journal.create(opsStateDir(), { id: 'op', command: 'clone', vms: ['v'], host: false });
  return { journal, written: () => readJournal(journal.path).steps.map((s) => s.what) };
}

test('a rollback writes each step off the journal as soon as it is undone; only the failed ones stay', async () => {
  const { journal, written } = await journaled();
  const seen: string[][] = [];
  const run = async (action: UndoAction) => {
    seen.push(written());
    if (action.kind === 'remove-file' && action.path === '/second') throw new Error('EBUSY');
  };
  const undo = new UndoStack(run, journal);
  await undo.add('first', { kind: 'remove-file', path: '/first' });
  await undo.add('second', { kind: 'remove-file', path: '/second' });
  await undo.add('third', { kind: 'remove-file', path: '/third' });
  assert.deepEqual(await undo.rollback(), ['second: EBUSY']);
  assert.deepEqual(seen, [
    ['first', 'second', 'third'],
    ['first', 'second'],
    ['second', 'first'],
  ]);
  assert.deepEqual(written(), ['second'], 'the failed step stays, the one undone after it is gone');
});

test('what a keep function keeps is not left for a repair to undo', async () => {
  const { journal, written } = await journaled();
  await assert.rejects(
    withUndo(
      async (undo) => {
        await undo.add('remove disk', { kind: 'remove-file', path: '/disk' });
        throw new Error('install failed');
      },
      { keep: () => true, journal },
    ),
    { message: 'install failed' },
  );
  assert.deepEqual(written(), []);
  assert.equal(journal.pending, false);
});
