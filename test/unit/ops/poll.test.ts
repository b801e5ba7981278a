import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VmsError } from '../../../src/errors.js';
import { pollUntil } from '../../../src/core/ops/poll.js';

/** A condition that turns true on the nth question, counting the questions asked. */
function nthTime(n: number) {
  const asked = { count: 0 };
  return { asked, done: async () => ++asked.count >= n };
}

test('pollUntil: true as soon as the condition holds, on the first question without any wait', async () => {
  const { asked, done } = nthTime(1);
  const started = Date.now();
  assert.equal(await pollUntil(done, { timeoutMs: 10_000, intervalMs: 5_000 }), true);
  assert.equal(asked.count, 1);
  assert.ok(Date.now() - started < 1_000, 'no sleep before or after a first yes');
});

test('pollUntil: asks again every interval and is true on the nth question', async () => {
  const { asked, done } = nthTime(4);
  const started = Date.now();
  assert.equal(await pollUntil(done, { timeoutMs: 10_000, intervalMs: 20 }), true);
  assert.equal(asked.count, 4);
  assert.ok(Date.now() - started >= 3 * 20 - 5, 'three intervals between four questions');
});

test('pollUntil: on timeout false without a timeout error; the last question is asked at the deadline, not after', async () => {
  const { asked, done } = nthTime(Infinity);
  const started = Date.now();
  assert.equal(await pollUntil(done, { timeoutMs: 2_000, intervalMs: 1_500 }), false);
  const took = Date.now() - started;
  // Asked at 0, 1.5 and 2 s: a loop that slept whole intervals would ask again only at 3 s. (Seconds, not
  // milliseconds: a loaded machine's timers run late by tens of milliseconds.)
  assert.ok(took >= 2_000 && took < 2_800, `stopped at the deadline (${took} ms)`);
  assert.equal(asked.count, 3);
});

test("pollUntil: on timeout the caller's typed error is thrown, built only then", async () => {
  let built = 0;
  const timeoutError = () => {
    built++;
    return new VmsError('timeout', 'the guest has not let go of vdb within 0.05s', 'it goes at the next stop');
  };
  assert.equal(await pollUntil(nthTime(2).done, { timeoutMs: 1_000, intervalMs: 5, timeoutError }), true);
  assert.equal(built, 0);
  await assert.rejects(
    pollUntil(nthTime(Infinity).done, { timeoutMs: 50, intervalMs: 5, timeoutError }),
    (e: unknown) => e instanceof VmsError && e.code === 'timeout' && /vdb within 0\.05s/.test(e.message),
  );
  assert.equal(built, 1);
});

test('pollUntil: an abort stops the wait at once (an AbortError, which isInterrupt knows), and nothing more is asked', async () => {
  const controller = new AbortController();
  const { asked, done } = nthTime(Infinity);
  const started = Date.now();
  setTimeout(() => controller.abort(), 30);
  await assert.rejects(pollUntil(done, { timeoutMs: 60_000, intervalMs: 10_000, signal: controller.signal }), {
    name: 'AbortError',
  });
  assert.ok(Date.now() - started < 1_000, 'did not sleep out the interval');
  assert.equal(asked.count, 1);
});

test('pollUntil: a failing question fails the wait with its own error', async () => {
  const boom = new Error('virsh: domain not found');
  await assert.rejects(
    pollUntil(
      async () => {
        throw boom;
      },
      { timeoutMs: 1_000, intervalMs: 5 },
    ),
    (e) => e === boom,
  );
});
