import assert from 'node:assert/strict';
import { test } from 'node:test';
import { killVm, startVm, stopVm } from '../../../src/core/vm/power.js';
import { VmsError } from '../../../src/errors.js';
import { FakeRunner, type Expected } from '../../helpers/fake-runner.js';
import { runCli } from '../../helpers/test-io.js';
import { contextOn, fakeContext, virshCall } from '../../helpers/virsh-fake.js';
import { loadCalls, PolledStateRunner, recordingProgress, virshFails } from '../../helpers/vm-fake.js';

// vms start / stop / kill: the exact virsh calls, the steps announced, the wait for a guest that powers off (or
// ignores ACPI) measured on the real clock with short timeouts, and the errors with their codes and reasons.

const VM = 'pw';
const then = (state: string) => virshCall(['domstate', VM], `${state}\n`);
const NOT_FOUND = "error: failed to get domain 'pw'\n";

/** A context on the strict runner whose steps are recorded. */
function recorded(expected: Expected[]) {
  const { ctx, runner } = fakeContext(expected);
  const rec = recordingProgress();
  ctx.progress = rec.progress;
  return { ctx, runner, ...rec };
}

/**
 * A running VM: its definition read and its ACPI shutdown answered strictly (then `after`), and its `domstate` answers
 * come from `state(ms since the shutdown)` however often they are asked ("running" before it, "shut off" once a
 * `virsh destroy` was made).
 */
function polled(state: (msSinceShutdown: number) => string, after: Expected[] = []) {
  let shutdownAt: number | undefined;
  const shutdown: Expected = {
    cmd: 'virsh',
    args: (a) => {
      shutdownAt = Date.now();
      return a.join(' ') === `-c qemu:///system shutdown ${VM}`;
    },
  };
  const strict = new FakeRunner([loadCalls(VM, 'running')[0]!, shutdown, ...after]);
  const destroyed = () => strict.calls.some((c) => c.args[2] === 'destroy');
  const runner = new PolledStateRunner(strict, VM, () =>
    destroyed() ? 'shut off' : shutdownAt === undefined ? 'running' : state(Date.now() - shutdownAt),
  );
  const { ctx } = contextOn(runner);
  const rec = recordingProgress();
  ctx.progress = rec.progress;
  return { ctx, strict, runner, ...rec };
}

test('start: virsh start NAME, then the state it reached; one step "Starting NAME"', async () => {
  const { ctx, runner, steps } = recorded([...loadCalls(VM, 'shut off'), virshCall(['start', VM]), then('running')]);
  assert.deepEqual(await startVm(ctx, VM), { name: VM, state: 'running', changed: true });
  runner.done();
  assert.deepEqual(steps, ['Starting pw']);
});

test('start: a failing virsh start fails with its classified error (no second try, no state read)', async () => {
  const { ctx, runner, failed } = recorded([
    ...loadCalls(VM, 'shut off'),
    virshFails(['start', VM], "error: Failed to start domain 'pw'\nerror: Cannot access storage file '/x.qcow2'\n"),
  ]);
  await assert.rejects(
    startVm(ctx, VM),
    (e: unknown) =>
      e instanceof VmsError &&
      e.code === 'failed' &&
      /^virsh start failed: .*Cannot access storage file/.test(e.message),
  );
  runner.done();
  assert.deepEqual(failed, ['Starting pw']);
});

test('start, stop and kill of a VM that does not exist: notFound "no VM named", reason domain.notFound', async () => {
  for (const op of [
    (ctx: ReturnType<typeof fakeContext>['ctx']) => startVm(ctx, VM),
    (ctx: ReturnType<typeof fakeContext>['ctx']) => stopVm(ctx, VM, { timeoutSeconds: 60, force: true }),
    (ctx: ReturnType<typeof fakeContext>['ctx']) => killVm(ctx, VM),
  ]) {
    const { ctx, runner } = fakeContext([virshFails(['dumpxml', VM, '--inactive', '--security-info'], NOT_FOUND)]);
    await assert.rejects(
      op(ctx),
      (e: unknown) =>
        e instanceof VmsError &&
        e.code === 'notFound' &&
        e.reason === 'domain.notFound' &&
        e.message === "no VM named 'pw'",
    );
    runner.done();
  }
});

test('kill: virsh destroy NAME at once (no ACPI, no wait); one step "Killing NAME"', async () => {
  const { ctx, runner, steps } = recorded([...loadCalls(VM, 'running'), virshCall(['destroy', VM]), then('shut off')]);
  assert.deepEqual(await killVm(ctx, VM), { name: VM, state: 'shut off', changed: true });
  runner.done();
  assert.deepEqual(steps, ['Killing pw']);
});

test('kill: a failing virsh destroy fails the command', async () => {
  const { ctx, runner } = recorded([
    ...loadCalls(VM, 'running'),
    virshFails(['destroy', VM], 'error: Failed to destroy domain pw\nerror: internal error: refused\n'),
  ]);
  await assert.rejects(
    killVm(ctx, VM),
    (e: unknown) => e instanceof VmsError && /^virsh destroy failed/.test(e.message),
  );
  runner.done();
});

test('stop: a guest that powers off after 0.6 s within --timeout 2: stopped when it is off, never killed', async () => {
  const p = polled((ms) => (ms < 600 ? 'in shutdown' : 'shut off'));
  const started = Date.now();
  const r = await stopVm(p.ctx, VM, { timeoutSeconds: 2, force: true });
  const took = Date.now() - started;
  p.strict.done();
  assert.deepEqual(r, { name: VM, state: 'shut off', changed: true });
  // Before the deadline: at it, --force would have powered the guest off, a call the strict runner refuses. No upper
  // bound on the time itself: a busy machine makes any such bound flaky (it failed once at 2 032 ms).
  assert.ok(took >= 600, `returned once the guest was off, not before: ${took} ms`);
  assert.ok(p.runner.polls >= 3, `asked while it shut down, and once more for the result: ${p.runner.polls}`);
  assert.deepEqual(p.steps, ['Shutting down pw (ACPI, up to 2s)']);
});

const ignoresAcpi = () => 'running';

test('stop: a guest ignoring ACPI fails after --timeout 1 (the whole second), not killed', async () => {
  const p = polled(ignoresAcpi);
  const started = Date.now();
  await assert.rejects(
    stopVm(p.ctx, VM, { timeoutSeconds: 1, force: false }),
    (e: unknown) =>
      e instanceof VmsError &&
      e.code === 'timeout' &&
      e.reason === 'power.stopTimeout' &&
      e.message === 'pw did not shut down within 1s' &&
      e.hint === 'the guest may ignore ACPI: wait longer, power it off when the time is up, or `vms kill` it' &&
      JSON.stringify(e.data) === '{"name":"pw"}',
  );
  const took = Date.now() - started;
  p.strict.done();
  assert.ok(took >= 1000 && took < 1900, `waited the timeout, in seconds: ${took} ms`);
  assert.ok(p.runner.polls >= 2, `asked at the start and at the deadline: ${p.runner.polls}`);
  assert.deepEqual(p.failed, [], 'the wait itself did not fail: the step ends, then the command fails');
});

test('stop --force: a guest that ignores ACPI is powered off after the timeout (virsh destroy), forced', async () => {
  const p = polled(ignoresAcpi, [virshCall(['destroy', VM])]);
  const r = await stopVm(p.ctx, VM, { timeoutSeconds: 1, force: true });
  p.strict.done();
  assert.deepEqual(r, { name: VM, state: 'shut off', changed: true, forced: true });
  assert.deepEqual(p.steps, ['Shutting down pw (ACPI, up to 1s)', 'Powering off pw']);
});

test('stop --force of a paused VM: powered off at once (no ACPI that a paused guest cannot see, no wait)', async () => {
  const { ctx, runner, steps } = recorded([...loadCalls(VM, 'paused'), virshCall(['destroy', VM]), then('shut off')]);
  const started = Date.now();
  assert.deepEqual(await stopVm(ctx, VM, { timeoutSeconds: 60, force: true }), {
    name: VM,
    state: 'shut off',
    changed: true,
    forced: true,
    wasPaused: true,
  });
  runner.done();
  assert.ok(Date.now() - started < 1000);
  assert.deepEqual(steps, ['Powering off pw']);
});

test('stop: a failing ACPI shutdown fails the command before any wait or power-off, even with --force', async () => {
  const { ctx, runner, failed } = recorded([
    ...loadCalls(VM, 'running'),
    virshFails(['shutdown', VM], 'error: Failed to shutdown domain pw\nerror: internal error: refused\n'),
  ]);
  await assert.rejects(
    stopVm(ctx, VM, { timeoutSeconds: 60, force: true }),
    (e: unknown) => e instanceof VmsError && /^virsh shutdown failed/.test(e.message),
  );
  runner.done();
  assert.deepEqual(failed, ['Shutting down pw (ACPI, up to 60s)']);
});

// ---- the command line ------------------------------------------------------------------------------------------

test('vms start / kill / stop say what they did (steps on stderr), or that it already was so (exit 0)', async () => {
  const acpi = [...loadCalls(VM, 'running'), virshCall(['shutdown', VM])];
  const cases: [string[], Expected[], string, string[]][] = [
    [
      ['start', VM],
      [...loadCalls(VM, 'shut off'), virshCall(['start', VM]), then('running')],
      'pw started',
      ['Starting pw'],
    ],
    [['start', VM], loadCalls(VM, 'running'), 'pw is already running', []],
    [
      ['kill', VM],
      [...loadCalls(VM, 'running'), virshCall(['destroy', VM]), then('shut off')],
      'pw powered off',
      ['Killing pw'],
    ],
    [['kill', VM], loadCalls(VM, 'shut off'), 'pw is already shut off', []],
    [['stop', VM], loadCalls(VM, 'shut off'), 'pw is already shut off', []],
    [['stop', VM], [...acpi, then('shut off'), then('shut off')], 'pw stopped', ['Shutting down pw (ACPI, up to 60s)']],
    [
      ['stop', VM, '--timeout', '0', '--force'],
      [...acpi, then('running'), virshCall(['destroy', VM]), then('shut off')],
      'pw stopped (forced off after the timeout)',
      ['Shutting down pw (ACPI, up to 0s)', 'Powering off pw'],
    ],
    [
      ['stop', VM, '--force'],
      [...loadCalls(VM, 'paused'), virshCall(['destroy', VM]), then('shut off')],
      'pw stopped (forced off: it was paused)',
      ['Powering off pw'],
    ],
  ];
  for (const [args, expected, said, steps] of cases) {
    const runner = new FakeRunner(expected);
    const r = await runCli(args, { runner });
    runner.done();
    const stderr = steps.map((step) => `==> ${step}\n`).join('');
    assert.deepEqual([r.exitCode, r.stdout, r.stderr], [0, `${said}\n`, stderr], args.join(' '));
  }
});

test('vms stop: a guest ignoring ACPI exits 6 with the hint in flags; a paused one exits 4 before ACPI', async () => {
  const runner = new FakeRunner([...loadCalls(VM, 'running'), virshCall(['shutdown', VM]), then('running')]);
  const r = await runCli(['stop', VM, '--timeout', '0'], { runner });
  runner.done();
  assert.deepEqual(
    [r.exitCode, r.stdout, r.stderr],
    [
      6,
      '',
      '==> Shutting down pw (ACPI, up to 0s)\nerror: pw did not shut down within 0s\n' +
        'hint: the guest may ignore ACPI: wait longer with --timeout, add --force to power it off, or `vms kill` it\n',
    ],
  );
  const paused = new FakeRunner(loadCalls(VM, 'paused'));
  const p = await runCli(['stop', VM], { runner: paused });
  paused.done();
  assert.deepEqual(
    [p.exitCode, p.stdout, p.stderr],
    [4, '', 'error: pw is paused and cannot shut down\nhint: `vms resume pw` first\n'],
  );
});

test('vms stop --timeout refuses what is not whole seconds with exit 2, before any process runs', async () => {
  for (const timeout of ['abc', '-1', '1.5']) {
    const runner = new FakeRunner([]);
    const r = await runCli(['stop', VM, '--timeout', timeout], { runner });
    runner.done();
    assert.deepEqual(
      [r.exitCode, r.stdout, r.stderr],
      [2, '', `error: invalid --timeout '${timeout}'\nhint: give whole seconds, e.g. --timeout 120\n`],
      timeout,
    );
  }
});
