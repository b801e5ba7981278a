import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, test } from 'node:test';
import { applyProfile } from '../../../src/core/guest/apply.js';
import { VmsError } from '../../../src/errors.js';
import { renderMetadata } from '../../../src/libvirt/metadata.js';
import type { Expected } from '../../helpers/fake-runner.js';
import { GuestVm, type ScriptRun } from '../../helpers/guest-vm.js';
import { openFiles } from '../../helpers/open-files.js';
import { journalsDir, type JournalRecord } from '../../../src/core/ops/journal.js';
import { contextOn, URI, virshCall } from '../../helpers/virsh-fake.js';
import { listedLater, loadCalls, recordingProgress, vmXml } from '../../helpers/vm-fake.js';

// vms apply NAME PROFILE in process: a fake guest on the VM's console runs the profile chain. A VM found shut off is
// started for it and powered off again from inside (and powered off by the undo when a profile fails); a running one
// is left running and logged out. Refusals come before anything is started or written.

const VM = 'ap';
const PASSWORD = 'secret-pw';
const SETTINGS = "VMS_HOSTNAME='ap'\n";
const then = (state: string) => virshCall(['domstate', VM], `${state}\n`);

const guests: GuestVm[] = [];
afterEach(async () => {
  for (const g of guests.splice(0)) await g.stop();
});

/** A VM made by `vms create` (its secrets in its dir), its console played by a fake guest with root's password. */
function installedVm(runs: Record<string, ScriptRun> = {}) {
  const runner = listedLater();
  const { ctx, dir } = contextOn(runner.runner, { VMS_PROFILE_PATH: resolve('test/fixtures/profiles') });
  const vmDir = join(dir, 'state', VM);
  mkdirSync(vmDir, { recursive: true });
  writeFileSync(join(vmDir, 'root-password'), `${PASSWORD}\n`);
  writeFileSync(join(vmDir, 'settings.sh'), SETTINGS);
  const guest = new GuestVm(join(vmDir, 'serial.sock'), runs);
  guest.password = PASSWORD;
  guests.push(guest);
  const rec = recordingProgress();
  ctx.progress = rec.progress;
  /** `virsh start`: the console appears. */
  const start: Expected = {
    cmd: 'virsh',
    args: (a) => a.join(' ') === `-c ${URI} start ${VM}` && (void guest.boot(), true),
  };
  return { ctx, runner, guest, vmDir, start, expect: runner.expect, ...rec };
}

const CHAIN_STEPS = ['Copying profile scripts (tbase → tchild)', 'Applying profile tbase', 'Applying profile tchild'];

test('apply on a shut-off VM: started, logged in with its password, the chain run, powered off again', async () => {
  let journaled: string[][] = [];
  const vm = installedVm({
    'tbase.sh': {
      does: () => {
        const dir = journalsDir(vm.ctx.config.stateDir.value);
        journaled = readdirSync(dir).map((f) =>
          (JSON.parse(readFileSync(join(dir, f), 'utf8')) as JournalRecord).steps.map((s) => s.what),
        );
      },
    },
  });
  vm.expect(loadCalls(VM, 'shut off'), [vm.start, then('shut off'), then('shut off')]);
  const r = await applyProfile(vm.ctx, VM, 'tchild');
  vm.runner.done();
  assert.deepEqual(vm.steps, [
    'Starting ap',
    'Logging in on the serial console',
    ...CHAIN_STEPS,
    'Powering off ap again',
  ]);
  assert.deepEqual(vm.guest.scripts, ['tbase.sh', 'tchild.sh']);
  assert.deepEqual(
    vm.guest.typed.filter((l) => !l.startsWith('command -v bash')),
    ['poweroff'],
  );
  assert.equal(vm.guest.files.get('/root/vms/profiles/settings.sh')?.toString(), SETTINGS);
  assert.deepEqual(r, {
    name: VM,
    profile: 'tchild',
    applied: ['tbase', 'tchild'],
    state: 'shut off',
    transcript: join(vm.vmDir, 'apply.log'),
  });
  assert.match(readFileSync(r.transcript, 'utf8'), /----- vms apply ap tchild, /);
  assert.deepEqual(journaled, [['power ap off again']], 'while the profiles ran, the undo was journaled by name');
  assert.ok(!openFiles().includes(r.transcript), 'the transcript is closed');
});

test('apply on a running VM: not started, not powered off; the root shell is left (exit)', async () => {
  const vm = installedVm();
  await vm.guest.boot();
  vm.expect(loadCalls(VM, 'running'), [then('running')]);
  const r = await applyProfile(vm.ctx, VM, 'tchild');
  vm.runner.done();
  assert.deepEqual(vm.steps, ['Logging in on the serial console', ...CHAIN_STEPS]);
  assert.deepEqual(
    vm.guest.typed.filter((l) => !l.startsWith('command -v bash')),
    ['exit'],
  );
  assert.equal(r.state, 'running');
  await vm.guest.allClosed();
});

test('a profile fails on a VM found shut off: the undo powers it off again; the error is the script’s', async () => {
  const vm = installedVm({ 'tchild.sh': { output: 'no\r\n', status: 4 } });
  const powerOff = [virshCall(['domuuid', VM], 'uuid\n'), then('running'), virshCall(['destroy', VM])];
  vm.expect(loadCalls(VM, 'shut off'), [vm.start], powerOff);
  await assert.rejects(
    applyProfile(vm.ctx, VM, 'tchild'),
    (e: unknown) =>
      e instanceof VmsError && e.message === 'profile tchild failed with exit status 4' && e.details === 'no',
  );
  vm.runner.done();
  assert.deepEqual(vm.failed, ['Applying profile tchild']);
  assert.ok(!vm.guest.typed.includes('poweroff'));
});

test('a profile fails on a running VM: nothing is undone (it stays running)', async () => {
  const vm = installedVm({ 'tbase.sh': { status: 1 } });
  await vm.guest.boot();
  vm.expect(loadCalls(VM, 'running'));
  await assert.rejects(applyProfile(vm.ctx, VM, 'tchild'), /profile tbase failed with exit status 1/);
  vm.runner.done();
  assert.deepEqual(vm.guest.scripts, ['tbase.sh'], 'the chain stops at the first failure');
  await vm.guest.allClosed(); // the console is let go after a failure too
  assert.ok(!openFiles().includes(join(vm.vmDir, 'apply.log')), 'the transcript is closed');
});

test('an unfinished create is refused with what to do, its reason and the VM named', async () => {
  const unfinished = vmXml(VM).replace(
    '<devices>',
    `<metadata>${renderMetadata({ pending: 'install', bases: [], made: [] })}</metadata><devices>`,
  );
  const vm = installedVm();
  vm.expect(loadCalls(VM, 'shut off', unfinished));
  await assert.rejects(applyProfile(vm.ctx, VM, 'tchild'), (e: unknown) => {
    assert.ok(e instanceof VmsError, String(e));
    assert.deepEqual(
      [e.code, e.message, e.hint, e.reason, e.data],
      [
        'conflict',
        'ap is an unfinished create (its install step)',
        'finish its create first',
        'apply.unfinished',
        { name: VM },
      ],
    );
    return true;
  });
  vm.runner.done();
});

test('refused before anything starts: an unfinished create, a paused VM, an unknown profile, no secrets', async () => {
  const unfinished = vmXml(VM).replace(
    '<devices>',
    `<metadata>${renderMetadata({ pending: 'profile', bases: [], made: [] })}</metadata><devices>`,
  );
  const cases: [string, Expected[], string, (e: VmsError) => boolean][] = [
    ['unfinished', loadCalls(VM, 'shut off', unfinished), 'tchild', (e) => e.reason === 'apply.unfinished'],
    ['paused', loadCalls(VM, 'paused'), 'tchild', (e) => e.reason === 'vm.paused' && e.message === 'ap is paused'],
    ['profile', loadCalls(VM, 'shut off'), 'nope', (e) => e.code === 'notFound' && /unknown profile/.test(e.message)],
  ];
  for (const [what, calls, profile, check] of cases) {
    const vm = installedVm();
    vm.expect(calls);
    await assert.rejects(applyProfile(vm.ctx, VM, profile), (e: unknown) => e instanceof VmsError && check(e), what);
    vm.runner.done();
    assert.deepEqual(vm.steps, [], what);
    assert.ok(!existsSync(join(vm.vmDir, 'apply.log')), `${what}: no transcript`);
  }
  const bare = installedVm();
  bare.expect(loadCalls(VM, 'shut off'));
  rmSync(join(bare.vmDir, 'root-password'));
  await assert.rejects(
    applyProfile(bare.ctx, VM, 'tchild'),
    (e: unknown) =>
      e instanceof VmsError && e.code === 'notFound' && /^ap has no root password or settings/.test(e.message),
  );
  bare.runner.done();
});
