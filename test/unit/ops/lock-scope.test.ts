import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Context } from '../../../src/core/context.js';
import type { LockRequest } from '../../../src/core/ops/locks.js';
import { killVm, startVm, stopVm } from '../../../src/core/vm/power.js';
import { resetVm, resumeVm, suspendVm } from '../../../src/core/vm/pause.js';
import { destroyVm } from '../../../src/core/vm/destroy.js';
import { createSnapshot, deleteSnapshot, revertSnapshot, type RevertPlan } from '../../../src/core/vm/snapshot.js';
import { applyProfile } from '../../../src/core/guest/apply.js';
import { resumeInstall } from '../../../src/core/guest/install.js';
import { addNic, deleteNic } from '../../../src/core/devices/nic.js';
import { addSerialPort, deleteSerialPort } from '../../../src/core/devices/serial-port.js';
import { addDisk, attachDisk, detachDisk, resizeDisk } from '../../../src/core/devices/disk.js';
import { mountShare, unmountShare } from '../../../src/core/devices/mount.js';
import { fakeContext } from '../../helpers/virsh-fake.js';

// Which locks each command takes decides what may run beside it: a VM's lock keeps two commands off one VM, the host
// lock keeps destroy's "is this base still used?" and clone's freezing apart. The locks are asked for before the
// command reads or runs anything, so a context whose locks record the request and then stop it shows each one
// exactly, with no process started (the strict fake runner expects none).

const stopped = new Error('stopped at the lock');

function locking(): { ctx: Context; asked: LockRequest[]; done: () => void } {
  const { ctx, runner } = fakeContext([]);
  const asked: LockRequest[] = [];
  const locks = {
    acquire: async (req: LockRequest) => {
      asked.push(req);
      throw stopped;
    },
  };
  return { ctx: { ...ctx, locks }, asked, done: () => runner.done() };
}

const cases: [string, (ctx: Context) => Promise<unknown>, LockRequest][] = [
  ['start', (ctx) => startVm(ctx, 'a'), { vms: ['a'] }],
  ['kill', (ctx) => killVm(ctx, 'a'), { vms: ['a'] }],
  ['stop', (ctx) => stopVm(ctx, 'a', { timeoutSeconds: 1, force: false }), { vms: ['a'] }],
  ['reset', (ctx) => resetVm(ctx, 'a'), { vms: ['a'] }],
  ['suspend', (ctx) => suspendVm(ctx, 'a'), { vms: ['a'] }],
  ['resume', (ctx) => resumeVm(ctx, 'a'), { vms: ['a'] }],
  ['destroy', (ctx) => destroyVm(ctx, 'a'), { vms: ['a'], host: true }],
  ['snapshot create', (ctx) => createSnapshot(ctx, { vm: 'a' } as never), { vms: ['a'] }],
  ['snapshot revert', (ctx) => revertSnapshot(ctx, { vm: 'a' } as RevertPlan), { vms: ['a'] }],
  ['snapshot delete', (ctx) => deleteSnapshot(ctx, 'a', 's1'), { vms: ['a'] }],
  ['apply', (ctx) => applyProfile(ctx, 'a', 'minimal'), { vms: ['a'] }],
  ['create --resume', (ctx) => resumeInstall(ctx, 'a'), { vms: ['a'] }],
  ['nic add', (ctx) => addNic(ctx, 'a', { kind: 'user' } as never), { vms: ['a'] }],
  ['nic del', (ctx) => deleteNic(ctx, 'a', 'eth0'), { vms: ['a'] }],
  ['serial add', (ctx) => addSerialPort(ctx, 'a', { kind: 'pty' } as never), { vms: ['a'], host: true }],
  ['serial del', (ctx) => deleteSerialPort(ctx, 'a', '1'), { vms: ['a'] }],
  ['disk add', (ctx) => addDisk(ctx, { name: 'a', size: 1 << 30, bus: 'virtio' }), { vms: ['a'] }],
  [
    'disk attach',
    (ctx) => attachDisk(ctx, { name: 'a', path: '/x.qcow2', bus: 'virtio', readonly: false }),
    { vms: ['a'], host: true },
  ],
  ['disk detach', (ctx) => detachDisk(ctx, { name: 'a', disk: 'vdb', delete: false }), { vms: ['a'], host: true }],
  ['disk resize', (ctx) => resizeDisk(ctx, { name: 'a', disk: 'vdb', size: 2 << 30 }), { vms: ['a'] }],
  ['mount', (ctx) => mountShare(ctx, { name: 'a', hostDir: '/tmp', guestDir: '/mnt' } as never), { vms: ['a'] }],
  ['umount', (ctx) => unmountShare(ctx, 'a', '/mnt'), { vms: ['a'] }],
];

for (const [command, run, lock] of cases) {
  test(`vms ${command} locks ${lock.vms.join(', ')}${lock.host ? ' and the host' : ''} before anything else`, async () => {
    const { ctx, asked, done } = locking();
    await assert.rejects(run(ctx), (e: unknown) => e === stopped);
    done();
    assert.deepEqual(
      asked.map((r) => ({ vms: r.vms, ...(r.host ? { host: true } : {}) })),
      [lock],
    );
    assert.equal((asked[0] as LockRequest & { command?: string }).command, command);
  });
}
