import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { EventBus, ndjsonFileListener, type StampedEvent } from '../../src/core/events.js';
import { eventProgress } from '../../src/core/progress.js';
import { VmsError } from '../../src/errors.js';

const record = (bus: EventBus) => {
  const seen: StampedEvent[] = [];
  bus.on((e) => seen.push(e));
  return seen;
};
/** The events without their time, which changes from run to run. */
const timeless = (events: StampedEvent[]) =>
  events.map(({ time, ...rest }) => (assert.ok(!Number.isNaN(Date.parse(time))), rest));

describe('the event bus', () => {
  test('stamps each event with its time and operation, type first', () => {
    const bus = new EventBus('op-1');
    const seen = record(bus);
    bus.emit({ type: 'note', message: 'hello' });
    assert.deepEqual(Object.keys(seen[0]!), ['type', 'time', 'operation', 'message']);
    assert.deepEqual(timeless(seen), [{ type: 'note', operation: 'op-1', message: 'hello' }]);
  });

  test('a removed listener hears nothing more; a throwing one is dropped and the others still hear', () => {
    const bus = new EventBus('op');
    const seen = record(bus);
    let thrown = 0;
    bus.on(() => {
      thrown++;
      throw new Error('disk full');
    });
    const heard: string[] = [];
    const off = bus.on((e) => heard.push(e.type));
    bus.emit({ type: 'note', message: 'a' });
    off();
    bus.emit({ type: 'note', message: 'b' });
    assert.equal(seen.length, 2);
    assert.equal(thrown, 1, 'the failing listener was dropped after its first failure');
    assert.deepEqual(heard, ['note']);
  });
});

describe('eventProgress: the core calls, the events they make', () => {
  test('a step is a step.start and a step.end with one id, its VM, ok and duration; its result passes', async () => {
    const bus = new EventBus('op');
    const seen = record(bus);
    const p = eventProgress(bus, 'vm1');
    assert.equal(await p.step('Starting vm1', async () => 42), 42);
    const [start, end] = timeless(seen);
    assert.deepEqual(start, { type: 'step.start', operation: 'op', id: 1, title: 'Starting vm1', vm: 'vm1' });
    assert.equal(end!.type, 'step.end');
    assert.deepEqual(
      { ...end, durationMs: 0 },
      { type: 'step.end', operation: 'op', id: 1, title: 'Starting vm1', vm: 'vm1', ok: true, durationMs: 0 },
    );
    assert.ok(end!.type === 'step.end' && end!.durationMs >= 0);
  });

  test('a failing step ends with ok false and its error passes through', async () => {
    const bus = new EventBus('op');
    const seen = record(bus);
    await assert.rejects(
      eventProgress(bus).step('Defining x', () => Promise.reject(new Error('boom'))),
      /boom/,
    );
    assert.deepEqual(
      seen.map((e) => [e.type, 'ok' in e ? e.ok : undefined, 'vm' in e]),
      [
        ['step.start', undefined, false],
        ['step.end', false, false],
      ],
    );
  });

  test('nested steps get their own ids; notes, transfers and transcripts name the innermost running step', async () => {
    const bus = new EventBus('op');
    const seen = record(bus);
    const p = eventProgress(bus);
    p.note('before');
    await p.step('outer', async () => {
      await p.step('inner', async () => p.transcript!('login: '));
      p.transfer!({ done: 5, total: 10, text: '5/10', final: false });
    });
    p.note('after');
    const brief = seen.map((e) => {
      if (e.type === 'step.start' || e.type === 'step.end') return `${e.type} ${e.id}`;
      return `${e.type} in ${'step' in e ? e.step : '-'}`;
    });
    assert.deepEqual(brief, [
      'note in -',
      'step.start 1',
      'step.start 2',
      'transcript in 2',
      'step.end 2',
      'transfer in 1',
      'step.end 1',
      'note in -',
    ]);
    const transfer = seen.find((e) => e.type === 'transfer');
    assert.deepEqual(transfer && { ...transfer, time: 0 }, {
      type: 'transfer',
      time: 0,
      operation: 'op',
      step: 1,
      done: 5,
      total: 10,
      text: '5/10',
      final: false,
    });
  });

  test('two Progress objects on one bus (an operation scoped to its VM) share the id sequence', async () => {
    const bus = new EventBus('op');
    const seen = record(bus);
    await eventProgress(bus).step('a', async () => eventProgress(bus, 'v').step('b', async () => {}));
    assert.deepEqual(
      seen.map((e) => (e.type === 'step.start' ? `${e.id} ${e.vm ?? '-'}` : e.type)),
      ['1 -', '2 v', 'step.end', 'step.end'],
    );
  });
});

describe('the NDJSON file sink', () => {
  test('one JSON object a line, appended: two commands can share a file', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'vms-events-')), 'events.ndjson');
    for (const op of ['op-a', 'op-b']) {
      const bus = new EventBus(op);
      const sink = ndjsonFileListener(file);
      bus.on(sink);
      bus.emit({ type: 'step.start', id: 1, title: `step of ${op}`, vm: 'v' });
      bus.emit({ type: 'step.end', id: 1, title: `step of ${op}`, vm: 'v', ok: true, durationMs: 1.5 });
      sink.close();
    }
    const text = readFileSync(file, 'utf8');
    assert.ok(text.endsWith('}\n'));
    const lines = text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as StampedEvent);
    assert.deepEqual(
      timeless(lines),
      ['op-a', 'op-b'].flatMap((op) => [
        { type: 'step.start', operation: op, id: 1, title: `step of ${op}`, vm: 'v' },
        { type: 'step.end', operation: op, id: 1, title: `step of ${op}`, vm: 'v', ok: true, durationMs: 1.5 },
      ]),
    );
  });

  test('a file that cannot be written is a usage error naming it', () => {
    assert.throws(
      () => ndjsonFileListener('/nonexistent-dir/events.ndjson'),
      (err: unknown) =>
        err instanceof VmsError &&
        err.exitCode === 2 &&
        /cannot write events to \/nonexistent-dir\/events\.ndjson: ENOENT/.test(err.message),
    );
  });
});
