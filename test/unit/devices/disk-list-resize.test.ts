// `vms disk list` and `vms disk resize` against a fake virsh and qemu-img.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { listDisks, resizeDisk } from '../../../src/core/devices/disk.js';
import type { Progress } from '../../../src/core/progress.js';
import { FakeRunner } from '../../helpers/fake-runner.js';
import {
  BOOT,
  CDROM,
  diskContext,
  diskElement,
  domain,
  load,
  qemuImgInfo,
  recordingProgress,
  virsh,
  failure,
  facts,
} from '../../helpers/disk-fake.js';

const images = mkdtempSync(join(tmpdir(), 'vms-unit-disk-list-'));
after(() => rmSync(images, { recursive: true, force: true }));
const context = (runner: FakeRunner, progress?: Progress) => diskContext(images, runner, progress);
const GiB = 2 ** 30;

test('list: the saved disks in their order, then those only the running VM has, with what qemu-img says of them', async () => {
  const NO_FORMAT = diskElement('vdb', '/img/plain.img', { format: '' });
  const EMPTY_CDROM = `<disk type='file' device='cdrom'><target dev='sdc' bus='sata'/><readonly/></disk>`;
  const HOT = diskElement('vdc', '/img/hot.qcow2');
  const fake = new FakeRunner([
    ...load(domain(BOOT + CDROM + NO_FORMAT + EMPTY_CDROM), 'running', domain(BOOT + HOT + EMPTY_CDROM)),
    qemuImgInfo('/img/u.qcow2', {
      format: 'qcow2',
      'virtual-size': 10 * GiB,
      'actual-size': 2 ** 20,
      'full-backing-filename': '/img/base.qcow2',
      'backing-filename': 'base.qcow2',
    }),
    { ...qemuImgInfo('/iso/x.iso', {}), result: { exitCode: 1, stderr: 'qemu-img: Could not open' } },
    qemuImgInfo('/img/plain.img', {
      format: 'raw',
      'virtual-size': GiB,
      'actual-size': 4096,
      'backing-filename': 'b.img',
    }),
    qemuImgInfo('/img/hot.qcow2', { format: 'qcow2', 'virtual-size': 2 * GiB, 'actual-size': 8192 }),
  ]);
  const rows = await listDisks(context(fake), 'u');
  fake.done();
  const row = (target: string, bus: string, device: string, rest: object) => ({
    target,
    bus,
    device,
    path: undefined,
    format: undefined,
    virtualSize: undefined,
    actualSize: undefined,
    readonly: false,
    backing: undefined,
    inConfig: true,
    live: false,
    ...rest,
  });
  assert.deepEqual(rows, [
    row('vda', 'virtio', 'disk', {
      path: '/img/u.qcow2',
      format: 'qcow2',
      virtualSize: 10 * GiB,
      actualSize: 2 ** 20,
      backing: '/img/base.qcow2',
      live: true,
    }),
    row('sda', 'sata', 'cdrom', { path: '/iso/x.iso', format: 'raw', readonly: true }),
    row('vdb', 'virtio', 'disk', {
      path: '/img/plain.img',
      format: 'raw',
      virtualSize: GiB,
      actualSize: 4096,
      backing: 'b.img',
    }),
    row('sdc', 'sata', 'cdrom', { readonly: true, live: true }),
    row('vdc', 'virtio', 'disk', {
      path: '/img/hot.qcow2',
      format: 'qcow2',
      virtualSize: 2 * GiB,
      actualSize: 8192,
      inConfig: false,
      live: true,
    }),
  ]);
});

test('list of a shut-off VM: its saved disks, none said to be live or not', async () => {
  const fake = new FakeRunner([
    ...load(domain(BOOT), 'shut off'),
    { ...qemuImgInfo('/img/u.qcow2', {}), result: { exitCode: 1, stderr: 'qemu-img: Could not open' } },
  ]);
  const rows = await listDisks(context(fake), 'u');
  fake.done();
  assert.deepEqual(
    rows.map((r) => [r.target, r.format, r.inConfig, r.live]),
    [['vda', 'qcow2', true, undefined]],
  );
});

describe('resize', () => {
  test('a read-only disk, a block device and an empty drive are refused, saying which disks can grow', async () => {
    const ro = diskElement('vdb', '/img/ro.img', { format: 'raw', readonly: true });
    const block = `<disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='/dev/sdz'/><target dev='vdc' bus='virtio'/></disk>`;
    const empty = `<disk type='file' device='disk'><target dev='vdd' bus='virtio'/></disk>`;
    const xml = domain(BOOT + ro + block + empty);
    const refused = async (disk: string) => {
      const fake = new FakeRunner(load(xml, 'shut off'));
      const err = await failure(resizeDisk(context(fake), { name: 'u', disk, size: 2 * GiB }), fake);
      return facts(err);
    };
    assert.deepEqual(await refused('vdb'), {
      code: 'conflict',
      message: 'vdb of u is read-only',
      hint: 'vms grows only writable disks',
      reason: undefined,
    });
    for (const target of ['vdc', 'vdd'])
      assert.deepEqual(await refused(target), {
        code: 'usage',
        message: `${target} of u is not a disk image file`,
        hint: 'vms grows only file-backed disks',
        reason: undefined,
      });
  });

  test('shrinking is refused with why', async () => {
    const fake = new FakeRunner([
      ...load(domain(BOOT), 'shut off'),
      qemuImgInfo('/img/u.qcow2', { format: 'qcow2', 'virtual-size': 2 * GiB }),
    ]);
    const err = await failure(resizeDisk(context(fake), { name: 'u', disk: 'vda', size: GiB }), fake);
    assert.deepEqual(facts(err), {
      code: 'usage',
      message: 'vda of u is 2G: vms does not shrink disks (asked for 1G)',
      hint: 'shrinking would cut off whatever the guest keeps at the end of the disk: give a size above the current one',
      reason: undefined,
    });
  });

  test('a disk of the running VM grows live (virsh blockresize), in a named step', async () => {
    const xml = domain(BOOT + diskElement('vdb', '/img/d.qcow2'));
    const rec = recordingProgress();
    const fake = new FakeRunner([
      ...load(xml, 'running', xml),
      qemuImgInfo('/img/d.qcow2', { format: 'qcow2', 'virtual-size': GiB }),
      virsh(['blockresize', 'u', 'vdb', `${2 * GiB}B`]),
    ]);
    const r = await resizeDisk(context(fake, rec.progress), { name: 'u', disk: '/img/d.qcow2', size: 2 * GiB });
    fake.done();
    assert.deepEqual(r, {
      name: 'u',
      target: 'vdb',
      path: '/img/d.qcow2',
      from: GiB,
      to: 2 * GiB,
      live: true,
      changed: true,
    });
    assert.deepEqual(rec.steps, ['Growing vdb of u to 2G']);
  });

  test('a shut-off disk without a stated format grows as raw (never probed)', async () => {
    const xml = domain(BOOT + diskElement('vdb', '/img/plain.img', { format: '' }));
    const fake = new FakeRunner([
      ...load(xml, 'shut off'),
      qemuImgInfo('/img/plain.img', { format: 'raw', 'virtual-size': GiB }),
      { cmd: 'qemu-img', args: ['resize', '-q', '-f', 'raw', '/img/plain.img', String(2 * GiB)] },
    ]);
    assert.equal((await resizeDisk(context(fake), { name: 'u', disk: 'vdb', size: 2 * GiB })).changed, true);
    fake.done();
  });
});
