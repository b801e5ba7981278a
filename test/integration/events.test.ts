import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { StampedEvent } from '../../src/core/events.js';
import { GUEST, testbed } from '../helpers/testbed.js';

// --events FILE and the per-operation logs in a VM's directory, on real commands.

const bed = testbed('events');
after(() => bed.cleanup());

const read = (file: string): StampedEvent[] =>
  readFileSync(file, 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));

/** Every step.start has exactly one step.end after it, same id and title; returns the steps as "title ok". */
function pairedSteps(events: StampedEvent[]): string[] {
  const open = new Map<number, StampedEvent & { type: 'step.start' }>();
  const done: string[] = [];
  for (const e of events) {
    if (e.type === 'step.start') {
      assert.ok(!open.has(e.id), `step id ${e.id} started twice`);
      open.set(e.id, e);
    } else if (e.type === 'step.end') {
      const start = open.get(e.id);
      assert.ok(start, `step.end ${e.id} without a start`);
      assert.equal(e.title, start.title);
      assert.equal(e.vm, start.vm);
      assert.equal(typeof e.durationMs, 'number');
      open.delete(e.id);
      done.push(`${e.title} ${e.ok ? 'ok' : 'failed'}`);
    }
  }
  assert.deepEqual([...open.keys()], [], 'every step ended');
  return done;
}

test('--events on create and start: paired steps naming the VM, an operation id each, a log per VM', async () => {
  const n = bed.name('e1');
  const file = join(bed.dir, 'events.ndjson');
  const base = ['--memory', '256M', '--cpus', '1', '--disk', '64M', '--network', 'none', '--no-graphics'];
  const boot = ['--kernel', GUEST.kernel, '--initrd', GUEST.initrd, '--cmdline', 'console=ttyS0'];
  const created = await bed.vms(['--events', file, 'create', n, '--bare', '--json', ...base, ...boot]);
  assert.equal(created.code, 0, created.stderr);
  assert.equal(created.stderr, '', '--json still prints no progress');
  const started = await bed.vms(['start', n, '--events', file]);
  assert.equal(started.code, 0, started.stderr);
  assert.equal(started.stderr, `==> Starting ${n}\n`, 'the plain lines are unchanged by --events');

  const events = read(file);
  const ops = [...new Set(events.map((e) => e.operation))];
  assert.equal(ops.length, 2, 'one operation id per command');
  for (const e of events) assert.ok(!Number.isNaN(Date.parse(e.time)), `a timestamp: ${e.time}`);
  const [create, start] = ops.map((op) => events.filter((e) => e.operation === op));
  assert.deepEqual(pairedSteps(create!), [
    'Checking input ok',
    `Creating ${join(bed.env.VMS_STATE_DIR!, n)} ok`,
    `Creating disk ${created.json.disks[0].path} ok`,
    `Defining domain ${n} ok`,
  ]);
  assert.deepEqual(pairedSteps(start!), [`Starting ${n} ok`]);
  // create checks its input before it locks anything: that step comes before the operation and names no VM.
  const opStart = (events: StampedEvent[]) => events.findIndex((e) => e.type === 'operation.start');
  assert.deepEqual(
    create!.slice(0, opStart(create!)).map((e) => [e.type, 'vm' in e]),
    [
      ['step.start', false],
      ['step.end', false],
    ],
  );
  assert.equal(opStart(start!), 0);
  for (const [events, command] of [
    [create!, 'create'],
    [start!, 'start'],
  ] as const) {
    const inOperation = events.slice(opStart(events));
    assert.deepEqual(inOperation.at(0), { ...inOperation.at(0), type: 'operation.start', command, vms: [n] });
    assert.deepEqual(events.at(-1), { ...events.at(-1), type: 'operation.end', command, vms: [n], ok: true });
    for (const e of inOperation)
      if (e.type === 'step.start' || e.type === 'step.end') assert.equal(e.vm, n, `${e.title} names the VM`);
  }

  // Each operation's log in the VM's own directory: its events from operation.start on (no console here).
  const logs = join(bed.env.VMS_STATE_DIR!, n, 'events');
  assert.deepEqual(readdirSync(logs).sort(), ops.map((op) => `${op}.ndjson`).sort());
  for (const [op, events] of [
    [ops[0]!, create!],
    [ops[1]!, start!],
  ] as const) {
    assert.deepEqual(read(join(logs, `${op}.ndjson`)), events.slice(opStart(events)));
  }
});

test('a failed operation ends with its code, keeps no log; destroy takes the VM directory with its logs', async () => {
  const n = bed.name('e2');
  await bed.createTiny(n);
  const file = join(bed.dir, 'failed.ndjson');
  const r = await bed.refused(['--events', file, 'disk', 'resize', n, 'vdz', '1G']);
  assert.equal(r.code, 3, r.stderr);
  const end = read(file).at(-1)!;
  assert.equal(end.type, 'operation.end');
  assert.equal(end.ok, false);
  assert.equal((end.error as { code: string }).code, 'notFound');
  assert.match((end.error as { message: string }).message, /vdz/);
  const dir = join(bed.env.VMS_STATE_DIR!, n);
  assert.equal(
    readdirSync(join(dir, 'events')).length,
    1,
    'the create; the failed resize left nothing behind, no log either',
  );
  const d = await bed.vms(['destroy', n, '--yes', '--json']);
  assert.equal(d.code, 0, d.stderr);
  assert.equal(existsSync(dir), false, 'the directory and its events/ are gone');
});
