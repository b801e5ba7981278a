import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { loadVmDevices } from '../../../src/core/devices/vm-devices.js';
import type { UndoAction } from '../../../src/core/ops/undo-actions.js';
import { UndoStack } from '../../../src/core/ops/undo.js';
import { redefineMetadata } from '../../../src/core/vm/vm-metadata.js';
import { ownDisks, redefine, requireDrivable, type LoadedVm } from '../../../src/core/vm/vm.js';
import { VmsError } from '../../../src/errors.js';
import { withMetadata } from '../../../src/libvirt/domain-edit.js';
import { domainFacts, parseDomainXml, readMetadata, type XmlNode } from '../../../src/libvirt/domain-parse.js';
import type { Expected } from '../../helpers/fake-runner.js';
import { fakeContext, URI, virshCall } from '../../helpers/virsh-fake.js';

const domain = (devices: string, name = 'u') =>
  `<domain type='qemu'><name>${name}</name><memory unit='MiB'>256</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>${devices}</devices></domain>`;
const nic = (mac: string) => `<interface type='user'><mac address='${mac}'/><model type='virtio'/></interface>`;
const A = '52:54:00:00:00:0a';
const B = '52:54:00:00:00:0b';
const C = '52:54:00:00:00:0c';

const saved = (xml: string, vm = 'u') => virshCall(['dumpxml', vm, '--inactive', '--security-info'], xml);
/** `virsh define FILE`, the file's content checked; `also` runs at the moment of the call. */
const defined = (check: (text: string) => boolean, also?: () => void): Expected => ({
  cmd: 'virsh',
  args: (a) => {
    also?.();
    return a[0] === '-c' && a[1] === URI && a[2] === 'define' && check(readFileSync(a[3]!, 'utf8'));
  },
});
const loaded = async (xml: string, state: string): Promise<LoadedVm> => {
  const parsed = await parseDomainXml(xml);
  return { facts: domainFacts(parsed), state, domain: parsed };
};
const readNicMacs = (d: XmlNode): string[] =>
  (d.devices?.[0]?.interface ?? []).map((i: XmlNode) => i.mac[0].$.address as string);

test('requireDrivable: a running or shut-off VM passes; a paused or guest-suspended one is a conflict with the reason vm.paused', async () => {
  for (const state of ['running', 'shut off', 'idle']) requireDrivable(await loaded(domain(''), state));
  for (const state of ['paused', 'pmsuspended']) {
    assert.throws(
      () => requireDrivable({ facts: { name: 'u' }, state } as LoadedVm),
      (e: unknown) =>
        e instanceof VmsError &&
        e.code === 'conflict' &&
        e.reason === 'vm.paused' &&
        e.message === `u is ${state}` &&
        e.hint === 'resume it first',
    );
  }
  assert.throws(
    () => requireDrivable({ facts: { name: 'u' }, state: 'paused' } as LoadedVm, 'shut down'),
    (e: unknown) =>
      e instanceof VmsError && e.message === 'u is paused and cannot shut down' && e.reason === 'vm.paused',
  );
});

test('redefine by name: reads the saved definition now, edits it, defines it; the restore is journaled before the define', async () => {
  const before = domain(nic(A));
  const runs: UndoAction[] = [];
  const undo = new UndoStack(async (action) => void runs.push(action));
  let registeredAtDefine: string[] = [];
  const { ctx, runner } = fakeContext([
    saved(before),
    defined(
      (t) => t.includes(B) && !t.includes(A),
      () => (registeredAtDefine = undo.remaining),
    ),
  ]);
  const edit = async (d: XmlNode) => {
    const out = structuredClone(d);
    out.devices[0].interface[0].mac[0].$.address = B;
    return out;
  };
  assert.equal(await redefine(ctx, 'u', edit, undo), true);
  runner.done();
  assert.deepEqual(registeredAtDefine, ["restore u's definition"]);
  // The undo puts back the definition as it was read (as data: a repair after a kill can run it too).
  await undo.rollback();
  assert.equal(runs.length, 1);
  const action = runs[0]!;
  assert.equal(action.kind, 'define');
  assert.ok(action.kind === 'define' && action.xml.includes(A) && !action.xml.includes(B));
});

test('redefine: an edit that changes nothing defines nothing and registers no undo', async () => {
  const undo = new UndoStack(async () => {});
  const { ctx, runner } = fakeContext([saved(domain(''))]);
  assert.equal(await redefine(ctx, 'u', () => undefined, undo), false);
  runner.done();
  assert.deepEqual(undo.remaining, []);
});

test('redefine of a loaded VM edits the definition it was loaded with: no second read; a failed define keeps the undo', async () => {
  const vm = await loaded(domain(nic(A)), 'shut off');
  const undo = new UndoStack(async () => {});
  const { ctx, runner } = fakeContext([
    { ...defined(() => true), result: { exitCode: 1, stderr: 'error: internal error: refused' } },
  ]);
  await assert.rejects(
    redefine(ctx, vm, (d) => d, undo),
    /refused/,
  );
  runner.done();
  assert.deepEqual(undo.remaining, ["restore u's definition"], 'a define that failed half-way may have taken effect');
});

test('redefineMetadata: defines only when the metadata changed, and returns it', async () => {
  const plain = domain('');
  const { ctx, runner } = fakeContext([saved(plain)]);
  assert.deepEqual(await redefineMetadata(ctx.virsh, 'u', (m) => m), { bases: [], made: [] });
  runner.done();

  const recorded = (t: string) => t.includes('/img/u-data.qcow2');
  const second = fakeContext([saved(plain), defined(recorded)]);
  const after = await redefineMetadata(second.ctx.virsh, 'u', (m) => ({
    ...m,
    made: [...m.made, '/img/u-data.qcow2'],
  }));
  second.runner.done();
  assert.deepEqual(after.made, ['/img/u-data.qcow2']);
  // Round trip: what was defined reads back as that metadata.
  assert.deepEqual(readMetadata(await withMetadata(await parseDomainXml(plain), after)).made, after.made);
});

test("loadVmDevices: a running VM's devices placed saved first, then those only the running VM has", async () => {
  const { ctx, runner } = fakeContext([
    saved(domain(nic(A) + nic(B))),
    virshCall(['domstate', 'u'], 'running\n'),
    virshCall(['dumpxml', 'u'], domain(nic(B) + nic(C))),
  ]);
  const d = await loadVmDevices(ctx, 'u', readNicMacs, (mac) => mac);
  runner.done();
  assert.equal(d.active, true);
  assert.deepEqual(
    [d.saved, d.live],
    [
      [A, B],
      [B, C],
    ],
  );
  assert.ok(d.liveDomain);
  assert.deepEqual(d.placed, [
    { device: A, inConfig: true, live: false },
    { device: B, inConfig: true, live: true },
    { device: C, inConfig: false, live: true },
  ]);
});

test('loadVmDevices: a shut-off VM has only its saved devices (the running definition is not asked for)', async () => {
  const { ctx, runner } = fakeContext([saved(domain(nic(A))), virshCall(['domstate', 'u'], 'shut off\n')]);
  const d = await loadVmDevices(ctx, 'u', readNicMacs, (mac) => mac);
  runner.done();
  assert.deepEqual([d.active, d.live, d.liveDomain], [false, undefined, undefined]);
  assert.deepEqual(d.placed, [{ device: A, inConfig: true, live: undefined }]);
});

test("ownDisks: only writable disks with a file are the VM's own: not a cdrom, a read-only disk or a disk without a source", async () => {
  const xml = `<domain type='qemu'><name>vm</name><devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/i/vm.qcow2'/><target dev='vda'/></disk>
    <disk type='file' device='cdrom'><source file='/iso/arch.iso'/><target dev='sda'/></disk>
    <disk type='file' device='disk'><source file='/i/shared.raw'/><target dev='vdb'/><readonly/></disk>
    <disk type='file' device='disk'><target dev='vdc'/></disk>
  </devices></domain>`;
  assert.deepEqual(
    ownDisks(domainFacts(await parseDomainXml(xml))).map((d) => d.target),
    ['vda'],
  );
});
