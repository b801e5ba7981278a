import assert from 'node:assert/strict';
import { test } from 'node:test';
import { consoleTarget } from '../../../src/core/vm/attach.js';
import { vmInfo } from '../../../src/core/vm/info.js';
import { resetVm, resumeVm, suspendVm } from '../../../src/core/vm/pause.js';
import { killVm, startVm, stopVm } from '../../../src/core/vm/power.js';
import { isActive, powerOffIfRunning, requireDrivable, waitUntilOff, type LoadedVm } from '../../../src/core/vm/vm.js';
import { VmsError } from '../../../src/errors.js';
import type { Expected } from '../../helpers/fake-runner.js';
import { FakeRunner } from '../../helpers/fake-runner.js';
import { runCli } from '../../helpers/test-io.js';
import { batchCall, fakeContext, virshCall } from '../../helpers/virsh-fake.js';
import { loadCalls } from '../../helpers/vm-fake.js';

// What vms makes of every state `virsh domstate` can print. Two questions are asked of a state: is the domain
// active (libvirt has a QEMU process for it: start is a no-op, kill and stop act, console and display are there), and
// does the guest execute (a paused or guest-suspended VM runs no instruction: it can neither be shut down by ACPI
// nor driven over its console). Every row is asserted through every command, so moving any one state into or out of
// either set fails here.

interface Row {
  state: string;
  /** The state's number in `virsh domstats --state` (virDomainState). */
  number: string;
  active: boolean;
  /** The guest executes: it can be driven over its console and shut down by ACPI. */
  executes: boolean;
  suspend: 'suspends' | 'already' | 'refused';
  resume: 'resumes' | 'already' | 'refused';
}

const ROWS: Row[] = [
  { state: 'running', number: '1', active: true, executes: true, suspend: 'suspends', resume: 'already' },
  // blocked on a resource (Xen says so; QEMU does not): active, but suspend and resume want "running" or "paused"
  { state: 'idle', number: '2', active: true, executes: true, suspend: 'refused', resume: 'refused' },
  { state: 'paused', number: '3', active: true, executes: false, suspend: 'already', resume: 'resumes' },
  { state: 'in shutdown', number: '4', active: true, executes: true, suspend: 'refused', resume: 'refused' },
  { state: 'shut off', number: '5', active: false, executes: false, suspend: 'refused', resume: 'refused' },
  // vms' domains say <on_crash>destroy</on_crash>; a crashed one is treated as off (start, not kill)
  { state: 'crashed', number: '6', active: false, executes: false, suspend: 'refused', resume: 'refused' },
  { state: 'pmsuspended', number: '7', active: true, executes: false, suspend: 'refused', resume: 'refused' },
  // a state this vms does not know (a newer libvirt): active, so nothing assumes the VM is safely off
  { state: 'unknown', number: '8', active: true, executes: true, suspend: 'refused', resume: 'refused' },
];

const VM = 'st';
const load = (state: string) => loadCalls(VM, state);
const call = (verb: string) => virshCall([verb, VM]);
const then = (state: string) => virshCall(['domstate', VM], `${state}\n`);

/** A conflict "st is not running (STATE)" / "not suspended", with or without a hint, and nothing else said. */
const conflictWith = (message: string, hint: string | undefined) => (e: unknown) =>
  e instanceof VmsError && e.code === 'conflict' && e.message === message && e.hint === hint;

type Ctx = ReturnType<typeof fakeContext>['ctx'];

async function runs<T>(expected: Expected[], fn: (ctx: Ctx) => Promise<T>) {
  const { ctx, runner } = fakeContext(expected);
  const result = await fn(ctx);
  runner.done();
  return result;
}

const notRunning = (state: string) => conflictWith(`st is not running (${state})`, 'start it with `vms start st`');

/** `fn` refuses a VM in `state` with `check`, after reading it and nothing else. */
async function refused(state: string, fn: (ctx: Ctx) => Promise<unknown>, check: (e: unknown) => boolean) {
  const { ctx, runner } = fakeContext(load(state));
  await assert.rejects(fn(ctx), check);
  runner.done();
}

for (const row of ROWS) {
  const { state } = row;

  const drivable = row.executes || !row.active;
  test(`${state}: isActive ${row.active}; requireDrivable ${drivable ? 'passes' : 'refuses'}`, () => {
    assert.equal(isActive(state), row.active);
    const vm = { facts: { name: VM }, state } as LoadedVm;
    const paused = row.active && !row.executes;
    if (!paused) requireDrivable(vm, 'shut down');
    else
      assert.throws(
        () => requireDrivable(vm, 'shut down'),
        (e: unknown) =>
          e instanceof VmsError &&
          e.code === 'conflict' &&
          e.reason === 'vm.paused' &&
          e.message === `${VM} is ${state} and cannot shut down`,
      );
  });

  test(`${state}: waitUntilOff with no time left asks once and says ${!row.active}`, async () => {
    assert.equal(await runs([then(state)], (ctx) => waitUntilOff(ctx, VM, 0)), !row.active);
  });

  test(`${state}: the power-off undo ${row.active ? 'runs virsh destroy' : 'leaves it (already off)'}`, async () => {
    const destroy = row.active ? [call('destroy')] : [];
    await runs([virshCall(['domuuid', VM], 'uuid\n'), then(state), ...destroy], (ctx) =>
      powerOffIfRunning(ctx.virsh, VM)(),
    );
  });

  test(`${state}: start ${row.active ? 'leaves it (already running)' : 'runs virsh start'}`, async () => {
    const expected = row.active ? load(state) : [...load(state), call('start'), then('running')];
    const r = await runs(expected, (ctx) => startVm(ctx, VM));
    assert.deepEqual(
      r,
      row.active ? { name: VM, state, changed: false } : { name: VM, state: 'running', changed: true },
    );
  });

  test(`${state}: kill ${row.active ? 'runs virsh destroy' : 'leaves it (already off)'}`, async () => {
    const expected = row.active ? [...load(state), call('destroy'), then('shut off')] : load(state);
    const r = await runs(expected, (ctx) => killVm(ctx, VM));
    assert.deepEqual(
      r,
      row.active ? { name: VM, state: 'shut off', changed: true } : { name: VM, state, changed: false },
    );
  });

  const stops = !row.active ? 'leaves it' : row.executes ? 'sends ACPI' : 'is refused: no ACPI reaches a paused guest';
  test(`${state}: stop ${stops}`, async () => {
    const opts = { timeoutSeconds: 0, force: false };
    if (!row.active) {
      assert.deepEqual(await runs(load(state), (ctx) => stopVm(ctx, VM, opts)), { name: VM, state, changed: false });
    } else if (row.executes) {
      const expected = [...load(state), call('shutdown'), then('shut off'), then('shut off')];
      const r = await runs(expected, (ctx) => stopVm(ctx, VM, opts));
      assert.deepEqual(r, { name: VM, state: 'shut off', changed: true });
    } else {
      await refused(
        state,
        (ctx) => stopVm(ctx, VM, opts),
        (e) => e instanceof VmsError && e.reason === 'vm.paused' && e.message === `st is ${state} and cannot shut down`,
      );
    }
  });

  test(`${state}: reset ${row.active ? 'runs virsh reset' : 'is refused (not running)'}`, async () => {
    if (row.active) {
      const r = await runs([...load(state), call('reset'), then('running')], (ctx) => resetVm(ctx, VM));
      assert.deepEqual(r, { name: VM, state: 'running', changed: true });
      return;
    }
    await refused(state, (ctx) => resetVm(ctx, VM), notRunning(state));
  });

  test(`${state}: suspend ${row.suspend}`, async () => {
    if (row.suspend === 'suspends') {
      const r = await runs([...load(state), call('suspend'), then('paused')], (ctx) => suspendVm(ctx, VM));
      assert.deepEqual(r, { name: VM, state: 'paused', changed: true });
    } else if (row.suspend === 'already') {
      assert.deepEqual(await runs(load(state), (ctx) => suspendVm(ctx, VM)), { name: VM, state, changed: false });
    } else {
      await refused(state, (ctx) => suspendVm(ctx, VM), notRunning(state));
    }
  });

  test(`${state}: resume ${row.resume}`, async () => {
    if (row.resume === 'resumes') {
      const r = await runs([...load(state), call('resume'), then('running')], (ctx) => resumeVm(ctx, VM));
      assert.deepEqual(r, { name: VM, state: 'running', changed: true });
    } else if (row.resume === 'already') {
      assert.deepEqual(await runs(load(state), (ctx) => resumeVm(ctx, VM)), { name: VM, state, changed: false });
    } else {
      const hint = state === 'shut off' ? 'start it with `vms start st`' : undefined;
      await refused(state, (ctx) => resumeVm(ctx, VM), conflictWith(`st is not suspended (${state})`, hint));
    }
  });

  test(`${state}: console ${row.active ? 'attaches' : 'is refused (not running)'}`, async () => {
    if (row.active) {
      assert.deepEqual(await runs(load(state), (ctx) => consoleTarget(ctx, VM)), {
        name: VM,
        socket: '/state/st/serial.sock',
        log: '/state/st/serial.log',
      });
      return;
    }
    await refused(state, (ctx) => consoleTarget(ctx, VM), notRunning(state));
  });

  test(`${state}: info ${row.active ? 'asks for the display' : 'shows none'}; vms info prints the state`, async () => {
    const display = row.active ? [virshCall(['domdisplay', VM], 'spice://127.0.0.1:5900\n')] : [];
    const info = await runs([...load(state), ...display], (ctx) => vmInfo(ctx, VM));
    assert.equal(info.state, state);
    assert.equal(info.display, row.active ? 'spice://127.0.0.1:5900' : undefined);

    const runner = new FakeRunner([...load(state), ...display]);
    const r = await runCli(['info', VM], { runner });
    runner.done();
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^state +${state}$`, 'm'));
    assert.match(r.stdout, new RegExp(`^display +${row.active ? 'spice://127\\.0\\.0\\.1:5900' : 'spice'}$`, 'm'));
  });
}

test('vms list: the state of each domain from its domstats number, one row each (no per-VM call)', async () => {
  const names = ROWS.map((_, i) => `v${i}`);
  const stats = ROWS.map((row, i) => `Domain: 'v${i}'\n  state.state=${row.number}\n  balloon.maximum=262144\n`);
  const runner = new FakeRunner([
    virshCall(['domstats', '--raw', '--state', '--balloon', '--vcpu', '--block'], stats.join('\n')),
    batchCall(
      names.map((n) => `dumpxml ${n} --inactive --xpath "/domain/metadata/*"`),
      names.map(() => ''),
    ),
  ]);
  const r = await runCli(['list', '--json'], { runner });
  runner.done();
  assert.equal(r.exitCode, 0, r.stderr);
  const listed = JSON.parse(r.stdout) as { name: string; state: string }[];
  assert.deepEqual(
    listed.map((v) => [v.name, v.state]),
    ROWS.map((row, i) => [`v${i}`, row.state]),
  );
});

test('vms list: an unnumbered state (no state.state) is "unknown", and "no state" is 0', async () => {
  const runner = new FakeRunner([
    virshCall(
      ['domstats', '--raw', '--state', '--balloon', '--vcpu', '--block'],
      "Domain: 'a'\n\nDomain: 'b'\n  state.state=0\n",
    ),
    batchCall(
      ['a', 'b'].map((n) => `dumpxml ${n} --inactive --xpath "/domain/metadata/*"`),
      ['', ''],
    ),
  ]);
  const r = await runCli(['list'], { runner });
  runner.done();
  assert.equal(r.exitCode, 0, r.stderr);
  assert.deepEqual(
    r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => l.split(/ {2,}/).slice(0, 2)),
    [
      ['NAME', 'STATE'],
      ['a', 'unknown'],
      ['b', 'no state'],
    ],
  );
});
