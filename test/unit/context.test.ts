import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config.js';
import { callerPath, createContext, processHost, type Host } from '../../src/core/context.js';
import { noLocks } from '../../src/core/ops/locks.js';
import { undoOptions, withOperation } from '../../src/core/ops/operation.js';
import { withUndo } from '../../src/core/ops/undo.js';
import { chardevOwner } from '../../src/core/vm/vm-files.js';
import { FakeRunner } from '../helpers/fake-runner.js';

// The Context carries who a request is for (Host) and what its operations have under way (Rollbacks, held locks):
// nothing of it is read from `process` or kept in a module.

const dir = () => mkdtempSync(join(tmpdir(), 'vms-ctx-'));
const config = (d: string) =>
  resolveConfig({ env: { VMS_STATE_DIR: join(d, 'state'), VMS_IMAGES_DIR: d, VMS_CONFIG: join(d, 'none.json') } });
const alice: Host = {
  uid: 1234,
  gid: 1234,
  groups: [1234],
  user: 'alice',
  home: '/home/alice',
  env: { PATH: '/nowhere' },
  cwd: '/srv/alice',
};

test("createContext: the host is this process's unless one is given", () => {
  const d = dir();
  const own = createContext({ config: config(d), runner: new FakeRunner([]) });
  assert.deepEqual({ ...own.host, env: undefined }, { ...processHost(), env: undefined });
  assert.equal(own.host.uid, process.getuid!());
  assert.equal(createContext({ config: config(d), runner: new FakeRunner([]), host: alice }).host, alice);
});

test("a relative path is the caller's, from their directory; an absolute one stays", () => {
  assert.equal(callerPath({ host: alice }, 'disks/a.qcow2'), '/srv/alice/disks/a.qcow2');
  assert.equal(callerPath({ host: alice }, '../b.iso'), '/srv/b.iso');
  assert.equal(callerPath({ host: alice }, '/abs/c'), '/abs/c');
});

test("the console socket's owner is the caller (uid), with the state dir's group, or theirs before it exists", () => {
  const d = dir();
  assert.equal(chardevOwner({ config: config(d), host: alice }), `+1234:+1234`, 'no state dir yet: their own group');
  const ctx = { config: resolveConfig({ env: { VMS_STATE_DIR: d, VMS_CONFIG: join(d, 'none.json') } }), host: alice };
  assert.equal(chardevOwner(ctx), `+1234:+${process.getgid!()}`, "the state dir's group");
});

test("each context has its own rollbacks: one caller's clean-up is not another's", async () => {
  const d = dir();
  const [a, b] = [0, 1].map(() => createContext({ config: config(d), runner: new FakeRunner([]), locks: noLocks }));
  const seen: string[][][] = [];
  await assert.rejects(
    withOperation(a!, { command: 'test', vms: ['x'] }, (ctx) =>
      withUndo(async (undo) => {
        undo.push('remove x', async () => {
          seen.push([a!.rollbacks.remaining(), b!.rollbacks.remaining()]);
        });
        throw new Error('boom');
      }, undoOptions(ctx)),
    ),
    /boom/,
  );
  assert.deepEqual(seen, [[['remove x'], []]]);
  assert.deepEqual(a!.rollbacks.remaining(), [], 'nothing left once it is done');
});

test('an operation inside one runs under its locks; one that needs a lock it does not hold is a bug', async () => {
  const d = dir();
  const ctx = createContext({ config: config(d), runner: new FakeRunner([]), locks: noLocks });
  const inner = await withOperation(ctx, { command: 'outer', vms: ['x', 'y'] }, (outer) => {
    assert.deepEqual([...(outer.heldLocks ?? [])], ['x', 'y']);
    return withOperation(outer, { command: 'inner', vms: ['y'] }, async (c) => c.journal === outer.journal);
  });
  assert.equal(inner, true, "the inner one ran in the outer one's journal");
  await assert.rejects(
    withOperation(ctx, { command: 'outer', vms: ['x'] }, (outer) =>
      withOperation(outer, { command: 'inner', vms: ['z'] }, async () => 0),
    ),
    /needs locks its operation does not hold: z/,
  );
  assert.equal(ctx.heldLocks, undefined, "the caller's context is left as it was");
});
