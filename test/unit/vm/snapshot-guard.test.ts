import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { blockerError, fileState, internalDataBlocker, type FileState } from '../../../src/core/vm/snapshot-guard.js';
import {
  createSnapshot,
  deleteSnapshot,
  listSnapshots,
  planRevert,
  revertSnapshot,
} from '../../../src/core/vm/snapshot.js';
import { addMade, dropMade, metadataAfterRevert } from '../../../src/core/vm/vm-metadata.js';
import { VmsError } from '../../../src/errors.js';
import type { DomainFacts } from '../../../src/libvirt/domain-parse.js';
import { parseSnapshotXml, type SnapshotFacts } from '../../../src/libvirt/snapshot-xml.js';
import type { Expected } from '../../helpers/fake-runner.js';
import { batchCall, fakeContext, virshCall } from '../../helpers/virsh-fake.js';

// Internal snapshots whose file vms may not write (a base frozen by `vms clone`, an overlay put over it since), the
// files external snapshots make in metadata.made, what a revert keeps of the metadata, and an interrupted create.

const NS = 'https://github.com/vms-dev/vms/xmlns/1';
const metadataXml = (m: { bases?: string[]; made?: string[]; notes?: string }) =>
  `<metadata><vms:vm xmlns:vms="${NS}">${(m.bases ?? []).map((b) => `<vms:base>${b}</vms:base>`).join('')}` +
  `${(m.made ?? []).map((f) => `<vms:made>${f}</vms:made>`).join('')}${m.notes ? `<vms:notes>${m.notes}</vms:notes>` : ''}</vms:vm></metadata>`;

const domainXml = (disk: string, metadata = '') => `<domain type='qemu'>
  <name>vm</name>
  ${metadata}
  <memory unit='KiB'>262144</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>
  </devices>
</domain>`;

/** An internal snapshot as libvirt 9.0 writes it for a running VM: its definition then, twice. */
const internalXml = (name: string, disk: string, metadata = '') => `<domainsnapshot>
  <name>${name}</name>
  <state>running</state>
  <creationTime>1795325896</creationTime>
  <memory snapshot='internal'/>
  <disks><disk name='vda' snapshot='internal'/></disks>
  ${domainXml(disk, metadata)}
  ${domainXml(disk, metadata).replaceAll('domain', 'inactiveDomain').replace("<inactiveDomain type='qemu'>", '<inactiveDomain>')}
</domainsnapshot>`;

const externalXml = (name: string, overlay: string, memory?: string) => `<domainsnapshot>
  <name>${name}</name>
  <state>${memory ? 'running' : 'shutoff'}</state>
  <creationTime>1795325673</creationTime>
  ${memory ? `<memory snapshot='external' file='${memory}'/>` : "<memory snapshot='no'/>"}
  <disks><disk name='vda' snapshot='external' type='file'><driver type='qcow2'/><source file='${overlay}'/></disk></disks>
</domainsnapshot>`;

const facts = (disk: string | undefined, bases: string[] = []): DomainFacts =>
  ({
    name: 'vm',
    disks: disk ? [{ type: 'file', device: 'disk', target: 'vda', path: disk, readonly: false }] : [],
    metadata: { bases, made: [] },
  }) as unknown as DomainFacts;

const writable: FileState = { exists: true, writable: true };

test('parseSnapshotXml: an internal disk lies in the file it had when the snapshot was taken (from the definition then)', async () => {
  const s = await parseSnapshotXml(internalXml('snap1', '/i/vm.qcow2'));
  assert.deepEqual(s.disks, [{ target: 'vda', snapshot: 'internal', file: '/i/vm.qcow2' }]);
});

test("internalDataBlocker: only the VM's own writable top disk may be written; gone, frozen, read-only and moved are told apart", async () => {
  const snap = await parseSnapshotXml(internalXml('snap1', '/i/vm.qcow2'));
  assert.equal(
    internalDataBlocker(snap, facts('/i/vm.qcow2'), () => writable),
    undefined,
  );
  assert.deepEqual(
    internalDataBlocker(snap, facts('/i/vm.qcow2'), () => ({ exists: false, writable: false })),
    {
      target: 'vda',
      file: '/i/vm.qcow2',
      reason: 'gone',
      now: '/i/vm.qcow2',
    },
  );
  // After `vms clone`: the VM is on an overlay, the file is its frozen base.
  assert.equal(
    internalDataBlocker(snap, facts('/i/vm-2.qcow2', ['/i/vm.qcow2']), () => ({ exists: true, writable: false }))
      ?.reason,
    'frozen',
  );
  assert.equal(
    internalDataBlocker(snap, facts('/i/vm.qcow2'), () => ({ exists: true, writable: false }))?.reason,
    'readOnly',
  );
  // An external snapshot taken since: the file is under an overlay.
  assert.deepEqual(
    internalDataBlocker(snap, facts('/i/vm.ext'), () => writable),
    { target: 'vda', file: '/i/vm.qcow2', reason: 'moved', now: '/i/vm.ext' },
  );
  assert.equal(internalDataBlocker(snap, facts(undefined), () => writable)?.reason, 'moved');
  const external = await parseSnapshotXml(externalXml('e1', '/i/vm.e1'));
  assert.equal(
    internalDataBlocker(external, facts('/i/vm.qcow2'), () => ({ exists: false, writable: false })),
    undefined,
    'external ones are judged elsewhere',
  );
});

test('blockerError: exit 4, nothing changed, and the way out: copy the disk out (revert) or forget the record (delete)', () => {
  const frozen = { target: 'vda', file: "/i/it's.qcow2", reason: 'frozen' as const, now: '/i/vm-2.qcow2' };
  const revert = blockerError('vm', 'snap1', 'revert', frozen);
  assert.equal(revert.exitCode, 4);
  assert.equal(
    revert.message,
    "cannot revert snap1 of vm: snap1's data lie in /i/it's.qcow2, a read-only base vms froze for linked clones (`vms clone`), which must not change",
  );
  assert.equal(
    revert.hint,
    "nothing was changed; its disk can be copied out of that file: `qemu-img convert -l snap1 -O qcow2 '/i/it'\\''s.qcow2' NEW.qcow2`",
  );
  const del = blockerError('vm', 'snap1', 'delete', frozen);
  assert.match(
    del.hint!,
    /^nothing was changed; it goes with the base, when the last VM on it is destroyed; `virsh snapshot-delete vm snap1 --metadata` takes it off the list without touching any file$/,
  );
  const moved = blockerError('vm', 'snap1', 'revert', {
    target: 'vda',
    file: '/i/vm.qcow2',
    reason: 'moved',
    now: '/i/vm.e1',
  });
  assert.equal(
    moved.message,
    "cannot revert snap1 of vm: snap1's data lie in /i/vm.qcow2, and vm's vda is /i/vm.e1 now",
  );
  const gone = blockerError('vm', 'snap1', 'delete', { target: 'vda', file: '/i/vm.qcow2', reason: 'gone' });
  assert.equal(gone.message, 'cannot delete snap1 of vm: /i/vm.qcow2, which held it, no longer exists');
});

test('fileState: any write bit makes a file writable (a frozen base is 0444); a missing file neither exists nor is writable', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-'));
  const file = join(dir, 'disk.qcow2');
  writeFileSync(file, '');
  const states = [0o444, 0o644, 0o464, 0o446].map((m) => (chmodSync(file, m), fileState(file)));
  assert.deepEqual(states, [
    { exists: true, writable: false },
    { exists: true, writable: true },
    { exists: true, writable: true },
    { exists: true, writable: true },
  ]);
  assert.deepEqual(fileState(join(dir, 'gone')), { exists: false, writable: false });
});

test("internalDataBlocker: a disk the snapshot left out (snapshot='no', a read-only image) is not judged", () => {
  const snapshot = {
    kind: 'internal',
    disks: [
      { target: 'vda', snapshot: 'internal', file: '/i/vm.qcow2' },
      { target: 'vdb', snapshot: 'no', file: '/i/shared.raw' },
    ],
  } as SnapshotFacts;
  const state = (f: string): FileState => (f === '/i/vm.qcow2' ? writable : { exists: true, writable: false });
  assert.equal(internalDataBlocker(snapshot, facts('/i/vm.qcow2'), state), undefined);
});

test('blockerError of a delete: a read-only or moved file points to forgetting the record, not to copying the disk out', () => {
  for (const reason of ['readOnly', 'moved'] as const) {
    const err = blockerError('vm', 'snap1', 'delete', { target: 'vda', file: '/i/vm.qcow2', reason, now: '/i/vm.e1' });
    assert.equal(
      err.hint,
      'nothing was changed; `virsh snapshot-delete vm snap1 --metadata` takes it off the list without touching any file',
      reason,
    );
  }
});

test('metadata: made grows without duplicates and forgets; a revert keeps what vms knows now, pending from the definition brought back', () => {
  const m = { bases: [], made: ['/i/a'] };
  assert.deepEqual(addMade(['/i/a', '/i/b'])(m).made, ['/i/a', '/i/b']);
  assert.deepEqual(dropMade(['/i/a'])(m).made, []);
  const now = {
    profile: 'dev',
    created: 't1',
    bases: ['/i/base'],
    made: ['/i/vm.qcow2', '/i/vm-data.qcow2'],
    notes: 'mine',
  };
  const then = {
    profile: 'dev',
    created: 't1',
    pending: 'profile' as const,
    bases: [],
    made: ['/i/vm.qcow2'],
    notes: 'old',
  };
  assert.deepEqual(metadataAfterRevert(now, then), {
    profile: 'dev',
    created: 't1',
    pending: 'profile',
    bases: ['/i/base'],
    made: ['/i/vm.qcow2', '/i/vm-data.qcow2'],
    notes: 'mine',
  });
  assert.equal('pending' in metadataAfterRevert({ ...now, pending: 'install' }, { bases: [], made: [] }), false);
  // Read-only shares are devices of the definition: those of the one brought back.
  assert.deepEqual(
    metadataAfterRevert({ ...now, readonlyShares: ['new'] }, { ...then, readonlyShares: ['old'] }).readonlyShares,
    ['old'],
  );
  assert.equal('readonlyShares' in metadataAfterRevert({ ...now, readonlyShares: ['new'] }, then), false);
});

// ---- the core on a fake virsh --------------------------------------------------------------------------------------

const loadCalls = (xml: string, state: string): Expected[] => [
  virshCall(['dumpxml', 'vm', '--inactive', '--security-info'], xml),
  virshCall(['domstate', 'vm'], `${state}\n\n`),
];

/** A frozen base (0444, in metadata.bases) holding snap1, and the VM on its overlay, as `vms clone` leaves them. */
function clonedVm() {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-'));
  const base = join(dir, 'vm.qcow2');
  writeFileSync(base, 'base');
  chmodSync(base, 0o444);
  return {
    base,
    xml: domainXml(join(dir, 'vm-2.qcow2'), metadataXml({ bases: [base], made: [base] })),
    snapshot: internalXml('snap1', base),
  };
}

async function assertRefused(p: Promise<unknown>, message: RegExp) {
  await assert.rejects(
    p,
    (err: unknown) =>
      err instanceof VmsError &&
      err.exitCode === 4 &&
      message.test(err.message) &&
      /^nothing was changed/.test(err.hint ?? ''),
  );
}

test('revert and delete of an internal snapshot inside a frozen base: refused before libvirt is asked to do anything', async () => {
  const { xml, snapshot } = clonedVm();
  const revert = fakeContext([...loadCalls(xml, 'shut off'), virshCall(['snapshot-dumpxml', 'vm', 'snap1'], snapshot)]);
  await assertRefused(
    planRevert(revert.ctx, 'vm', 'snap1'),
    /^cannot revert snap1 of vm: .* a read-only base vms froze/,
  );
  revert.runner.done();
  const del = fakeContext([...loadCalls(xml, 'shut off'), virshCall(['snapshot-dumpxml', 'vm', 'snap1'], snapshot)]);
  await assertRefused(
    deleteSnapshot(del.ctx, 'vm', 'snap1'),
    /^cannot delete snap1 of vm: .* a read-only base vms froze/,
  );
  del.runner.done();
});

test('revert checks again after the question, then carries the metadata of now into the definition brought back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-'));
  const disk = join(dir, 'vm.qcow2');
  const data = join(dir, 'vm-data.qcow2');
  writeFileSync(disk, '');
  const snapshot = internalXml('s1', disk, metadataXml({ made: [disk] }));
  const now = domainXml(disk, metadataXml({ made: [disk, data], notes: 'kept' }));
  const { ctx, runner } = fakeContext([
    ...loadCalls(now, 'running'),
    virshCall(['snapshot-dumpxml', 'vm', 's1'], snapshot),
    ...loadCalls(now, 'running'),
    virshCall(['snapshot-revert', 'vm', 's1']),
    virshCall(['dumpxml', 'vm', '--inactive', '--security-info'], domainXml(disk, metadataXml({ made: [disk] }))),
    {
      cmd: 'virsh',
      args: (a) =>
        a[2] === 'define' &&
        /<vms:made>[^<]*vm\.qcow2<\/vms:made>\s*<vms:made>[^<]*vm-data\.qcow2<\/vms:made>\s*<vms:notes>kept</.test(
          readFileSync(a[3]!, 'utf8'),
        ),
    },
    virshCall(['domstate', 'vm'], 'running\n'),
  ]);
  const plan = await planRevert(ctx, 'vm', 's1');
  assert.deepEqual(await revertSnapshot(ctx, plan), { name: 'vm', snapshot: 's1', state: 'running' });
  runner.done();
});

test('revert: a clone made after the question froze the disk: refused at revert time, libvirt never asked to revert', async () => {
  const { base, xml, snapshot } = clonedVm();
  chmodSync(base, 0o644); // when the question was asked: the VM's own writable disk
  const before = domainXml(base, metadataXml({ made: [base] }));
  const { ctx, runner } = fakeContext([
    ...loadCalls(before, 'running'),
    virshCall(['snapshot-dumpxml', 'vm', 'snap1'], snapshot),
    ...loadCalls(xml, 'running'), // meanwhile `vms clone` froze it under an overlay
  ]);
  const plan = await planRevert(ctx, 'vm', 'snap1');
  chmodSync(base, 0o444);
  await assertRefused(revertSnapshot(ctx, plan), /^cannot revert snap1 of vm: .* a read-only base vms froze/);
  runner.done();
  assert.equal(readFileSync(base, 'utf8'), 'base');
});

test('list: a snapshot inside a frozen base is not revertable; an external one only where libvirt can revert it', async () => {
  const { xml, snapshot } = clonedVm();
  const { ctx, runner } = fakeContext([
    virshCall(['snapshot-list', 'vm', '--name'], 'snap1\ne1\n\n'),
    batchCall(
      ['snapshot-current vm --name', 'dumpxml vm --inactive', 'snapshot-dumpxml vm snap1', 'snapshot-dumpxml vm e1'],
      ['e1\n', xml, snapshot, externalXml('e1', '/i/vm.e1')],
    ),
    virshCall(['capabilities'], '<capabilities><guest><features><disksnapshot/></features></guest></capabilities>'),
  ]);
  const list = await listSnapshots(ctx, 'vm');
  runner.done();
  assert.deepEqual(
    list.map((s) => [s.name, s.revertable]),
    [
      ['e1', false],
      ['snap1', false],
    ],
  );
});

test('create --external: the overlay it made is recorded in metadata.made, for destroy to remove', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-'));
  const disk = join(dir, 'vm.qcow2');
  const overlay = join(dir, 'vm.e1');
  const xml = domainXml(disk, metadataXml({ made: [disk] }));
  const { ctx, runner } = fakeContext([
    ...loadCalls(xml, 'shut off'),
    virshCall(['snapshot-list', 'vm', '--name'], '\n'),
    virshCall(['snapshot-create-as', 'vm', 'e1', '--atomic', '--disk-only']),
    virshCall(['snapshot-dumpxml', 'vm', 'e1'], externalXml('e1', overlay)),
    virshCall(['dumpxml', 'vm', '--inactive', '--security-info'], domainXml(overlay, metadataXml({ made: [disk] }))),
    {
      cmd: 'virsh',
      args: (a) =>
        a[2] === 'define' &&
        readFileSync(a[3]!, 'utf8')
          .replace(/>\s+</g, '><')
          .includes(`<vms:made>${disk}</vms:made><vms:made>${overlay}</vms:made>`),
    },
    virshCall(['capabilities'], '<capabilities/>'),
    virshCall(['version', '--daemon'], 'Running against daemon: 9.0.0\n'),
  ]);
  const r = await createSnapshot(ctx, { vm: 'vm', name: 'e1', external: true });
  runner.done();
  assert.deepEqual([r.name, r.kind, r.revertable], ['e1', 'external', false]);
});

test('create interrupted while libvirt works: the snapshot it took is deleted again, and the interrupt is reported (exit 130)', async () => {
  const abort = new AbortController();
  const { ctx, runner } = fakeContext([
    ...loadCalls(domainXml('/i/vm.qcow2'), 'running'),
    virshCall(['snapshot-list', 'vm', '--name'], '\n'),
    {
      ...virshCall(['snapshot-create-as', 'vm', 's1', '--atomic']),
      args: (a) => a.join(' ') === '-c qemu:///system snapshot-create-as vm s1 --atomic' && (abort.abort(), true),
    },
    virshCall(['snapshot-list', 'vm', '--name'], 's1\n\n'),
    virshCall(['snapshot-dumpxml', 'vm', 's1'], internalXml('s1', '/i/vm.qcow2')),
    virshCall(['snapshot-delete', 'vm', 's1']),
  ]);
  await assert.rejects(
    createSnapshot({ ...ctx, signal: abort.signal }, { vm: 'vm', name: 's1', external: false }),
    (e: unknown) => e instanceof VmsError && e.exitCode === 130,
  );
  runner.done();
});

test('create --external interrupted: the running VM is merged back onto its disk, the record dropped, the definition and files restored', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-'));
  const disk = join(dir, 'vm.qcow2');
  const overlay = join(dir, 'vm.e1');
  const xml = domainXml(disk, metadataXml({ made: [disk] }));
  const abort = new AbortController();
  let memory = ''; // in the context's state dir, known once it is made
  const { ctx, runner } = fakeContext([
    ...loadCalls(xml, 'running'),
    virshCall(['snapshot-list', 'vm', '--name'], '\n'),
    {
      cmd: 'virsh',
      args: (a) =>
        a[2] === 'snapshot-create-as' &&
        a.includes(`file=${memory},snapshot=external`) &&
        (writeFileSync(overlay, ''), writeFileSync(memory, ''), abort.abort(), true),
    },
    virshCall(['snapshot-list', 'vm', '--name'], 'e1\n\n'),
    {
      cmd: 'virsh',
      args: ['-c', 'qemu:///system', 'snapshot-dumpxml', 'vm', 'e1'],
      get result() {
        return { stdout: externalXml('e1', overlay, memory) };
      },
    },
    virshCall(['domstate', 'vm'], 'running\n'),
    virshCall(['domblklist', 'vm'], ` Target   Source\n------------------\n vda      ${overlay}\n`),
    virshCall(['blockcommit', 'vm', 'vda', '--active', '--pivot', '--shallow', '--wait']),
    virshCall(['snapshot-delete', 'vm', 'e1', '--metadata']),
    {
      cmd: 'virsh',
      args: (a) => a[2] === 'define' && readFileSync(a[3]!, 'utf8').includes(`<source file="${disk}"/>`),
    },
  ]);
  memory = join(ctx.config.stateDir.value, 'vm', 'snapshot-e1.mem');
  await assert.rejects(
    createSnapshot({ ...ctx, signal: abort.signal }, { vm: 'vm', name: 'e1', external: true }),
    (e: unknown) => e instanceof VmsError && e.exitCode === 130,
  );
  runner.done();
  assert.equal(existsSync(overlay), false);
  assert.equal(existsSync(memory), false);
});

test('create --external interrupted on a shut-off VM: qemu-img merges the overlay, the old definition comes back, the overlay goes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-'));
  const disk = join(dir, 'vm.img');
  const overlay = join(dir, 'vm.e1');
  const xml = domainXml(disk, metadataXml({ made: [disk] })).replace("type='qcow2'", "type='raw'");
  const abort = new AbortController();
  const { ctx, runner } = fakeContext([
    ...loadCalls(xml, 'shut off'),
    virshCall(['snapshot-list', 'vm', '--name'], '\n'),
    {
      cmd: 'virsh',
      args: (a) =>
        a[2] === 'snapshot-create-as' && a.includes('--disk-only') && (writeFileSync(overlay, ''), abort.abort(), true),
    },
    virshCall(['snapshot-list', 'vm', '--name'], 'e1\n\n'),
    virshCall(['snapshot-dumpxml', 'vm', 'e1'], externalXml('e1', overlay)),
    virshCall(['domstate', 'vm'], 'shut off\n'),
    virshCall(['domblklist', 'vm', '--inactive'], ` Target   Source\n------------------\n vda      ${overlay}\n`),
    { cmd: 'qemu-img', args: ['commit', '-q', '-f', 'qcow2', overlay] },
    virshCall(['snapshot-delete', 'vm', 'e1', '--metadata']),
    {
      cmd: 'virsh',
      args: (a) =>
        a[2] === 'define' &&
        /<driver name="qemu" type="raw"\/>\s*<source file="[^"]*vm\.img"\/>/.test(readFileSync(a[3]!, 'utf8')),
    },
  ]);
  await assert.rejects(
    createSnapshot({ ...ctx, signal: abort.signal }, { vm: 'vm', name: 'e1', external: true }),
    (e: unknown) => e instanceof VmsError && e.exitCode === 130,
  );
  runner.done();
  assert.equal(existsSync(overlay), false);
});

test('blockerError of a revert: read-only or moved: copy the disk out; gone: forget the record; a detached disk is said so', () => {
  const copyOut =
    'nothing was changed; its disk can be copied out of that file: `qemu-img convert -l snap1 -O qcow2 /i/vm.qcow2 NEW.qcow2`';
  const forget =
    'nothing was changed; `virsh snapshot-delete vm snap1 --metadata` takes it off the list without touching any file';
  const at = { target: 'vda', file: '/i/vm.qcow2' };
  const readOnly = blockerError('vm', 'snap1', 'revert', { ...at, reason: 'readOnly', now: '/i/vm.qcow2' });
  assert.deepEqual(
    [readOnly.message, readOnly.hint],
    ["cannot revert snap1 of vm: snap1's data lie in /i/vm.qcow2, which is read-only", copyOut],
  );
  const detached = blockerError('vm', 'snap1', 'revert', { ...at, reason: 'moved' });
  assert.deepEqual(
    [detached.message, detached.hint],
    ["cannot revert snap1 of vm: snap1's data lie in /i/vm.qcow2, and vm has no vda now", copyOut],
  );
  assert.equal(blockerError('vm', 'snap1', 'revert', { ...at, reason: 'gone' }).hint, forget);
});

test('internalDataBlocker: a snapshot that is not internal is never judged, whatever its disks say', () => {
  const snapshot = { kind: 'external', disks: [{ target: 'vda', snapshot: 'internal', file: '/i/vm.qcow2' }] };
  const gone = () => ({ exists: false, writable: false });
  assert.equal(internalDataBlocker(snapshot as SnapshotFacts, facts('/i/vm.qcow2'), gone), undefined);
});
