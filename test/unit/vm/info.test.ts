import assert from 'node:assert/strict';
import { test } from 'node:test';
import { vmInfo } from '../../../src/core/vm/info.js';
import { renderMetadata } from '../../../src/libvirt/metadata.js';
import type { Expected } from '../../helpers/fake-runner.js';
import { fakeContext, virshCall } from '../../helpers/virsh-fake.js';
import { loadCalls, virshFails, vmXml } from '../../helpers/vm-fake.js';

// vms info: what the saved definition, the state, qemu-img and domdisplay say, put together; a disk qemu-img cannot
// read and a display that cannot be asked for leave their fields empty instead of failing the command.

const VM = 'inf';
const disk = (target: string, path: string) =>
  `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${path}'/>` +
  `<target dev='${target}' bus='virtio'/></disk>`;
const CDROM =
  `<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='/iso/arch.iso'/>` +
  `<target dev='sda' bus='sata'/><readonly/></disk>`;
const EMPTY_CDROM = `<disk type='file' device='cdrom'><target dev='sdb' bus='sata'/><readonly/></disk>`;
const METADATA = renderMetadata({
  profile: 'dev',
  created: '2026-01-02T03:04:05.000Z',
  createdFrom: 'src',
  pending: 'profile',
  bases: ['/img/src.qcow2'],
  made: ['/img/inf.qcow2'],
  notes: 'for tests',
});
const XML = vmXml(VM, { inner: disk('vda', '/img/inf.qcow2') + disk('vdb', '/img/data.qcow2') + CDROM + EMPTY_CDROM })
  .replace('<devices>', `<metadata>${METADATA}</metadata><devices>`)
  .replace('<os>', `<os><loader readonly='yes' type='pflash'>/ovmf/CODE.fd</loader><nvram>/state/inf/nvram.fd</nvram>`)
  .replace('</devices>', `<interface type='network'><source network='default'/></interface></devices>`);

const imageInfo = (path: string, answer: object) =>
  ({
    cmd: 'qemu-img',
    args: ['info', '-U', '--output=json', path],
    result: { stdout: JSON.stringify(answer) },
  }) as Expected;
const unreadable = (path: string): Expected => ({
  cmd: 'qemu-img',
  args: ['info', '-U', '--output=json', path],
  result: { exitCode: 1, stderr: `qemu-img: Could not open '${path}': Permission denied` },
});

test('info of a running VM: settings, metadata, each disk from qemu-img (cdroms not asked), the display', async () => {
  const { ctx, runner } = fakeContext([
    ...loadCalls(VM, 'running', XML),
    imageInfo('/img/inf.qcow2', {
      'virtual-size': 8 * 2 ** 30,
      'actual-size': 200 * 1024,
      'full-backing-filename': '/img/src.qcow2',
      'backing-filename': 'src.qcow2',
    }),
    imageInfo('/img/data.qcow2', { 'virtual-size': 2 ** 30, 'actual-size': 4096, 'backing-filename': 'rel.qcow2' }),
    virshCall(['domdisplay', VM], 'spice://127.0.0.1:5901\n'),
  ]);
  const info = await vmInfo(ctx, VM);
  runner.done();
  assert.deepEqual(info, {
    name: VM,
    uuid: '00000000-0000-4000-8000-00000000000a',
    state: 'running',
    profile: 'dev',
    created: '2026-01-02T03:04:05.000Z',
    createdFrom: 'src',
    pending: 'profile',
    bases: ['/img/src.qcow2'],
    notes: 'for tests',
    memory: 256 * 2 ** 20,
    cpus: 2,
    firmware: 'efi',
    nvram: '/state/inf/nvram.fd',
    disks: [
      {
        target: 'vda',
        device: 'disk',
        path: '/img/inf.qcow2',
        capacity: 8 * 2 ** 30,
        allocation: 200 * 1024,
        backing: '/img/src.qcow2', // the full name before the one written in the image
      },
      {
        target: 'vdb',
        device: 'disk',
        path: '/img/data.qcow2',
        capacity: 2 ** 30,
        allocation: 4096,
        backing: 'rel.qcow2',
      },
      { target: 'sda', device: 'cdrom', path: '/iso/arch.iso' },
      { target: 'sdb', device: 'cdrom', path: undefined },
    ],
    networks: ['network:default'],
    serialSocket: '/state/inf/serial.sock',
    serialLog: '/state/inf/serial.log',
    graphics: 'spice',
    display: 'spice://127.0.0.1:5901',
  });
});

test('info: an unreadable disk has no sizes, a failing domdisplay no display; info still answers', async () => {
  const { ctx, runner } = fakeContext([
    ...loadCalls(VM, 'running', vmXml(VM, { inner: disk('vda', '/img/gone.qcow2') })),
    unreadable('/img/gone.qcow2'),
    virshFails(['domdisplay', VM], 'error: internal error: no graphics\n'),
  ]);
  const info = await vmInfo(ctx, VM);
  runner.done();
  assert.deepEqual(info.disks, [
    {
      target: 'vda',
      device: 'disk',
      path: '/img/gone.qcow2',
      capacity: undefined,
      allocation: undefined,
      backing: undefined,
    },
  ]);
  assert.equal(info.display, undefined);
  assert.equal(info.graphics, 'spice');
});

test('info: an empty domdisplay answer is no display; a running VM without graphics is not asked for one', async () => {
  const empty = fakeContext([...loadCalls(VM, 'running'), virshCall(['domdisplay', VM], '\n')]);
  assert.equal((await vmInfo(empty.ctx, VM)).display, undefined);
  empty.runner.done();

  const headless = fakeContext(loadCalls(VM, 'running', vmXml(VM, { graphics: false })));
  const info = await vmInfo(headless.ctx, VM);
  headless.runner.done();
  assert.deepEqual([info.graphics, info.display, info.firmware, info.nvram], [undefined, undefined, 'bios', undefined]);
  assert.deepEqual([info.bases, info.profile, info.pending, info.notes], [[], undefined, undefined, undefined]);
});

test('info: a shut-off VM with graphics, or a running one without, is not asked for a display', async () => {
  const headless = fakeContext(loadCalls(VM, 'running', vmXml(VM, { graphics: false })));
  await vmInfo(headless.ctx, VM);
  assert.deepEqual(
    headless.runner.calls.filter((c) => c.args.includes('domdisplay')),
    [],
  );
  const { ctx, runner } = fakeContext(loadCalls(VM, 'shut off', vmXml(VM, { graphics: true })));
  const info = await vmInfo(ctx, VM);
  runner.done();
  assert.deepEqual([info.graphics, info.display], ['spice', undefined]);
  // info swallows a failing domdisplay, the strict runner's refusal too: the calls made are asserted themselves.
  assert.deepEqual(
    runner.calls.filter((c) => c.args.includes('domdisplay')),
    [],
  );
});
