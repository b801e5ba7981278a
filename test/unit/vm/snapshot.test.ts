import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import {
  createSnapshot,
  defaultSnapshotName,
  deleteSnapshot,
  listSnapshots,
  planRevert,
  takeBackSnapshot,
} from '../../../src/core/vm/snapshot.js';
import { VmsError } from '../../../src/errors.js';
import { forCommandLine } from '../../../src/cli/hints.js';
import { parseSnapshotXml, snapshotCreateArgs } from '../../../src/libvirt/snapshot-xml.js';
import type { Expected } from '../../helpers/fake-runner.js';
import { batchCall, fakeContext, virshCall } from '../../helpers/virsh-fake.js';

// ---- libvirt's snapshot XML (real `virsh snapshot-dumpxml` output of libvirt 9.0, the <domain> copies cut) ---------

const INTERNAL_RUNNING = `<domainsnapshot>
  <name>before-upgrade</name>
  <description>marker A &amp; more</description>
  <state>running</state>
  <parent>
    <name>first</name>
  </parent>
  <creationTime>1795325896</creationTime>
  <memory snapshot='internal'/>
  <disks>
    <disk name='vda' snapshot='internal'/>
  </disks>
  <domain type='qemu'><name>vm</name><devices><disk type='file' device='disk'><target dev='vda'/></disk></devices></domain>
</domainsnapshot>
`;
const INTERNAL_SHUTOFF = `<domainsnapshot>
  <name>off</name>
  <state>shutoff</state>
  <creationTime>1795325681</creationTime>
  <memory snapshot='no'/>
  <disks>
    <disk name='vda' snapshot='internal'/>
    <disk name='sda' snapshot='no'/>
  </disks>
</domainsnapshot>
`;
const externalXml = (name: string, state: string, memory: string, overlay: string) => `<domainsnapshot>
  <name>${name}</name>
  <state>${state}</state>
  <creationTime>1795325673</creationTime>
  ${memory}
  <disks>
    <disk name='vda' snapshot='external' type='file'>
      <driver type='qcow2'/>
      <source file='${overlay}'/>
    </disk>
  </disks>
</domainsnapshot>
`;

test('parseSnapshotXml: an internal snapshot of a running VM (memory included), with its parent and description', async () => {
  assert.deepEqual(await parseSnapshotXml(INTERNAL_RUNNING), {
    name: 'before-upgrade',
    description: 'marker A & more',
    created: '2026-11-22T05:38:16.000Z',
    state: 'running',
    parent: 'first',
    kind: 'internal',
    withMemory: true,
    memoryFile: undefined,
    disks: [{ target: 'vda', snapshot: 'internal', file: undefined }],
  });
});

test("parseSnapshotXml: a shut-off VM's snapshot is disks only, in vms' words for the state; a cdrom is left out", async () => {
  const s = await parseSnapshotXml(INTERNAL_SHUTOFF);
  assert.equal(s.state, 'shut off');
  assert.equal(s.withMemory, false);
  assert.equal(s.kind, 'internal');
  assert.equal(s.description, undefined);
  assert.deepEqual(
    s.disks.map((d) => d.snapshot),
    ['internal', 'no'],
  );
});

test('parseSnapshotXml: external snapshots, with a memory file or disks only (disk-snapshot: taken running)', async () => {
  const withMemory = await parseSnapshotXml(
    externalXml('m1', 'running', "<memory snapshot='external' file='/s/vm/snapshot-m1.mem'/>", '/i/vm.m1'),
  );
  assert.equal(withMemory.kind, 'external');
  assert.equal(withMemory.withMemory, true);
  assert.equal(withMemory.memoryFile, '/s/vm/snapshot-m1.mem');
  assert.deepEqual(withMemory.disks, [{ target: 'vda', snapshot: 'external', file: '/i/vm.m1' }]);
  const diskOnly = await parseSnapshotXml(externalXml('d1', 'disk-snapshot', "<memory snapshot='no'/>", '/i/vm.d1'));
  assert.equal(diskOnly.kind, 'external');
  assert.equal(diskOnly.state, 'running');
  assert.equal(diskOnly.withMemory, false);
  await assert.rejects(parseSnapshotXml('<domain/>'), /not a libvirt domain snapshot/);
});

test('snapshotCreateArgs: internal by default, external disk-only or with a memory file; always atomic', () => {
  assert.deepEqual(snapshotCreateArgs({ vm: 'vm', name: 's', external: false }), [
    'snapshot-create-as',
    'vm',
    's',
    '--atomic',
  ]);
  assert.deepEqual(snapshotCreateArgs({ vm: 'vm', name: 's', description: 'a b', external: false }), [
    'snapshot-create-as',
    'vm',
    's',
    '--description',
    'a b',
    '--atomic',
  ]);
  assert.deepEqual(snapshotCreateArgs({ vm: 'vm', name: 's', external: true }), [
    'snapshot-create-as',
    'vm',
    's',
    '--atomic',
    '--disk-only',
  ]);
  assert.deepEqual(snapshotCreateArgs({ vm: 'vm', name: 's', external: true, memoryFile: '/st/a,b/s.mem' }), [
    'snapshot-create-as',
    'vm',
    's',
    '--atomic',
    '--memspec',
    'file=/st/a,,b/s.mem,snapshot=external',
  ]);
});

test('defaultSnapshotName is the UTC time, usable as a file name', () => {
  assert.equal(defaultSnapshotName(new Date('2026-11-22T05:31:16.789Z')), '20261122-053116');
});

// ---- the core, on a fake virsh: what is refused is refused before anything changes ----------------------------------

const domainXml = (format: string, firmware = '') => `<domain type='qemu'>
  <name>vm</name>
  <uuid>0cb755d1-92e2-4a6d-b88c-c4582ce962d7</uuid>
  <memory unit='KiB'>262144</memory>
  <vcpu>1</vcpu>
  <os${firmware}><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='${format}'/>
      <source file='/i/vm.${format}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
`;

/** loadVm's two calls. */
const loadCalls = (xml: string, state: string): Expected[] => [
  virshCall(['dumpxml', 'vm', '--inactive', '--security-info'], xml),
  virshCall(['domstate', 'vm'], `${state}\n\n`),
];

async function assertVmsError(p: Promise<unknown>, exitCode: number, message: RegExp, hint: RegExp) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof VmsError, String(err));
    assert.equal(err.exitCode, exitCode);
    assert.match(err.message, message);
    assert.match(forCommandLine(err).hint ?? '', hint); // as the command line words it
    return true;
  });
}

test('create: an internal snapshot of a raw disk is refused before any snapshot is attempted (exit 2, hint --external)', async () => {
  const { ctx, runner } = fakeContext([
    ...loadCalls(domainXml('raw'), 'shut off'),
    virshCall(['snapshot-list', 'vm', '--name'], '\n'),
  ]);
  await assertVmsError(
    createSnapshot(ctx, { vm: 'vm', name: 's', external: false }),
    2,
    /disk vda \(\/i\/vm\.raw\) is raw: internal snapshots need qcow2 disks/,
    /--external/,
  );
  runner.done();
});

test('create: a snapshot name already taken is a conflict (exit 4); a bad name is refused without asking libvirt', async () => {
  const { ctx, runner } = fakeContext([
    ...loadCalls(domainXml('qcow2'), 'running'),
    virshCall(['snapshot-list', 'vm', '--name'], 'a\ns\n\n'),
  ]);
  await assertVmsError(
    createSnapshot(ctx, { vm: 'vm', name: 's', external: false }),
    4,
    /vm already has a snapshot named 's'/,
    /vms snapshot delete vm s/,
  );
  runner.done();
  const none = fakeContext([]);
  await assertVmsError(
    createSnapshot(none.ctx, { vm: 'vm', name: '../x', external: false }),
    2,
    /invalid snapshot name '\.\.\/x'/,
    /letters, digits/,
  );
});

test('create: a description XML cannot hold (U+FFFF) is refused without asking libvirt (exit 2, not libvirt\'s "Char 0xFFFF out of allowed range")', async () => {
  const { ctx, runner } = fakeContext([]);
  await assertVmsError(
    createSnapshot(ctx, { vm: 'vm', name: 's', description: 'x\uFFFF', external: false }),
    2,
    /^the description may not hold U\+FFFF: .* cannot be kept in the snapshot's XML$/,
    /plain text/,
  );
  runner.done();
});

test("create: libvirt 9.0's refusal of a running UEFI VM's internal snapshot is told with the way out", async () => {
  const refusal =
    'error: Operation not supported: internal snapshots of a VM with pflash based firmware are not supported\n';
  const { ctx, runner } = fakeContext([
    ...loadCalls(domainXml('qcow2', " firmware='efi'"), 'running'),
    virshCall(['snapshot-list', 'vm', '--name'], '\n'),
    virshCall(['snapshot-create-as', 'vm', 's', '--atomic'], '', { exitCode: 1, stderr: refusal }),
    virshCall(['version', '--daemon'], 'Compiled against library: libvirt 9.0.0\nRunning against daemon: 9.0.0\n'),
    virshCall(['snapshot-list', 'vm', '--name'], '\n'), // the undo: not taken, nothing to take back
  ]);
  await assertVmsError(
    createSnapshot(ctx, { vm: 'vm', name: 's', external: false }),
    4,
    /^internal snapshots of a running UEFI VM need libvirt ≥ 10\.10 with the NVRAM in qcow2 format \(this is libvirt 9\.0\.0\)$/,
    /use --external, or shut vm off first/,
  );
  runner.done();
});

const CAPS_9_0 =
  "<capabilities><guest><features><disksnapshot default='on' toggle='no'/></features></guest></capabilities>";
/** A libvirt that can revert external snapshots (≥ 9.9). */
const CAPS_EXTERNAL = '<capabilities><guest><features><externalSnapshot/></features></guest></capabilities>';

test('revert: to an external snapshot on a libvirt without <externalSnapshot/>: refused before asking or reverting', async () => {
  const { ctx, runner } = fakeContext([
    ...loadCalls(domainXml('qcow2'), 'running'),
    virshCall(
      ['snapshot-dumpxml', 'vm', 'm1'],
      externalXml('m1', 'running', "<memory snapshot='external' file='/s/m1.mem'/>", '/i/vm.m1'),
    ),
    virshCall(['capabilities'], CAPS_9_0),
    virshCall(['version', '--daemon'], 'Running against daemon: 9.0.0\n'),
  ]);
  await assertVmsError(
    planRevert(ctx, 'vm', 'm1'),
    4,
    /^libvirt 9\.0\.0 cannot revert to an external snapshot \(libvirt ≥ 9\.9 can\)$/,
    /nothing was changed; `vms snapshot delete vm m1` merges it/,
  );
  runner.done();
});

test('revert/delete: an unknown snapshot is not found (exit 3)', async () => {
  const missing = "error: Domain snapshot not found: no domain snapshot with matching name 'x'\n";
  const { ctx, runner } = fakeContext([
    ...loadCalls(domainXml('qcow2'), 'running'),
    virshCall(['snapshot-dumpxml', 'vm', 'x'], '', { exitCode: 1, stderr: missing }),
  ]);
  await assertVmsError(deleteSnapshot(ctx, 'vm', 'x'), 3, /^vm has no snapshot named 'x'$/, /vms snapshot list vm/);
  runner.done();
});

test("delete: an external snapshot's memory file, which libvirt leaves behind, is removed after libvirt's delete", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-'));
  const mem = join(dir, 'snapshot-m1.mem');
  writeFileSync(mem, 'state');
  const overlay = join(dir, 'vm.m1'); // gone already: nothing to look up under it
  const calls = [
    ...loadCalls(domainXml('qcow2'), 'running'),
    virshCall(
      ['snapshot-dumpxml', 'vm', 'm1'],
      externalXml('m1', 'running', `<memory snapshot='external' file='${mem}'/>`, overlay),
    ),
    {
      ...virshCall(['snapshot-delete', 'vm', 'm1'], 'Domain snapshot m1 deleted\n'),
      args: (args: readonly string[]) =>
        args.join(' ') === `-c qemu:///system snapshot-delete vm m1` && existsSync(mem),
    },
    // Its files are gone: forgotten in metadata.made (which does not list them here: nothing to define).
    virshCall(['dumpxml', 'vm', '--inactive', '--security-info'], domainXml('qcow2')),
  ];
  const { ctx, runner } = fakeContext(calls);
  const r = await deleteSnapshot(ctx, 'vm', 'm1');
  runner.done();
  assert.deepEqual(r, { name: 'vm', snapshot: 'm1', kind: 'external', removed: [mem] });
  assert.equal(existsSync(mem), false);
});

test('delete: an external snapshot whose files a linked clone stands on is refused (exit 4), nothing deleted', async () => {
  const overlay = join(mkdtempSync(join(tmpdir(), 'vms-unit-')), 'vm.e1');
  writeFileSync(overlay, '');
  const xml = domainXml('qcow2').replace(
    '<devices>',
    `<metadata><vms:vm xmlns:vms="https://github.com/vms-dev/vms/xmlns/1"><vms:base>${overlay}</vms:base></vms:vm></metadata><devices>`,
  );
  const { ctx, runner } = fakeContext([
    ...loadCalls(xml, 'shut off'),
    virshCall(['snapshot-dumpxml', 'vm', 'e1'], externalXml('e1', 'shutoff', "<memory snapshot='no'/>", overlay)),
    {
      cmd: 'qemu-img',
      args: ['info', '-U', '--backing-chain', '--output=json', overlay],
      result: { stdout: JSON.stringify([{ filename: overlay }, { filename: '/i/vm.qcow2' }]) },
    },
  ]);
  await assertVmsError(
    deleteSnapshot(ctx, 'vm', 'e1'),
    4,
    /e1's files are the base of a linked clone of vm/,
    /destroy the clones/,
  );
  runner.done();
});

test('list: every snapshot from one batch, oldest first, the current one marked', async () => {
  const newer = INTERNAL_RUNNING;
  const older = INTERNAL_SHUTOFF;
  const { ctx, runner } = fakeContext([
    virshCall(['snapshot-list', 'vm', '--name'], 'before-upgrade\noff\n\n'),
    batchCall(
      [
        'snapshot-current vm --name',
        'dumpxml vm --inactive',
        'snapshot-dumpxml vm before-upgrade',
        'snapshot-dumpxml vm off',
      ],
      ['before-upgrade\n', domainXml('qcow2'), newer, older],
    ),
  ]);
  const list = await listSnapshots(ctx, 'vm');
  runner.done();
  assert.deepEqual(
    list.map((s) => [s.name, s.state, s.current]),
    [
      ['off', 'shut off', false],
      ['before-upgrade', 'running', true],
    ],
  );
  assert.equal(list[0]!.vm, 'vm');
});

// ---- create: what is taken, with which argv, and what a failure leaves ------------------------------------------------

/** A Progress that writes down each step's title and each note, in order. */
function recordingProgress() {
  const log: string[] = [];
  const progress = {
    step: <T>(title: string, fn: () => Promise<T>) => (log.push(title), fn()),
    note: (m: string) => void log.push(`note: ${m}`),
  };
  return { log, progress };
}

test('create: an internal snapshot of a running VM: its RAM too, the exact argv, current and revertable', async () => {
  const { ctx, runner } = fakeContext([
    ...loadCalls(domainXml('qcow2'), 'running'),
    virshCall(['snapshot-list', 'vm', '--name'], 'first\n\n'),
    virshCall(['snapshot-create-as', 'vm', 'before-upgrade', '--description', 'marker A & more', '--atomic']),
    virshCall(['snapshot-dumpxml', 'vm', 'before-upgrade'], INTERNAL_RUNNING),
  ]);
  const { log, progress } = recordingProgress();
  const options = { vm: 'vm', name: 'before-upgrade', description: 'marker A & more', external: false };
  const r = await createSnapshot({ ...ctx, progress }, options);
  runner.done();
  assert.deepEqual(r, { vm: 'vm', ...(await parseSnapshotXml(INTERNAL_RUNNING)), current: true, revertable: true });
  assert.deepEqual(log, ['Checking input', 'Taking internal snapshot before-upgrade of vm (disks and memory)']);
});

test("create of a shut-off UEFI VM without a name: named by the UTC time, its disks only, the NVRAM's absence said", async () => {
  let name = '';
  const { ctx, runner } = fakeContext([
    ...loadCalls(domainXml('qcow2', " firmware='efi'"), 'shut off'),
    virshCall(['snapshot-list', 'vm', '--name'], '\n'),
    {
      cmd: 'virsh',
      args: (a) =>
        /^\d{8}-\d{6}$/.test((name = a[4] ?? '')) &&
        JSON.stringify(a) === JSON.stringify(['-c', 'qemu:///system', 'snapshot-create-as', 'vm', name, '--atomic']),
    },
    {
      cmd: 'virsh',
      args: (a) => a.join(' ') === `-c qemu:///system snapshot-dumpxml vm ${name}`,
      get result() {
        return { stdout: INTERNAL_SHUTOFF.replace('<name>off</name>', `<name>${name}</name>`) };
      },
    },
  ]);
  const before = defaultSnapshotName(new Date());
  const { log, progress } = recordingProgress();
  const r = await createSnapshot({ ...ctx, progress }, { vm: 'vm', external: false });
  runner.done();
  assert.ok(name >= before && name <= defaultSnapshotName(new Date()), name);
  assert.deepEqual([r.name, r.state, r.withMemory], [name, 'shut off', false]);
  assert.deepEqual(log, [
    'Checking input',
    `Taking internal snapshot ${name} of vm (disks)`,
    'note: the UEFI NVRAM (boot entries) is not part of the snapshot: a revert leaves it as it is',
  ]);
});

test("create --external of a paused VM: counted as running, its RAM goes to a memory file in the VM's dir", async () => {
  let memory = '';
  const overlay = '/i/vm.e1';
  const calls: Expected[] = [
    ...loadCalls(domainXml('qcow2'), 'paused'),
    virshCall(['snapshot-list', 'vm', '--name'], '\n'),
    {
      cmd: 'virsh',
      args: (a) =>
        JSON.stringify(a) ===
        JSON.stringify([
          '-c',
          'qemu:///system',
          'snapshot-create-as',
          'vm',
          'e1',
          '--atomic',
          '--memspec',
          `file=${memory},snapshot=external`,
        ]),
    },
    {
      cmd: 'virsh',
      args: ['-c', 'qemu:///system', 'snapshot-dumpxml', 'vm', 'e1'],
      get result() {
        return { stdout: externalXml('e1', 'paused', `<memory snapshot='external' file='${memory}'/>`, overlay) };
      },
    },
    virshCall(['dumpxml', 'vm', '--inactive', '--security-info'], domainXml('qcow2')),
    {
      cmd: 'virsh',
      args: (a) =>
        a[2] === 'define' &&
        readFileSync(a[3]!, 'utf8')
          .replace(/>\s+</g, '><')
          .includes(`<vms:made>${overlay}</vms:made><vms:made>${memory}</vms:made>`),
    },
    virshCall(['capabilities'], CAPS_EXTERNAL),
  ];
  const { ctx, runner } = fakeContext(calls);
  memory = join(ctx.config.stateDir.value, 'vm', 'snapshot-e1.mem');
  const { log, progress } = recordingProgress();
  const r = await createSnapshot({ ...ctx, progress }, { vm: 'vm', name: 'e1', external: true });
  runner.done();
  assert.deepEqual([r.kind, r.memoryFile, r.revertable], ['external', memory, true]);
  assert.deepEqual(log, [
    'Checking input',
    'Taking external snapshot e1 of vm (disks and memory)',
    "Recording 2 new file(s) in vm's metadata",
  ]);
});

test('create --external of a running VM whose memory file is already there: a conflict, the file left as it was', async () => {
  const { ctx, runner } = fakeContext([
    ...loadCalls(domainXml('qcow2'), 'running'),
    virshCall(['snapshot-list', 'vm', '--name'], '\n'),
  ]);
  const memory = join(ctx.config.stateDir.value, 'vm', 'snapshot-e1.mem');
  mkdirSync(dirname(memory), { recursive: true });
  writeFileSync(memory, 'someone else');
  await assertVmsError(
    createSnapshot(ctx, { vm: 'vm', name: 'e1', external: true }),
    4,
    new RegExp(`^${memory.replaceAll('.', '\\.')} already exists$`),
    /remove it .* or pick another snapshot name/,
  );
  runner.done();
  assert.equal(readFileSync(memory, 'utf8'), 'someone else');
});

test('create --external fails in libvirt: the partial memory file is removed at once, the take-back finds no snapshot', async () => {
  let memory = '';
  const { ctx, runner } = fakeContext([
    ...loadCalls(domainXml('qcow2'), 'running'),
    virshCall(['snapshot-list', 'vm', '--name'], '\n'),
    {
      cmd: 'virsh',
      args: (a) =>
        a[2] === 'snapshot-create-as' &&
        a.includes(`file=${memory},snapshot=external`) &&
        (writeFileSync(memory, 'half'), true),
      result: { exitCode: 1, stderr: 'error: internal error: unable to execute QEMU command: boom\n' },
    },
    // The undo: libvirt has no snapshot e1 (--atomic), and the memory file is gone already.
    {
      ...virshCall(['snapshot-list', 'vm', '--name'], '\n'),
      args: (a) => a[2] === 'snapshot-list' && !existsSync(memory),
    },
  ]);
  memory = join(ctx.config.stateDir.value, 'vm', 'snapshot-e1.mem');
  await assertVmsError(
    createSnapshot(ctx, { vm: 'vm', name: 'e1', external: true }),
    1,
    /^virsh snapshot-create-as failed: internal error: unable to execute QEMU command: boom$/,
    /-v to see the commands run/,
  );
  runner.done();
  assert.equal(existsSync(memory), false);
});

test("takeBackSnapshot: a snapshot libvirt never took: only the memory file goes; an internal one: libvirt's delete only", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-'));
  const memory = join(dir, 'snapshot-s.mem');
  writeFileSync(memory, 'half');
  const none = fakeContext([virshCall(['snapshot-list', 'vm', '--name'], 'other\n\n')]);
  await takeBackSnapshot(none.ctx, 'vm', 's', domainXml('qcow2'), memory);
  none.runner.done();
  assert.equal(existsSync(memory), false);
  const internal = fakeContext([
    virshCall(['snapshot-list', 'vm', '--name'], 'before-upgrade\n\n'),
    virshCall(['snapshot-dumpxml', 'vm', 'before-upgrade'], INTERNAL_RUNNING),
    virshCall(['snapshot-delete', 'vm', 'before-upgrade']),
  ]);
  await takeBackSnapshot(internal.ctx, 'vm', 'before-upgrade', domainXml('qcow2'), undefined);
  internal.runner.done();
});

// ---- revert, delete and list: the rest of what is checked ----------------------------------------------------------

test('revert: a snapshot that cannot be read for another reason is that failure, not "no snapshot named"', async () => {
  const { ctx, runner } = fakeContext([
    ...loadCalls(domainXml('qcow2'), 'running'),
    virshCall(['snapshot-dumpxml', 'vm', 's'], '', {
      exitCode: 1,
      stderr: 'error: internal error: metadata garbled\n',
    }),
  ]);
  await assertVmsError(
    planRevert(ctx, 'vm', 's'),
    1,
    /^virsh snapshot-dumpxml failed: internal error: metadata garbled$/,
    /-v to see the commands run/,
  );
  runner.done();
});

test('revert: to an external snapshot where libvirt can (<externalSnapshot/>): planned, nothing changed yet', async () => {
  const xml = externalXml('m1', 'running', "<memory snapshot='external' file='/s/m1.mem'/>", '/i/vm.m1');
  const { ctx, runner } = fakeContext([
    ...loadCalls(domainXml('qcow2'), 'paused'),
    virshCall(['snapshot-dumpxml', 'vm', 'm1'], xml),
    virshCall(['capabilities'], CAPS_EXTERNAL),
  ]);
  assert.deepEqual(await planRevert(ctx, 'vm', 'm1'), {
    vm: 'vm',
    vmState: 'paused',
    snapshot: await parseSnapshotXml(xml),
  });
  runner.done();
});

test('delete: an external snapshot whose overlay stands on a base of a linked clone (the file under it): refused', async () => {
  const overlay = join(mkdtempSync(join(tmpdir(), 'vms-unit-')), 'vm.e1');
  writeFileSync(overlay, '');
  const xml = domainXml('qcow2').replace(
    '<devices>',
    `<metadata><vms:vm xmlns:vms="https://github.com/vms-dev/vms/xmlns/1"><vms:base>/i/vm.qcow2</vms:base></vms:vm></metadata><devices>`,
  );
  const { ctx, runner } = fakeContext([
    ...loadCalls(xml, 'shut off'),
    virshCall(['snapshot-dumpxml', 'vm', 'e1'], externalXml('e1', 'shutoff', "<memory snapshot='no'/>", overlay)),
    {
      cmd: 'qemu-img',
      args: ['info', '-U', '--backing-chain', '--output=json', overlay],
      result: {
        stdout: JSON.stringify([{ filename: overlay }, { filename: '/i/vm.qcow2' }, { filename: '/i/older' }]),
      },
    },
  ]);
  await assertVmsError(
    deleteSnapshot(ctx, 'vm', 'e1'),
    4,
    /linked clone of vm \(\/i\/vm\.qcow2\)/,
    /destroy the clones/,
  );
  runner.done();
});

test('list: no snapshots is one call and an empty list; one deleted between the calls is left out; libvirt asked once', async () => {
  const none = fakeContext([virshCall(['snapshot-list', 'vm', '--name'], '\n')]);
  assert.deepEqual(await listSnapshots(none.ctx, 'vm'), []);
  none.runner.done();
  const e1 = externalXml('e1', 'disk-snapshot', "<memory snapshot='no'/>", '/i/vm.e1');
  const e2 = externalXml('e2', 'disk-snapshot', "<memory snapshot='no'/>", '/i/vm.e2');
  const { ctx, runner } = fakeContext([
    virshCall(['snapshot-list', 'vm', '--name'], 'gone\noff\ne1\ne2\n\n'),
    batchCall(
      [
        'snapshot-current vm --name',
        'dumpxml vm --inactive',
        'snapshot-dumpxml vm gone',
        'snapshot-dumpxml vm off',
        'snapshot-dumpxml vm e1',
        'snapshot-dumpxml vm e2',
      ],
      ['', domainXml('qcow2'), '', INTERNAL_SHUTOFF, e1, e2],
    ),
    virshCall(['capabilities'], CAPS_9_0), // once for both external snapshots
  ]);
  const list = await listSnapshots(ctx, 'vm');
  runner.done();
  assert.deepEqual(
    list.map((s) => [s.name, s.current, s.revertable]),
    [
      ['e1', false, false],
      ['e2', false, false],
      ['off', false, true],
    ],
  );
});

// ---- which files create, take-back and delete touch: made, removed, looked at ---------------------------------------

/** An external snapshot with a second disk it left out (snapshot='no') whose file is known, e.g. a shared image. */
const externalWithShared = (name: string, state: string, memory: string, overlay: string, shared: string) =>
  externalXml(name, state, memory, overlay).replace(
    '</disks>',
    `  <disk name='vdb' snapshot='no' type='file'><source file='${shared}'/></disk>\n  </disks>`,
  );

test('create --external of a running VM whose dir is there already (the normal case): memory file in it; only the overlay and the memory file recorded as made', async () => {
  let memory = '';
  const overlay = '/i/vm.e1';
  const { ctx, runner } = fakeContext([
    ...loadCalls(domainXml('qcow2'), 'running'),
    virshCall(['snapshot-list', 'vm', '--name'], '\n'),
    { cmd: 'virsh', args: (a) => a[2] === 'snapshot-create-as' && a.includes(`file=${memory},snapshot=external`) },
    {
      cmd: 'virsh',
      args: ['-c', 'qemu:///system', 'snapshot-dumpxml', 'vm', 'e1'],
      get result() {
        const mem = `<memory snapshot='external' file='${memory}'/>`;
        return { stdout: externalWithShared('e1', 'running', mem, overlay, '/i/shared.raw') };
      },
    },
    virshCall(['dumpxml', 'vm', '--inactive', '--security-info'], domainXml('qcow2')),
    {
      cmd: 'virsh',
      args: (a) => {
        if (a[2] !== 'define') return false;
        const made = [...readFileSync(a[3]!, 'utf8').matchAll(/<vms:made>([^<]*)<\/vms:made>/g)].map((m) => m[1]);
        return JSON.stringify(made) === JSON.stringify([overlay, memory]); // not the shared image left out
      },
    },
    virshCall(['capabilities'], CAPS_EXTERNAL),
  ]);
  memory = join(ctx.config.stateDir.value, 'vm', 'snapshot-e1.mem');
  mkdirSync(dirname(memory), { recursive: true }); // `vms create` made it: mkdir must not fail on it
  const r = await createSnapshot(ctx, { vm: 'vm', name: 'e1', external: true });
  runner.done();
  assert.deepEqual([r.kind, r.memoryFile], ['external', memory]);
});

test("create --external fails in libvirt before any memory file was written: libvirt's error, not the removal's", async () => {
  const { ctx, runner } = fakeContext([
    ...loadCalls(domainXml('qcow2'), 'running'),
    virshCall(['snapshot-list', 'vm', '--name'], '\n'),
    {
      cmd: 'virsh',
      args: (a) => a[2] === 'snapshot-create-as',
      result: { exitCode: 1, stderr: 'error: internal error: qemu unexpectedly closed the monitor\n' },
    },
    virshCall(['snapshot-list', 'vm', '--name'], '\n'),
  ]);
  await assertVmsError(
    createSnapshot(ctx, { vm: 'vm', name: 'e1', external: true }),
    1,
    /^virsh snapshot-create-as failed: internal error: qemu unexpectedly closed the monitor$/,
    /-v to see the commands run/,
  );
  runner.done();
});

test('takeBackSnapshot of an external snapshot whose overlay never appeared: record dropped, definition restored, no error', async () => {
  const overlay = join(mkdtempSync(join(tmpdir(), 'vms-unit-')), 'vm.e1'); // never written
  const { ctx, runner } = fakeContext([
    virshCall(['snapshot-list', 'vm', '--name'], 'e1\n\n'),
    virshCall(['snapshot-dumpxml', 'vm', 'e1'], externalXml('e1', 'shutoff', "<memory snapshot='no'/>", overlay)),
    virshCall(['domstate', 'vm'], 'shut off\n'),
    virshCall(['domblklist', 'vm', '--inactive'], ' Target   Source\n------------------\n vda      /i/vm.qcow2\n'),
    virshCall(['snapshot-delete', 'vm', 'e1', '--metadata']),
    { cmd: 'virsh', args: (a) => a[2] === 'define' && readFileSync(a[3]!, 'utf8').includes('/i/vm.qcow2') },
  ]);
  await takeBackSnapshot(ctx, 'vm', 'e1', domainXml('qcow2'), undefined);
  runner.done();
});

const NS = 'https://github.com/vms-dev/vms/xmlns/1';
/** domainXml with vms metadata: the bases linked clones stand on, the files vms made. */
const withMetadata = (bases: string[], made: string[]) =>
  domainXml('qcow2').replace(
    '<devices>',
    `<metadata><vms:vm xmlns:vms="${NS}">${bases.map((b) => `<vms:base>${b}</vms:base>`).join('')}` +
      `${made.map((f) => `<vms:made>${f}</vms:made>`).join('')}</vms:vm></metadata><devices>`,
  );

test('delete: an external snapshot whose memory file is gone already: nothing removed by vms; its gone files forgotten in made', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-'));
  const [overlay, mem] = [join(dir, 'vm.m1'), join(dir, 'snapshot-m1.mem')]; // both gone
  const xml = withMetadata([], ['/i/vm.qcow2', overlay, mem]);
  const { ctx, runner } = fakeContext([
    ...loadCalls(xml, 'running'),
    virshCall(['snapshot-dumpxml', 'vm', 'm1'], externalXml('m1', 'running', `<memory file='${mem}'/>`, overlay)),
    virshCall(['snapshot-delete', 'vm', 'm1']),
    virshCall(['dumpxml', 'vm', '--inactive', '--security-info'], xml),
    {
      cmd: 'virsh',
      args: (a) => {
        if (a[2] !== 'define') return false;
        const made = [...readFileSync(a[3]!, 'utf8').matchAll(/<vms:made>([^<]*)<\/vms:made>/g)].map((m) => m[1]);
        return JSON.stringify(made) === JSON.stringify(['/i/vm.qcow2']); // the VM's own disk is kept
      },
    },
  ]);
  const { log, progress } = recordingProgress();
  const r = await deleteSnapshot({ ...ctx, progress }, 'vm', 'm1');
  runner.done();
  assert.deepEqual(r, { name: 'vm', snapshot: 'm1', kind: 'external', removed: [] });
  assert.deepEqual(log, ['Deleting snapshot m1 of vm']);
});

test("delete: an overlay still there is not forgotten; a left-out disk and the chain below the overlay's base are not looked at", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-'));
  const [overlay, shared] = [join(dir, 'vm.e1'), join(dir, 'shared.raw')];
  writeFileSync(overlay, '');
  writeFileSync(shared, '');
  // shared (left out by the snapshot) and /i/older (under the file under the overlay) are bases: neither is touched.
  const xml = withMetadata([shared, '/i/older'], ['/i/vm.qcow2', overlay]);
  const snap = externalWithShared('e1', 'shutoff', "<memory snapshot='no'/>", overlay, shared);
  const { ctx, runner } = fakeContext([
    ...loadCalls(xml, 'shut off'),
    virshCall(['snapshot-dumpxml', 'vm', 'e1'], snap),
    {
      cmd: 'qemu-img',
      args: ['info', '-U', '--backing-chain', '--output=json', overlay],
      result: {
        stdout: JSON.stringify([{ filename: overlay }, { filename: '/i/vm.qcow2' }, { filename: '/i/older' }]),
      },
    },
    virshCall(['snapshot-delete', 'vm', 'e1']),
    // the overlay is still there (made, not gone): no metadata to redefine
  ]);
  assert.deepEqual(await deleteSnapshot(ctx, 'vm', 'e1'), {
    name: 'vm',
    snapshot: 'e1',
    kind: 'external',
    removed: [],
  });
  runner.done();
});

test('delete: an external snapshot whose overlay is gone but is itself a base of a linked clone: refused on its name alone', async () => {
  const overlay = join(mkdtempSync(join(tmpdir(), 'vms-unit-')), 'vm.e1'); // gone: no chain to read
  const { ctx, runner } = fakeContext([
    ...loadCalls(withMetadata([overlay], []), 'shut off'),
    virshCall(['snapshot-dumpxml', 'vm', 'e1'], externalXml('e1', 'shutoff', "<memory snapshot='no'/>", overlay)),
  ]);
  await assertVmsError(deleteSnapshot(ctx, 'vm', 'e1'), 4, /linked clone of vm \(.*vm\.e1\)/, /destroy the clones/);
  runner.done();
});
