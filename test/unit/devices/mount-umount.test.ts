import assert from 'node:assert/strict';
import { rejection } from '../../helpers/refusal.js';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { unmountShare } from '../../../src/core/devices/mount.js';
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
  mountVm,
  unmountCmd,
  VM,
  type GuestStep,
} from '../../helpers/mount-vm.js';

// vms umount in process: a running VM's guest (test/helpers/mount-vm.ts) unmounts the share and drops its fstab line,
// then libvirt unplugs it and the definition loses it; a failure puts back, newest first, what was taken away. A
// shut-off VM only loses it from its definition.

const hostDir = join(realpathSync(mkdtempSync(join(tmpdir(), 'vms-umount-'))), 'share');
mkdirSync(hostDir);
const T = shareTag('/mnt/s');
const OTHER = shareTag('/mnt/other');
const SHARE = { tag: T, source: hostDir, readonly: false };
const WITH_SHARE = { sharedMemory: true, shares: [SHARE] };
const umount = (vm: ReturnType<typeof mountVm>) => unmountShare(vm.ctx, VM, '/mnt/s/');

const UNMOUNTING = 'Unmounting /mnt/s in m';
const UNPLUGGING = 'Unplugging the share from m';
const LOGIN = 'Logging in on the serial console';
const roCheck = (answer: 'ro' | 'rw'): GuestStep => ({
  command: `grep -s '^${T} /mnt/s virtiofs ro[ ,]' /proc/mounts >/dev/null && echo ro || echo rw`,
  output: `${answer}\r\n`,
});
const fstabRead = (output = ''): GuestStep => ({ command: `grep -s '^${T}[[:space:]]' /etc/fstab; true`, output });
const unmounted = (answer = 'done'): GuestStep => ({
  command: `${unmountCmd(T)} && echo done || echo busy`,
  output: `umount: noise\r\n ${answer} \r\n`,
});
const LINE = fstabLineOf(T, true);
/** grep's answer: the tag's line (twice, as a hand-edited fstab may have it), padded. */
const FSTAB_LINES = ` ${LINE} \r\n${T} /mnt/s virtiofs defaults 0 0\r\n`;

test('umount on a running VM: unmounted, fstab line dropped, unplugged, gone from the definition with its record', async () => {
  const vm = await bootedVm();
  const detached: string[] = [];
  const defined: string[] = [];
  vm.expect(vm.loads({ ...WITH_SHARE, kept: [OTHER, T] }, 'running', WITH_SHARE), [
    deviceCall('detach-device', detached),
    defineCall(defined),
  ]);
  vm.guest.expect(roCheck('ro'), fstabRead(FSTAB_LINES), unmounted(), { command: fstabCmd(T) });
  const r = await umount(vm);
  await vm.done();
  assert.deepEqual(r, { name: VM, guestDir: '/mnt/s', tag: T, guest: true });
  assert.deepEqual(vm.steps, [LOGIN, UNMOUNTING, UNPLUGGING]);
  assert.deepEqual(detached, [filesystemDevice(SHARE)]);
  assert.deepEqual(await definitionOf(defined[0]!), { shares: [], sharedMemory: true, kept: [OTHER], metadata: true });
  assert.deepEqual(vm.log.slice(-3), [`guest ${fstabCmd(T)}`, 'virsh detach-device', 'virsh define']);
  assert.match(readFileSync(join(vm.vmDir, 'apply.log'), 'utf8'), /----- vms umount m \/mnt\/s, /);
});

test('a share only plugged in (not defined) is only unplugged; one only defined is not unplugged; no fstab line, no edit', async () => {
  const live = await bootedVm();
  live.expect(live.loads({ sharedMemory: true }, 'running', WITH_SHARE), [deviceCall('detach-device', [])]);
  live.guest.expect(roCheck('rw'), fstabRead(), unmounted());
  assert.equal((await umount(live)).guest, true);
  await live.done();
  assert.deepEqual(live.steps, [LOGIN, UNMOUNTING, UNPLUGGING]);

  const saved = await bootedVm();
  saved.expect(saved.loads(WITH_SHARE, 'running', { sharedMemory: true }), [defineCall([])]);
  saved.guest.expect(roCheck('rw'), fstabRead(), unmounted());
  assert.equal((await umount(saved)).guest, true);
  await saved.done();
  assert.deepEqual(saved.steps, [LOGIN, UNMOUNTING]);
});

test('the share is busy in the guest: a conflict that says what to do, nothing else done', async () => {
  const vm = await bootedVm();
  vm.expect(vm.loads(WITH_SHARE, 'running', WITH_SHARE));
  vm.guest.expect(roCheck('rw'), fstabRead(FSTAB_LINES), unmounted('busy'));
  await assert.rejects(
    umount(vm),
    failsWith('conflict', '/mnt/s is busy in m: cannot unmount it', {
      hint: 'stop what uses it in the guest (fuser -m) and try again',
    }),
  );
  await vm.done();
  assert.deepEqual(vm.failed, [UNMOUNTING]);
});

test('fstab cannot be rewritten: its line goes back, then the share is mounted again read-only as it was', async () => {
  const vm = await bootedVm();
  vm.expect(vm.loads(WITH_SHARE, 'running', WITH_SHARE));
  vm.guest.expect(
    roCheck('ro'),
    fstabRead(`\r\n${FSTAB_LINES}`), // the first line grep printed counts, blank lines around it aside
    unmounted(),
    { command: fstabCmd(T), status: 1 },
    { command: fstabCmd(T, LINE) },
    { command: mountCmd(T, true) },
  );
  await assert.rejects(
    umount(vm),
    failsWith('failed', 'removing the share from /etc/fstab in the guest failed (exit status 1)'),
  );
  await vm.done();
});

test('the unplug fails: the share is plugged in again and mounted again (writable, no fstab line to restore)', async () => {
  const vm = await bootedVm();
  const attached: string[] = [];
  vm.expect(vm.loads(WITH_SHARE, 'running', WITH_SHARE), [
    deviceCall('detach-device', [], 'error: internal error: unable to execute QEMU command'),
    deviceCall('attach-device', attached),
  ]);
  vm.guest.expect(roCheck('rw'), fstabRead(), unmounted(), { command: mountCmd(T, false) });
  await assert.rejects(umount(vm), /virsh detach-device failed: internal error/);
  await vm.done();
  assert.deepEqual(vm.failed, [UNPLUGGING]);
  assert.deepEqual(attached, [filesystemDevice(SHARE)]);
});

test('the definition cannot be changed: plugged in again, fstab line back, mounted again, newest first', async () => {
  const vm = await bootedVm();
  vm.expect(vm.loads(WITH_SHARE, 'running', WITH_SHARE), [
    deviceCall('detach-device', []),
    defineCall([], 'error: operation failed: no'),
    deviceCall('attach-device', []),
  ]);
  vm.guest.expect(
    roCheck('rw'),
    fstabRead(FSTAB_LINES),
    unmounted(),
    { command: fstabCmd(T) },
    { command: fstabCmd(T, LINE) },
    { command: mountCmd(T, false) },
  );
  await assert.rejects(umount(vm), /virsh define failed/);
  await vm.done();
  assert.deepEqual(vm.log.slice(-4), [
    'virsh define',
    'virsh attach-device',
    `guest ${fstabCmd(T, LINE)}`,
    `guest ${mountCmd(T, false)}`,
  ]);
});

test('a shut-off VM: the share leaves its definition only; nothing shared there is notFound', async () => {
  const vm = mountVm();
  const defined: string[] = [];
  vm.expect(vm.loads({ ...WITH_SHARE, kept: [T] }, 'shut off'), [defineCall(defined)]);
  assert.deepEqual(await umount(vm), { name: VM, guestDir: '/mnt/s', tag: T, guest: false });
  await vm.done();
  assert.deepEqual(vm.steps, ["Removing the share from m's definition"]);
  assert.deepEqual(await definitionOf(defined[0]!), {
    shares: [],
    sharedMemory: true,
    kept: undefined,
    metadata: true,
  });

  for (const [state, live] of [
    ['shut off', undefined],
    ['running', { sharedMemory: true }],
  ] as const) {
    const none = mountVm();
    none.expect(none.loads({ sharedMemory: true }, state, live));
    await assert.rejects(
      umount(none),
      failsWith('notFound', 'nothing is shared into m at /mnt/s', {
        hint: 'the shares are the <filesystem> devices in `virsh dumpxml m`',
      }),
    );
    await none.done();
    assert.deepEqual(none.steps, []);
  }
});

test('a relative GUESTDIR is refused before libvirt is asked', async () => {
  const vm = mountVm();
  vm.expect([]);
  await assert.rejects(unmountShare(vm.ctx, VM, 'mnt/s'), /GUESTDIR 'mnt\/s' is not an absolute path/);
  await vm.done();
});

test('a rollback whose own steps fail: each is named in the error, newest first', async () => {
  const vm = await bootedVm();
  vm.expect(vm.loads(WITH_SHARE, 'running', WITH_SHARE), [
    deviceCall('detach-device', []),
    defineCall([], 'error: operation failed: no'),
    deviceCall('attach-device', [], 'error: operation failed: attach refused'),
  ]);
  vm.guest.expect(
    roCheck('ro'),
    fstabRead(FSTAB_LINES),
    unmounted(),
    { command: fstabCmd(T) },
    { command: fstabCmd(T, LINE), status: 1 },
    { command: mountCmd(T, true), status: 2 },
  );
  assert.equal(
    (await rejection(umount(vm)))[1],
    'virsh define failed: operation failed: no (and clean-up failed: ' +
      'plug the share into m again: virsh attach-device failed: operation failed: attach refused; ' +
      'put the share back into /etc/fstab: fstab (exit status 1); ' +
      'mount /mnt/s in the guest again: mount /mnt/s (exit status 2))',
  );
  await vm.done();
});

test('a command that fails in the guest before anything changed: the error says which look failed', async () => {
  const failing = (step: GuestStep): GuestStep => ({ ...step, output: 'sh: I/O error\r\n', status: 1 });
  const cases: [GuestStep[], string][] = [
    [[failing(roCheck('rw'))], 'reading /proc/mounts in the guest failed (exit status 1)'],
    [[roCheck('rw'), failing(fstabRead())], 'reading /etc/fstab in the guest failed (exit status 1)'],
    [[roCheck('rw'), fstabRead(), failing(unmounted())], 'umount /mnt/s in the guest failed (exit status 1)'],
  ];
  for (const [steps, message] of cases) {
    const vm = await bootedVm();
    vm.expect(vm.loads(WITH_SHARE, 'running', WITH_SHARE));
    vm.guest.expect(...steps);
    await assert.rejects(umount(vm), failsWith('failed', message, { details: 'sh: I/O error' }));
    await vm.done();
  }
});
