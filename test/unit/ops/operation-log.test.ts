import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../../src/config.js';
import { createContext, type Context } from '../../../src/core/context.js';
import { EventBus, type StampedEvent } from '../../../src/core/events.js';
import { noLocks } from '../../../src/core/ops/locks.js';
import { KEPT_EVENT_LOGS, pruneEventLogs } from '../../../src/core/ops/operation-log.js';
import { withOperation } from '../../../src/core/ops/operation.js';
import { eventProgress } from '../../../src/core/progress.js';
import { eventLog, vmFiles } from '../../../src/core/vm/vm-files.js';
import { VmsError } from '../../../src/errors.js';
import { FakeRunner } from '../../helpers/fake-runner.js';
import { afterLooking } from '../../helpers/fs-race.js';

function setup(operationId = 'lx1-op') {
  const dir = mkdtempSync(join(tmpdir(), 'vms-oplog-'));
  const bus = new EventBus(operationId);
  const heard: StampedEvent[] = [];
  bus.on((e) => heard.push(e));
  const ctx: Context = createContext({
    config: resolveConfig({ env: { VMS_STATE_DIR: dir, VMS_IMAGES_DIR: dir, VMS_CONFIG: join(dir, 'none.json') } }),
    runner: new FakeRunner([]),
    locks: noLocks,
    progress: eventProgress(bus),
    operationId,
  });
  const files = (vm: string) => vmFiles(ctx.config, vm);
  const logOf = (vm: string) =>
    readFileSync(eventLog(files(vm), operationId), 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as StampedEvent);
  return { ctx, heard, files, logOf };
}

test('one VM: start and end around the operation, its steps name the VM, the log lands in the VM dir', async () => {
  const { ctx, heard, files, logOf } = setup();
  mkdirSync(files('web').dir);
  const out = await withOperation(ctx, { command: 'start', vms: ['web'] }, async (ctx) => {
    await ctx.progress.step('Starting web', async () => {});
    ctx.progress.transcript?.('login: '); // the console stays in install.log, not in the events log
    ctx.progress.transfer?.({ done: 1, total: 2, text: '1/2', final: false }); // of a download only its end
    ctx.progress.transfer?.({ done: 2, total: 2, text: '2/2', final: true });
    return 'done';
  });
  assert.equal(out, 'done');
  assert.deepEqual(
    heard.map((e) => [e.type, 'vm' in e ? e.vm : undefined]),
    [
      ['operation.start', undefined],
      ['step.start', 'web'],
      ['step.end', 'web'],
      ['transcript', undefined],
      ['transfer', undefined],
      ['transfer', undefined],
      ['operation.end', undefined],
    ],
  );
  const end = heard.at(-1)!;
  assert.ok(
    end.type === 'operation.end' && end.ok && end.command === 'start' && end.vms[0] === 'web' && !('error' in end),
  );
  assert.deepEqual(
    logOf('web'),
    heard.filter((e) => e.type !== 'transcript' && (e.type !== 'transfer' || e.final)),
  );
  assert.equal(logOf('web').filter((e) => e.type === 'transfer').length, 1);
});

test('a failed operation ends with its error code and reason, and leaves no log (nothing behind)', async () => {
  const { ctx, heard, files } = setup();
  mkdirSync(files('web').dir);
  await assert.rejects(
    withOperation(ctx, { command: 'disk resize', vms: ['web'] }, async (ctx) => {
      await ctx.progress.step('Growing vdb of web to 2G', async () => {
        throw new VmsError('notFound', 'no disk vdz', undefined, undefined, 'domain.notFound');
      });
    }),
    /no disk vdz/,
  );
  const end = heard.at(-1)!;
  assert.equal(end.type, 'operation.end');
  assert.deepEqual(
    { ok: end.ok, error: end.error },
    { ok: false, error: { message: 'no disk vdz', code: 'notFound', reason: 'domain.notFound' } },
  );
  assert.deepEqual(readdirSync(files('web').dir), []);
});

test('an operation on two VMs: its steps name neither; the log goes to each VM that has a directory', async () => {
  const { ctx, heard, files, logOf } = setup();
  mkdirSync(files('src').dir);
  await withOperation(ctx, { command: 'clone', vms: ['src', 'new'] }, (ctx) =>
    ctx.progress.step('Copying 1 disk(s)', async () => {}),
  );
  const start = heard.find((e) => e.type === 'step.start')!;
  assert.ok(start.type === 'step.start' && start.vm === undefined, 'a step of no VM');
  assert.deepEqual(
    logOf('src').map((e) => e.type),
    ['operation.start', 'step.start', 'step.end', 'operation.end'],
  );
  assert.equal(existsSync(files('new').dir), false, 'no directory made for a VM that has none');
});

test('a nested operation (set --restart stopping its VM) is part of the outer one: no second start/end', async () => {
  const { ctx, heard } = setup();
  await withOperation(ctx, { command: 'set', vms: ['a'] }, (ctx) =>
    withOperation(ctx, { command: 'stop', vms: ['a'] }, (ctx) => ctx.progress.step('Shutting down a', async () => {})),
  );
  assert.deepEqual(
    heard.map((e) => e.type),
    ['operation.start', 'step.start', 'step.end', 'operation.end'],
  );
});

test('a VM keeps the newest logs only; files that are not logs stay', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-oplog-'));
  const names = Array.from({ length: KEPT_EVENT_LOGS + 3 }, (_, i) => `m${String(i).padStart(7, '0')}-x.ndjson`);
  for (const n of [...names, 'README']) writeFileSync(join(dir, n), '');
  await pruneEventLogs(dir);
  assert.deepEqual(readdirSync(dir).sort(), [...names.slice(3), 'README'].sort());
});

test('without an event-based Progress (a library caller, --json in tests) an operation writes no log', async () => {
  const { ctx, files } = setup();
  mkdirSync(files('quiet').dir);
  const silent = createContext({ config: ctx.config, runner: new FakeRunner([]), locks: noLocks });
  await withOperation(silent, { command: 'start', vms: ['quiet'] }, (ctx) =>
    ctx.progress.step('Starting quiet', async () => {}),
  );
  assert.deepEqual(readdirSync(files('quiet').dir), []);
});

test("each operation adds its own log (0755 dir, 0644 files, whatever the umask), with the operation's own duration", async () => {
  const { ctx, files, heard } = setup('lx1-op');
  mkdirSync(files('web').dir);
  const second = createContext({
    config: ctx.config,
    runner: new FakeRunner([]),
    locks: noLocks,
    progress: eventProgress(new EventBus('lx2-op')),
    operationId: 'lx2-op',
  });
  const umask = process.umask(0);
  const t0 = performance.now();
  try {
    await withOperation(ctx, { command: 'start', vms: ['web'] }, () => new Promise((r) => setTimeout(r, 30)));
    await withOperation(second, { command: 'stop', vms: ['web'] }, async () => {});
  } finally {
    process.umask(umask);
  }
  const wall = performance.now() - t0;
  const mode = (path: string) => statSync(path).mode & 0o777;
  const logs = files('web').eventLogs;
  assert.deepEqual(readdirSync(logs).sort(), ['lx1-op.ndjson', 'lx2-op.ndjson']);
  assert.deepEqual([mode(logs), ...readdirSync(logs).map((f) => mode(join(logs, f)))], [0o755, 0o644, 0o644]);
  const end = heard.find((e) => e.type === 'operation.end');
  const took = end?.type === 'operation.end' ? end.durationMs : -1;
  assert.equal(took >= 30 && took <= wall, true, `took ${took} ms of ${wall}`);
});

test('an operation failing with a plain Error ends with its message only', async () => {
  const { ctx, heard } = setup();
  await assert.rejects(
    withOperation(ctx, { command: 'start', vms: ['web'] }, async () => {
      throw new Error('boom');
    }),
    { message: 'boom' },
  );
  const end = heard.at(-1)!;
  assert.deepEqual(end.type === 'operation.end' && end.error, { message: 'boom' });
});

test('a log removed by someone else while the old ones are pruned is no error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-oplog-'));
  const names = Array.from({ length: 4 }, (_, i) => `m${i}-x.ndjson`);
  for (const n of names) writeFileSync(join(dir, n), '');
  await afterLooking(
    'readdir',
    dir,
    () => rm(join(dir, names[0]!)),
    () => pruneEventLogs(dir, 1),
  );
  assert.deepEqual(readdirSync(dir), [names[3]]);
});
