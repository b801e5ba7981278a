import assert from 'node:assert/strict';
import { rejection } from '../../helpers/refusal.js';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { mountShare, type MountOptions } from '../../../src/core/devices/mount.js';
import { shareTag } from '../../../src/libvirt/fs-xml.js';
import {
  bootedVm,
  defineCall,
  definitionOf,
  deviceCall,
  failsWith,
  filesystemDevice,
  fstabCmd,
  fstabLineOf,
  mountCmd,
  mountOptions,
  mountVm,
  stateCommand,
  unmountCmd,
  VM,
} from '../../helpers/mount-vm.js';
import { virshCall } from '../../helpers/virsh-fake.js';

// vms mount on a running VM, in process: libvirt is the strict fake runner, the guest's console a fake guest that
// answers the shell commands vms types (test/helpers/mount-vm.ts). Each test lists every virsh call and guest
// command, in order, and the progress steps; a failure is checked to undo each step, newest first.

const hostDir = join(realpathSync(mkdtempSync(join(tmpdir(), 'vms-mount-run-'))), 'share');
mkdirSync(hostDir);
const T = shareTag('/mnt/s');
const SHARE = { tag: T, source: hostDir, readonly: false };
const RO_SHARE = { ...SHARE, readonly: true };
const READONLY_REFUSED = 'error: unsupported configuration: virtiofs does not yet support read-only mode';
const NEEDS_MEMORY = "error: unsupported configuration: 'virtiofs' requires shared memory";

const mount = (vm: ReturnType<typeof mountVm>, o: Partial<MountOptions> = {}) =>
  mountShare(vm.ctx, mountOptions(hostDir, o), () => 'virtiofsd');

const LOGIN = 'Logging in on the serial console';
const PLUG = 'Plugging the share into m';
const ADD = "Adding the share to m's definition";
const MOUNTING = `Mounting ${T} at /mnt/s`;
const result = (o: Record<string, unknown>) => ({
  name: VM,
  hostDir,
  guestDir: '/mnt/s',
  tag: T,
  readonly: false,
  readonlyOnHost: false,
  persistent: true,
  mounted: true,
  fstab: true,
  restarted: false,
  ...o,
});
const empty = { command: stateCommand(T), output: 'empty\r\n' };
const sharedVm = { sharedMemory: true };

test('a running VM with shared memory: plugged in live, defined, mounted and put into fstab', async () => {
  const vm = await bootedVm();
  const attached: string[] = [];
  const defined: string[] = [];
  vm.expect(vm.loads(sharedVm, 'running', sharedVm), [deviceCall('attach-device', attached), defineCall(defined)]);
  vm.guest.expect(empty, { command: mountCmd(T, false) }, { command: fstabCmd(T, fstabLineOf(T, false)) });
  const r = await mount(vm);
  await vm.done();
  assert.deepEqual(r, result({}));
  assert.deepEqual(vm.steps, [LOGIN, PLUG, ADD, MOUNTING]);
  assert.deepEqual(attached, [filesystemDevice(SHARE)]);
  assert.deepEqual(await definitionOf(defined[0]!), {
    shares: [SHARE],
    sharedMemory: true,
    kept: undefined,
    metadata: false,
  });
  assert.match(readFileSync(join(vm.vmDir, 'apply.log'), 'utf8'), new RegExp(`----- vms mount m ${hostDir} /mnt/s, `));
  assert.deepEqual(vm.guest.typed, ['command -v bash >/dev/null 2>&1 && exec bash --norc --noprofile --noediting']);
});

test('--readonly that libvirt makes read-only: <readonly/> plugged in and defined, kept, mounted ro', async () => {
  const vm = await bootedVm();
  const attached: string[] = [];
  const defined: string[] = [];
  vm.expect(vm.loads(sharedVm, 'running', sharedVm), [deviceCall('attach-device', attached), defineCall(defined)]);
  vm.guest.expect(empty, { command: mountCmd(T, true) }, { command: fstabCmd(T, fstabLineOf(T, true)) });
  const r = await mount(vm, { readonly: true });
  await vm.done();
  assert.deepEqual(r, result({ readonly: true, readonlyOnHost: true }));
  assert.deepEqual(attached, [filesystemDevice(RO_SHARE)]);
  assert.deepEqual(await definitionOf(defined[0]!), {
    shares: [RO_SHARE],
    sharedMemory: true,
    kept: [T],
    metadata: true,
  });
  assert.match(readFileSync(join(vm.vmDir, 'apply.log'), 'utf8'), /----- vms mount m \S+ \/mnt\/s --readonly, /);
});

test('--readonly that libvirt refuses for virtiofs: plugged in and defined writable, read-only kept and in the guest', async () => {
  const vm = await bootedVm();
  const attached: string[] = [];
  const defined: string[] = [];
  vm.expect(vm.loads(sharedVm, 'running', sharedVm), [
    deviceCall('attach-device', attached, READONLY_REFUSED),
    deviceCall('attach-device', attached),
    defineCall(defined),
  ]);
  vm.guest.expect(empty, { command: mountCmd(T, true) }, { command: fstabCmd(T, fstabLineOf(T, true)) });
  const r = await mount(vm, { readonly: true });
  await vm.done();
  assert.deepEqual(r, result({ readonly: true, readonlyOnHost: false }));
  assert.deepEqual(attached, [filesystemDevice(RO_SHARE), filesystemDevice(SHARE)]);
  assert.deepEqual(await definitionOf(defined[0]!), {
    shares: [SHARE],
    sharedMemory: true,
    kept: [T],
    metadata: true,
  });
});

test('libvirt refusing read-only for a writable share, or failing otherwise for a read-only one: no retry', async () => {
  for (const [readonly, stderr] of [
    [false, READONLY_REFUSED],
    [true, 'error: internal error: unable to execute QEMU command'],
  ] as const) {
    const vm = await bootedVm();
    vm.expect(vm.loads(sharedVm, 'running', sharedVm), [
      deviceCall('attach-device', [], stderr),
      virshCall(['dumpxml', VM], vm.xml(sharedVm)), // the undo: not plugged, nothing to unplug
    ]);
    vm.guest.expect(empty);
    await assert.rejects(
      mount(vm, { readonly, restart: true }),
      failsWith('failed', `virsh attach-device failed: ${stderr.replace(/^error: /, '')}`),
    );
    await vm.done();
    assert.deepEqual(vm.failed, [PLUG]);
  }
});

test('the mount fails in the guest: unmounted, the definition restored and the share unplugged, newest first', async () => {
  const vm = await bootedVm();
  const defined: string[] = [];
  const detached: string[] = [];
  vm.expect(vm.loads(sharedVm, 'running', sharedVm), [
    deviceCall('attach-device', []),
    defineCall(defined),
    defineCall(defined),
    virshCall(['dumpxml', VM], vm.xml({ ...sharedVm, shares: [SHARE] })),
    deviceCall('detach-device', detached),
  ]);
  vm.guest.expect(
    empty,
    { command: mountCmd(T, false), output: 'mount: /mnt/s: unknown filesystem type\r\n', status: 32 },
    { command: unmountCmd(T) },
  );
  await assert.rejects(
    mount(vm),
    failsWith('failed', `mounting ${T} at /mnt/s in the guest failed (exit status 32)`, {
      details: 'mount: /mnt/s: unknown filesystem type',
    }),
  );
  await vm.done();
  assert.deepEqual(vm.failed, [MOUNTING]);
  assert.deepEqual(vm.log.slice(-5), [
    `guest ${mountCmd(T, false)}`,
    `guest ${unmountCmd(T)}`,
    'virsh define',
    'virsh dumpxml',
    'virsh detach-device',
  ]);
  assert.deepEqual((await definitionOf(defined[1]!)).shares, [], 'the old definition is back');
  assert.deepEqual(detached, [filesystemDevice(SHARE)]);
});

test('fstab cannot be written: the share is unmounted, its definition restored and unplugged', async () => {
  const vm = await bootedVm();
  const defined: string[] = [];
  vm.expect(vm.loads(sharedVm, 'running', sharedVm), [
    deviceCall('attach-device', []),
    defineCall(defined),
    defineCall(defined),
    virshCall(['dumpxml', VM], vm.xml({ ...sharedVm, shares: [SHARE] })),
    deviceCall('detach-device', []),
  ]);
  vm.guest.expect(
    empty,
    { command: mountCmd(T, false) },
    { command: fstabCmd(T, fstabLineOf(T, false)), output: 'read-only file system\r\n', status: 1 },
    { command: unmountCmd(T) },
  );
  await assert.rejects(
    mount(vm),
    failsWith('failed', 'adding the share to /etc/fstab in the guest failed (exit status 1)'),
  );
  await vm.done();
  assert.deepEqual(vm.failed, []);
  assert.deepEqual(vm.log.slice(-4), [
    `guest ${unmountCmd(T)}`,
    'virsh define',
    'virsh dumpxml',
    'virsh detach-device',
  ]);
});

test('--temp on a running VM: plugged in and mounted only; persistent only when its definition has the share', async () => {
  for (const [saved, persistent] of [
    [sharedVm, false],
    [{ ...sharedVm, shares: [SHARE] }, true],
  ] as const) {
    const vm = await bootedVm();
    vm.expect(vm.loads(saved, 'running', sharedVm), [deviceCall('attach-device', [])]);
    vm.guest.expect(empty, { command: mountCmd(T, false) });
    const r = await mount(vm, { temp: true });
    await vm.done();
    assert.deepEqual(r, result({ persistent, fstab: false }));
    assert.deepEqual(vm.steps, [LOGIN, PLUG, MOUNTING]);
  }
});

test('looking at GUESTDIR fails in the guest: the error says so, nothing changed', async () => {
  const vm = await bootedVm();
  vm.expect(vm.loads(sharedVm, 'running', sharedVm));
  vm.guest.expect({ ...empty, output: 'sh: I/O error\r\n', status: 1 });
  await assert.rejects(
    mount(vm),
    failsWith('failed', 'looking at /mnt/s in the guest failed (exit status 1)', { details: 'sh: I/O error' }),
  );
  await vm.done();
});

test('GUESTDIR is a file in the guest: refused after looking, nothing changed', async () => {
  const vm = await bootedVm();
  vm.expect(vm.loads(sharedVm, 'running', sharedVm));
  vm.guest.expect({ command: stateCommand(T), output: 'notdir\r\n' });
  await assert.rejects(
    mount(vm, { force: true }),
    failsWith('conflict', '/mnt/s in m is not a directory', { hint: 'pick another GUESTDIR' }),
  );
  await vm.done();
  assert.deepEqual(vm.steps, [LOGIN]);
});

test('GUESTDIR has files in the guest: refused (mount.notEmpty) unless forced; the last word printed counts', async () => {
  const nonempty = { command: stateCommand(T), output: 'Welcome to the guest\r\n  nonempty  \r\n' };
  const vm = await bootedVm();
  vm.expect(vm.loads(sharedVm, 'running', sharedVm));
  vm.guest.expect(nonempty);
  await assert.rejects(
    mount(vm),
    failsWith('conflict', '/mnt/s in m is not empty: the share would hide its files', {
      hint: 'pick an empty or new directory, or mount over it anyway (the files come back after `vms umount`)',
      reason: 'mount.notEmpty',
    }),
  );
  await vm.done();
  assert.deepEqual(vm.steps, [LOGIN]);

  const forced = await bootedVm();
  forced.expect(forced.loads(sharedVm, 'running', sharedVm), [deviceCall('attach-device', []), defineCall([])]);
  forced.guest.expect(nonempty, { command: mountCmd(T, false) }, { command: fstabCmd(T, fstabLineOf(T, false)) });
  assert.deepEqual(await mount(forced, { force: true }), result({}));
  await forced.done();
});

test('a share plugged in already (say with virsh): not plugged again, only defined', async () => {
  const vm = await bootedVm();
  const defined: string[] = [];
  vm.expect(vm.loads(sharedVm, 'running', { ...sharedVm, shares: [SHARE] }), [defineCall(defined)]);
  vm.guest.expect(
    { command: stateCommand(T), output: 'mounted\r\n' },
    { command: mountCmd(T, false) },
    { command: fstabCmd(T, fstabLineOf(T, false)) },
  );
  assert.deepEqual(await mount(vm), result({}));
  await vm.done();
  assert.deepEqual(vm.steps, [LOGIN, ADD, MOUNTING]);
  assert.deepEqual((await definitionOf(defined[0]!)).shares, [SHARE]);
});

test('plugged in and defined already: --readonly only keeps it read-only; without it nothing changes in libvirt', async () => {
  const both = { ...sharedVm, shares: [SHARE] };
  const vm = await bootedVm();
  const defined: string[] = [];
  vm.expect(vm.loads(both, 'running', both), [defineCall(defined)]);
  vm.guest.expect(empty, { command: mountCmd(T, true) }, { command: fstabCmd(T, fstabLineOf(T, true)) });
  assert.deepEqual(await mount(vm, { readonly: true }), result({ readonly: true }));
  await vm.done();
  assert.deepEqual(vm.steps, [LOGIN, "Keeping the share read-only in m's definition", MOUNTING]);
  assert.deepEqual(await definitionOf(defined[0]!), { shares: [SHARE], sharedMemory: true, kept: [T], metadata: true });

  const again = await bootedVm();
  again.expect(again.loads(both, 'running', both));
  again.guest.expect(empty, { command: mountCmd(T, false) }, { command: fstabCmd(T, fstabLineOf(T, false)) });
  assert.deepEqual(await mount(again), result({}));
  await again.done();
  assert.deepEqual(again.steps, [LOGIN, MOUNTING]);
});

test('a share libvirt has read-only already: mounted read-only without --readonly', async () => {
  const both = { ...sharedVm, shares: [RO_SHARE] };
  const vm = await bootedVm();
  vm.expect(vm.loads(both, 'running', both), [defineCall([])]);
  vm.guest.expect(empty, { command: mountCmd(T, true) }, { command: fstabCmd(T, fstabLineOf(T, true)) });
  assert.deepEqual(await mount(vm), result({ readonly: true, readonlyOnHost: true }));
  await vm.done();
});

test('a running VM sharing GUESTDIR from another directory: a conflict that names it and the umount to run', async () => {
  const vm = mountVm();
  vm.expect(vm.loads(sharedVm, 'running', { ...sharedVm, shares: [{ ...SHARE, source: '/elsewhere' }] }));
  await assert.rejects(
    mount(vm),
    failsWith('conflict', '/mnt/s in m is already shared from /elsewhere', { hint: '`vms umount m /mnt/s` first' }),
  );
  await vm.done();
});

// ---- restarts for shared memory ---------------------------------------------------------------------------------

const NO_MEMORY_HINT =
  'vms can power it off, add shared memory to its definition and start it again when asked to restart it; ' +
  'nothing was changed';
/** Powering off from inside: sync, `poweroff` typed, and the VM is off at the first look. */
const powerOff = { command: 'sync' };
const offAtOnce = virshCall(['domstate', VM], 'shut off\n');

test('no shared memory and no --restart: refused before the console is opened', async () => {
  const vm = mountVm();
  vm.expect(vm.loads({}, 'running', {}));
  await assert.rejects(
    mount(vm),
    failsWith('conflict', 'm needs a restart for virtiofs: it runs without shared memory', {
      hint: NO_MEMORY_HINT,
      reason: 'mount.needsRestart',
    }),
  );
  await vm.done();
  assert.equal(existsSync(join(vm.vmDir, 'apply.log')), false);
});

test('no shared memory, --restart: powered off, defined with shared memory and the share, started, mounted', async () => {
  const vm = await bootedVm();
  const defined: string[] = [];
  vm.expect(vm.loads({}, 'running', {}), [offAtOnce, defineCall(defined), virshCall(['start', VM])]);
  vm.guest.expect(empty, powerOff, { command: mountCmd(T, false) }, { command: fstabCmd(T, fstabLineOf(T, false)) });
  const r = await mount(vm, { restart: true });
  await vm.done();
  assert.deepEqual(r, result({ restarted: true }));
  assert.deepEqual(vm.steps, [
    LOGIN,
    'Powering off m',
    "Adding shared memory and the share to m's definition",
    'Starting m',
    LOGIN,
    MOUNTING,
  ]);
  assert.deepEqual(vm.guest.typed.slice(1, 2), ['poweroff']);
  assert.deepEqual(await definitionOf(defined[0]!), {
    shares: [SHARE],
    sharedMemory: true,
    kept: undefined,
    metadata: false,
  });
});

test('no shared memory, --restart --temp: defined with shared memory only, started, then plugged in live', async () => {
  const vm = await bootedVm();
  const defined: string[] = [];
  vm.expect(vm.loads({}, 'running', {}), [
    offAtOnce,
    defineCall(defined),
    virshCall(['start', VM]),
    deviceCall('attach-device', []),
  ]);
  vm.guest.expect(empty, powerOff, { command: mountCmd(T, false) });
  const r = await mount(vm, { restart: true, temp: true });
  await vm.done();
  assert.deepEqual(r, result({ restarted: true, persistent: false, fstab: false }));
  assert.deepEqual(vm.steps, [
    LOGIN,
    'Powering off m',
    "Adding shared memory to m's definition",
    'Starting m',
    LOGIN,
    PLUG,
    MOUNTING,
  ]);
  assert.deepEqual(await definitionOf(defined[0]!), {
    shares: [],
    sharedMemory: true,
    kept: undefined,
    metadata: false,
  });
});

test('the restarted VM does not start: the undo powers it off if running, restores the definition, starts it again', async () => {
  const vm = await bootedVm();
  const defined: string[] = [];
  vm.expect(vm.loads({}, 'running', {}), [
    offAtOnce,
    defineCall(defined),
    virshCall(['start', VM], '', { exitCode: 1, stderr: 'error: internal error: qemu died' }),
    virshCall(['domuuid', VM], 'uuid\n'),
    virshCall(['domstate', VM], 'shut off\n'),
    defineCall(defined),
    virshCall(['domstate', VM], 'shut off\n'),
    virshCall(['start', VM]),
  ]);
  vm.guest.expect(empty, powerOff);
  await assert.rejects(mount(vm, { restart: true }), /qemu died/);
  await vm.done();
  assert.deepEqual(vm.failed, ['Starting m']);
  assert.deepEqual(await definitionOf(defined[1]!), {
    shares: [],
    sharedMemory: false,
    kept: undefined,
    metadata: false,
  });
});

test('the mount fails after the restart: unmounted, powered off, old definition back, started again', async () => {
  const vm = await bootedVm();
  vm.expect(vm.loads({}, 'running', {}), [
    offAtOnce,
    defineCall([]),
    virshCall(['start', VM]),
    virshCall(['domuuid', VM], 'uuid\n'),
    virshCall(['domstate', VM], 'running\n'),
    virshCall(['destroy', VM]),
    defineCall([]),
    virshCall(['domstate', VM], 'shut off\n'),
    virshCall(['start', VM]),
  ]);
  vm.guest.expect(empty, powerOff, { command: mountCmd(T, false), status: 32 }, { command: unmountCmd(T) });
  await assert.rejects(mount(vm, { restart: true }), /exit status 32/);
  await vm.done();
});

test('the guest cannot power off: the VM still runs, the undo does not start it', async () => {
  const vm = await bootedVm();
  vm.expect(vm.loads({}, 'running', {}), [virshCall(['domstate', VM], 'running\n')]);
  vm.guest.expect(empty, { command: 'sync', status: 1 });
  await assert.rejects(mount(vm, { restart: true }), failsWith('failed', 'sync in the guest (exit status 1)'));
  await vm.done();
  assert.deepEqual(vm.failed, ['Powering off m']);
});

test('libvirt will not plug virtiofs into a VM started before libvirtd restarted: refused, or restarted with --restart', async () => {
  const vm = await bootedVm();
  vm.expect(vm.loads(sharedVm, 'running', sharedVm), [
    deviceCall('attach-device', [], NEEDS_MEMORY),
    virshCall(['dumpxml', VM], vm.xml(sharedVm)),
  ]);
  vm.guest.expect(empty);
  await assert.rejects(
    mount(vm),
    failsWith(
      'conflict',
      'm needs a restart for virtiofs: libvirt refuses to plug virtiofs into it (it was started before libvirtd last restarted)',
      { hint: NO_MEMORY_HINT, reason: 'mount.needsRestart' },
    ),
  );
  await vm.done();

  const restarted = await bootedVm();
  restarted.expect(restarted.loads(sharedVm, 'running', sharedVm), [
    deviceCall('attach-device', [], NEEDS_MEMORY),
    offAtOnce,
    defineCall([]),
    virshCall(['start', VM]),
  ]);
  restarted.guest.expect(
    empty,
    powerOff,
    { command: mountCmd(T, false) },
    { command: fstabCmd(T, fstabLineOf(T, false)) },
  );
  assert.deepEqual(await mount(restarted, { restart: true }), result({ restarted: true }));
  await restarted.done();
  assert.deepEqual(restarted.steps, [
    LOGIN,
    PLUG,
    'Powering off m',
    "Adding shared memory and the share to m's definition",
    'Starting m',
    LOGIN,
    MOUNTING,
  ]);
});

// ---- the console ------------------------------------------------------------------------------------------------

test('a VM without a unix-socket console: refused before its console is opened', async () => {
  const vm = mountVm();
  const noConsole = { ...sharedVm, serial: false };
  vm.expect(vm.loads(noConsole, 'running', noConsole));
  await assert.rejects(
    mount(vm),
    failsWith('conflict', 'm has no unix-socket serial console: vms cannot reach its guest', {
      hint: 'add the share with virsh and mount it in the guest yourself',
    }),
  );
  await vm.done();
  assert.equal(existsSync(join(vm.vmDir, 'apply.log')), false);
});

test("root's password is read from the VM's directory; a wrong one fails the login and changes nothing", async () => {
  const vm = await bootedVm({ passwordFile: 'not-it\n' });
  vm.expect(vm.loads(sharedVm, 'running', sharedVm));
  await assert.rejects(mount(vm), failsWith('failed', "the guest refused root's password on the console"));
  await vm.done();
  assert.deepEqual(vm.failed, [LOGIN]);
});

// ---- undo steps that fail themselves ----------------------------------------------------------------------------

const virshFails = (args: string[], stderr: string) => virshCall(args, '', { exitCode: 1, stderr });

test('a rollback whose own steps fail: the error lists each one that failed, by what it would have undone', async () => {
  const vm = await bootedVm();
  vm.expect(vm.loads(sharedVm, 'running', sharedVm), [
    deviceCall('attach-device', []),
    defineCall([]),
    defineCall([], 'error: operation failed: define refused'),
    virshFails(['dumpxml', VM], 'error: operation failed: dumpxml refused'),
  ]);
  vm.guest.expect(empty, { command: mountCmd(T, false), status: 32 }, { command: unmountCmd(T), status: 1 });
  assert.equal(
    (await rejection(mount(vm)))[1],
    `mounting ${T} at /mnt/s in the guest failed (exit status 32) (and clean-up failed: ` +
      'unmount /mnt/s in the guest: umount /mnt/s (exit status 1); ' +
      "restore m's definition: virsh define failed: operation failed: define refused; " +
      'unplug the share from m: virsh dumpxml failed: operation failed: dumpxml refused)',
  );
  await vm.done();
});

test('a restart whose rollback fails: powering off, restoring and starting again are each named', async () => {
  const vm = await bootedVm();
  vm.expect(vm.loads({}, 'running', {}), [
    offAtOnce,
    defineCall([]),
    virshFails(['start', VM], 'error: internal error: qemu died'),
    virshFails(['domuuid', VM], 'error: internal error: uuid'),
    defineCall([], 'error: operation failed: define refused'),
    virshCall(['domstate', VM], 'shut off\n'),
    virshFails(['start', VM], 'error: internal error: qemu died again'),
  ]);
  vm.guest.expect(empty, powerOff);
  assert.equal(
    (await rejection(mount(vm, { restart: true })))[1],
    'virsh start failed: internal error: qemu died (and clean-up failed: ' +
      'power off m: virsh domuuid failed: internal error: uuid; ' +
      "restore m's definition: virsh define failed: operation failed: define refused; " +
      'start m again: virsh start failed: internal error: qemu died again)',
  );
  await vm.done();
});
