import assert from 'node:assert/strict';
import { linkSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  describeUse,
  filesInUse,
  noteUnchecked,
  realPath,
  type FileUse,
} from '../../../src/core/storage/files-in-use.js';
import { domainXmlReferences, snapshotReferences } from '../../../src/libvirt/domain-files.js';
import { chainCall, disk, domainXml, metadata, NO_SNAPSHOTS } from '../../helpers/domain-fake.js';
import type { Expected } from '../../helpers/fake-runner.js';
import { batchCall, fakeContext, virshCall } from '../../helpers/virsh-fake.js';

const CONSOLE = (dir: string) =>
  `<serial type='unix'><source mode='bind' path='${dir}/serial.sock'/><log file='${dir}/serial.log' append='on'/><target port='0'/></serial>` +
  `<console type='unix'><source mode='bind' path='${dir}/serial.sock'/><target type='serial' port='0'/></console>`;

test('domainXmlReferences: every file a definition names, with its role and what QEMU does with it', async () => {
  const xml = domainXml(
    'a',
    disk('/img/a.qcow2', 'vda') +
      disk('/img/shared.raw', 'vdb', 'raw', '<readonly/>') +
      `<disk type='file' device='cdrom'><source file='/iso/x.iso'/><target dev='sda'/><readonly/></disk>` +
      `<disk type='file' device='cdrom'><target dev='sdb'/><readonly/></disk>` + // empty drive
      CONSOLE('/vms/a') +
      `<serial type='file'><source path='/logs/ttyS1.log' append='on'/><target port='1'/></serial>` +
      `<serial type='unix'><source mode='connect' path='/run/peer.sock'/><target port='2'/></serial>` +
      `<serial type='tcp'><source mode='bind' host='127.0.0.1' service='4000'/><target port='3'/></serial>` +
      `<channel type='unix'><source mode='bind' path='/var/lib/libvirt/qemu/channel/a.agent'/><target type='virtio'/></channel>`,
    `<os><type>hvm</type><loader readonly='yes' type='pflash'>/fw/CODE.fd</loader><nvram template='/fw/VARS.fd'>/vms/a/nvram.fd</nvram>` +
      `<kernel>/boot/vmlinuz</kernel><initrd>/boot/initrd.img</initrd></os>`,
  );
  assert.deepEqual(await domainXmlReferences(xml), [
    { path: '/img/a.qcow2', role: 'disk', access: 'write', format: 'qcow2' },
    { path: '/img/shared.raw', role: 'disk', access: 'read', format: 'raw' },
    { path: '/iso/x.iso', role: 'cdrom', access: 'read' },
    { path: '/vms/a/nvram.fd', role: 'nvram', access: 'write' },
    { path: '/fw/CODE.fd', role: 'loader', access: 'read' },
    { path: '/boot/vmlinuz', role: 'kernel', access: 'read' },
    { path: '/boot/initrd.img', role: 'initrd', access: 'read' },
    { path: '/vms/a/serial.log', role: 'log', access: 'write' },
    { path: '/vms/a/serial.sock', role: 'console', access: 'listen' },
    { path: '/logs/ttyS1.log', role: 'serial', access: 'write' },
    { path: '/run/peer.sock', role: 'serial', access: 'connect' },
    { path: '/vms/a/serial.sock', role: 'console', access: 'listen' },
    { path: '/var/lib/libvirt/qemu/channel/a.agent', role: 'channel', access: 'listen' },
  ]);
});

test('snapshotReferences: the memory file, external overlays and the files of the definition it keeps', async () => {
  const xml = `<domainsnapshot><name>s1</name><memory snapshot='external' file='/img/a.s1.mem'/>
    <disks><disk name='vda' snapshot='external' type='file'><driver type='qcow2'/><source file='/img/a.s1.qcow2'/></disk></disks>
    ${domainXml('a', disk('/img/a.qcow2', 'vda') + disk('/img/a-data.qcow2', 'vdb'))}</domainsnapshot>`;
  assert.deepEqual(
    (await snapshotReferences(xml)).map((r) => [r.path, r.role]),
    [
      ['/img/a.s1.mem', 'memory'],
      ['/img/a.s1.qcow2', 'disk'],
      ['/img/a.qcow2', 'disk'],
      ['/img/a-data.qcow2', 'disk'],
    ],
  );
});

const failingChainCall = (path: string, stderr: string): Expected => ({
  cmd: 'qemu-img',
  args: ['info', '-U', '--backing-chain', '--output=json', path],
  result: { exitCode: 1, stderr },
});
/** `qemu-img info` of one image (stating the format the image above says it has); its backing file is qcow2. */
const infoCall = (path: string, backing?: string, exitCode = 0, format?: string): Expected => ({
  cmd: 'qemu-img',
  args: ['info', '-U', ...(format ? ['-f', format] : []), '--output=json', path],
  result: exitCode
    ? { exitCode, stderr: `qemu-img: Could not open '${path}': Image is not in qcow2 format` }
    : {
        stdout: JSON.stringify({
          filename: path,
          format: 'qcow2',
          'virtual-size': 1,
          ...(backing && { 'full-backing-filename': backing, 'backing-filename-format': 'qcow2' }),
        }),
      },
});

test('filesInUse: every VM in one batch, chains under the disks, snapshots; broken VMs are listed, not thrown', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-'));
  const img = join(dir, 'img');
  mkdirSync(img);
  const f = (name: string) => join(img, name);
  for (const name of ['a.qcow2', 'base.qcow2', 'a-data.qcow2', 'b.qcow2', 'c.qcow2', 'c-mid.qcow2', 'user.raw'])
    writeFileSync(f(name), '');
  const aSaved = domainXml(
    'a',
    disk(f('a.qcow2'), 'vda') + CONSOLE('/vms/a'),
    metadata([f('a.qcow2'), f('a-data.qcow2')], [f('base.qcow2')]),
  );
  const aLive = domainXml('a', disk(f('a.qcow2'), 'vda') + disk(f('user.raw'), 'vdc', 'raw') + CONSOLE('/vms/a'));
  const snapshot = `<domainsnapshot><name>s1</name><memory snapshot='internal'/><disks><disk name='vda' snapshot='internal'/></disks>${domainXml('a', disk(f('a.qcow2'), 'vda') + disk(f('a-data.qcow2'), 'vdb'))}</domainsnapshot>`;
  const bXml = domainXml('b', disk(f('b.qcow2'), 'vda'));
  const cXml = domainXml('c', disk(f('c.qcow2'), 'vda'));
  const { ctx, runner } = fakeContext([
    virshCall(['list', '--all', '--name'], 'a\nb\nc\ngone\nbroken\n'),
    batchCall(
      [
        'dumpxml a --inactive',
        'dumpxml a',
        'snapshot-list a',
        'snapshot-list a --name',
        'dumpxml b --inactive',
        'snapshot-list broken --name',
      ],
      [
        aSaved,
        aLive,
        `${NO_SNAPSHOTS} s1   2026-01-01   running\n`,
        's1\n',
        bXml,
        bXml,
        NO_SNAPSHOTS,
        '',
        cXml,
        cXml,
        NO_SNAPSHOTS,
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
      ],
    ),
    batchCall(['snapshot-dumpxml a s1'], [snapshot]),
    chainCall(f('a.qcow2'), [f('a.qcow2'), f('base.qcow2')]),
    chainCall(f('a-data.qcow2'), [f('a-data.qcow2')]),
    // b's base is gone: the whole-chain read fails, the walk says where the chain breaks.
    failingChainCall(f('b.qcow2'), `qemu-img: Could not open '${f('gone.qcow2')}': No such file or directory`),
    infoCall(f('b.qcow2'), f('gone.qcow2')),
    // c's chain cannot be read below c-mid (garbled: read as the qcow2 c says it is, not probed as raw): what c stands
    // on further down is unknown.
    failingChainCall(f('c.qcow2'), 'qemu-img: Image is not in qcow2 format'),
    infoCall(f('c.qcow2'), f('c-mid.qcow2')),
    infoCall(f('c-mid.qcow2'), undefined, 1, 'qcow2'),
    virshCall(['domuuid', 'gone'], '', { exitCode: 1, stderr: "error: failed to get domain 'gone'" }),
    virshCall(['domuuid', 'broken'], 'b7c1\n'),
    // The VMs that may use more than could be read are read once more: still so.
    batchCall(['dumpxml c --inactive', 'dumpxml broken --inactive'], [cXml, cXml, NO_SNAPSHOTS, '', '', '', '', '']),
    failingChainCall(f('c.qcow2'), 'qemu-img: Image is not in qcow2 format'),
    infoCall(f('c.qcow2'), f('c-mid.qcow2')),
    infoCall(f('c-mid.qcow2'), undefined, 1, 'qcow2'),
    virshCall(['domuuid', 'broken'], 'b7c1\n'),
  ]);
  t.after(() => runner.done());
  const found = await filesInUse(ctx);

  const rows = (uses: FileUse[]) => uses.map((u) => [u.vm, u.role, u.path.replace(img + '/', ''), u.snapshot ?? '-']);
  assert.deepEqual(rows(found.uses), [
    ['a', 'disk', 'a.qcow2', '-'],
    ['a', 'log', '/vms/a/serial.log', '-'],
    ['a', 'console', '/vms/a/serial.sock', '-'],
    ['a', 'disk', 'user.raw', '-'], // plugged in live only: still in use
    ['a', 'disk', 'a.qcow2', 's1'],
    ['a', 'disk', 'a-data.qcow2', 's1'], // detached since the snapshot, which still needs it
    ['a', 'backing', 'base.qcow2', '-'], // each VM's chains after its definitions' own files
    ['a', 'backing', 'base.qcow2', 's1'],
    ['b', 'disk', 'b.qcow2', '-'],
    ['b', 'backing', 'gone.qcow2', '-'],
    ['c', 'disk', 'c.qcow2', '-'],
    ['c', 'backing', 'c-mid.qcow2', '-'],
  ]);
  assert.deepEqual(found.unreadable, [
    { vm: 'b', reason: `backing file ${f('gone.qcow2')} of ${f('b.qcow2')} is missing`, incomplete: false },
    {
      vm: 'c',
      reason: `cannot read the disk chain under ${f('c.qcow2')}: cannot read ${f('c-mid.qcow2')}: Could not open '${f('c-mid.qcow2')}': Image is not in qcow2 format`,
      incomplete: true,
    },
    { vm: 'broken', reason: 'virsh cannot print its definition', incomplete: true },
  ]);
  assert.deepEqual(found.vms, [
    { name: 'a', made: [f('a.qcow2'), f('a-data.qcow2')], bases: [f('base.qcow2')] },
    { name: 'b', made: [], bases: [] },
    { name: 'c', made: [], bases: [] },
  ]);

  // usesOf sees one file under its other names: a symlink, a hard link's inode, a path with "..".
  symlinkSync(f('base.qcow2'), join(dir, 'link.qcow2'));
  for (const name of [join(dir, 'link.qcow2'), join(img, '..', 'img', 'base.qcow2')]) {
    assert.deepEqual(
      found.usesOf(name).map((u) => `${u.vm} ${u.role} ${u.snapshot ?? '-'}`),
      ['a backing -', 'a backing s1'],
      name,
    );
  }
  assert.deepEqual(
    found.usesOf(f('gone.qcow2')).map((u) => u.vm),
    ['b'],
    'a missing file is matched by its path',
  );
  assert.deepEqual(found.usesOf(f('nobody.qcow2')), []);
  assert.equal(describeUse(found.usesOf(f('base.qcow2'))[0]!), `a base under a's disk ${f('a.qcow2')}`);
  assert.equal(describeUse(found.usesOf(f('a-data.qcow2'))[0]!), "a's disk (in its snapshot s1)");
});

test('filesInUse: except leaves that VM out; an undefined-meanwhile VM uses nothing; a VM unreadable for a moment is read again', async (t) => {
  const c = domainXml('c', disk('/img/c.raw', 'vda', 'raw'));
  const { ctx, runner } = fakeContext([
    virshCall(['list', '--all', '--name'], 'a\nb\nc\n'),
    batchCall(['dumpxml b --inactive', 'dumpxml b', 'dumpxml c --inactive'], ['', '', '', '', '', '', '', '']),
    virshCall(['domuuid', 'b'], '', { exitCode: 1, stderr: "error: failed to get domain 'b'" }),
    virshCall(['domuuid', 'c'], 'u\n'), // c is there, its definition was not printed: read again
    batchCall(['dumpxml c --inactive'], [c, c, NO_SNAPSHOTS, '']),
  ]);
  t.after(() => runner.done());
  const found = await filesInUse(ctx, { except: 'a' });
  assert.deepEqual(
    [found.uses.map((u) => `${u.vm} ${u.path}`), found.unreadable, found.vms],
    [['c /img/c.raw'], [], [{ name: 'c', made: [], bases: [] }]],
  );
});

test('realPath resolves the existing part of a path and keeps the rest', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-'));
  mkdirSync(join(dir, 'real'));
  symlinkSync(join(dir, 'real'), join(dir, 'link'));
  assert.equal(realPath(join(dir, 'link', 'new', 'file.log')), join(realPath(dir), 'real', 'new', 'file.log'));
  assert.equal(realPath(join(dir, 'link', '..', 'real')), join(realPath(dir), 'real'));
});

// ---- every way a VM can be read only in part: each is named, and fails closed (incomplete) where files may hide ----

const snapshotXml = (name: string, devices: string) =>
  `<domainsnapshot><name>${name}</name><memory snapshot='internal'/><disks><disk name='vda' snapshot='internal'/></disks>` +
  `${domainXml('v', devices)}</domainsnapshot>`;
const rawDisk = domainXml('v', disk('/img/v.raw', 'vda', 'raw'));
const listV = virshCall(['list', '--all', '--name'], 'v\n');
const snapshotList = (stdout: string, fails = false) =>
  virshCall(['snapshot-list', 'v', '--name'], stdout, fails ? { exitCode: 1, stderr: 'error: internal error' } : {});
const TWO_ROWS = `${NO_SNAPSHOTS} s1   2026-01-01 10:00:00 +0000   shutoff\n s2   2026-01-02 10:00:00 +0000   shutoff\n`;

/** filesInUse of the one VM v, whose reads are `calls`, made twice when v could not be fully read the first time. */
async function readV(t: { after: (fn: () => void) => void }, calls: Expected[], readTwice: boolean) {
  const { ctx, runner } = fakeContext([listV, ...calls, ...(readTwice ? calls : [])]);
  t.after(() => runner.done());
  return filesInUse(ctx);
}
const problem = (reason: string, incomplete = true) => [{ vm: 'v', reason, incomplete }];

test('filesInUse: no saved definition (only the running one) is incomplete, its running files still listed', async (t) => {
  const found = await readV(t, [batchCall(['dumpxml v --inactive'], ['', rawDisk, NO_SNAPSHOTS, ''])], true);
  assert.deepEqual(found.unreadable, problem('virsh cannot print its saved definition'));
  assert.deepEqual(
    found.uses.map((u) => u.path),
    ['/img/v.raw'],
  );
  assert.deepEqual(found.vms, [], 'no record without the saved definition');
});

test('filesInUse: a saved definition that cannot be parsed is incomplete; no running one is no problem', async (t) => {
  const garbled = await readV(
    t,
    [batchCall(['dumpxml v --inactive'], ['<domain><name>v', rawDisk, NO_SNAPSHOTS, ''])],
    true,
  );
  assert.equal(garbled.unreadable.length, 1);
  assert.match(garbled.unreadable[0]!.reason, /^cannot read its saved definition: \S/);
  assert.equal(garbled.unreadable[0]!.incomplete, true);
  assert.deepEqual(garbled.vms, []);

  const savedOnly = await readV(t, [batchCall(['dumpxml v --inactive'], [rawDisk, '', NO_SNAPSHOTS, ''])], false);
  assert.deepEqual([savedOnly.unreadable, savedOnly.uses.map((u) => u.path)], [[], ['/img/v.raw']]);
});

test('filesInUse: snapshots that cannot be listed at all are incomplete', async (t) => {
  const found = await readV(t, [batchCall(['dumpxml v --inactive'], [rawDisk, rawDisk, '', ''])], true);
  assert.deepEqual(found.unreadable, problem('virsh cannot list its snapshots'));
});

test('filesInUse: no definition printed and virsh cannot say whether the VM exists: incomplete', async (t) => {
  const found = await readV(
    t,
    [
      batchCall(['dumpxml v --inactive'], ['', '', '', '']),
      virshCall(['domuuid', 'v'], '', { exitCode: 1, stderr: 'error: internal error: something broke' }),
    ],
    true,
  );
  assert.deepEqual(found.unreadable, problem('virsh cannot print its definition'));
});

test('filesInUse: snapshot names asked again when the table has rows; a snapshot printed by nobody is incomplete', async (t) => {
  const s2 = snapshotXml('s2', disk('/img/v-old.raw', 'vda', 'raw'));
  const found = await readV(
    t,
    [
      batchCall(['dumpxml v --inactive'], [rawDisk, rawDisk, TWO_ROWS, '']),
      snapshotList('s1\ns2\n'),
      batchCall(['snapshot-dumpxml v s1', 'snapshot-dumpxml v s2'], ['', s2]),
      snapshotList('s1\ns2\n'), // s1 is still there: why it could not be printed is unknown
    ],
    true,
  );
  assert.deepEqual(found.unreadable, problem('cannot read its snapshot s1: virsh cannot print it'));
  assert.deepEqual(
    found.uses.map((u) => [u.path, u.snapshot ?? '-']),
    [
      ['/img/v.raw', '-'],
      ['/img/v-old.raw', 's2'],
    ],
  );
});

test('filesInUse: a snapshot deleted meanwhile needs nothing; one whose list then fails is incomplete', async (t) => {
  const s2 = snapshotXml('s2', disk('/img/v-old.raw', 'vda', 'raw'));
  const read = (after: Expected) => [
    batchCall(['dumpxml v --inactive'], [rawDisk, rawDisk, TWO_ROWS, '']),
    snapshotList('s1\ns2\n'),
    batchCall(['snapshot-dumpxml v s1', 'snapshot-dumpxml v s2'], ['', s2]),
    after,
  ];
  const deleted = await readV(t, read(snapshotList('s2\n')), false);
  assert.deepEqual(deleted.unreadable, []);
  const unknown = await readV(t, read(snapshotList('', true)), true);
  assert.deepEqual(unknown.unreadable, problem('cannot read its snapshot s1: virsh cannot print it'));
});

test('filesInUse: snapshot rows whose names cannot be asked again are incomplete; no rows, no snapshots', async (t) => {
  const failed = await readV(
    t,
    [batchCall(['dumpxml v --inactive'], [rawDisk, rawDisk, TWO_ROWS, '']), snapshotList('', true)],
    true,
  );
  assert.deepEqual(failed.unreadable, problem('virsh cannot list its snapshots'));
  const none = await readV(t, [batchCall(['dumpxml v --inactive'], [rawDisk, rawDisk, NO_SNAPSHOTS, ''])], false);
  assert.deepEqual(none.unreadable, []);
});

test('filesInUse: one file in two snapshots, one base under two disks: each use listed; one problem said once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-'));
  const f = (name: string) => join(dir, name);
  for (const name of ['v1.qcow2', 'v2.qcow2', 'base.qcow2', 'w.qcow2']) writeFileSync(f(name), '');
  const devices = disk(f('v1.qcow2'), 'vda') + disk(f('v2.qcow2'), 'vdb') + disk(f('w.qcow2'), 'vdc');
  const xml = domainXml('v', devices);
  const found = await readV(
    t,
    [
      batchCall(['dumpxml v --inactive'], [xml, xml, TWO_ROWS, 's1\ns2\n']),
      batchCall(
        ['snapshot-dumpxml v s1', 'snapshot-dumpxml v s2'],
        [snapshotXml('s1', disk(f('w.qcow2'), 'vda')), snapshotXml('s2', disk(f('w.qcow2'), 'vda'))],
      ),
      chainCall(f('v1.qcow2'), [f('v1.qcow2'), f('base.qcow2')]),
      chainCall(f('v2.qcow2'), [f('v2.qcow2'), f('base.qcow2')]),
      // w stands on a base that is gone: said once, though its definition and both snapshots name w
      failingChainCall(f('w.qcow2'), 'no such file'),
      infoCall(f('w.qcow2'), f('gone.qcow2')),
    ],
    false,
  );
  assert.deepEqual(
    found.uses.map((u) => [
      u.role,
      u.path.replace(dir + '/', ''),
      u.snapshot ?? '-',
      (u.under ?? '-').replace(dir + '/', ''),
    ]),
    [
      ['disk', 'v1.qcow2', '-', '-'],
      ['disk', 'v2.qcow2', '-', '-'],
      ['disk', 'w.qcow2', '-', '-'],
      ['disk', 'w.qcow2', 's1', '-'],
      ['disk', 'w.qcow2', 's2', '-'],
      ['backing', 'base.qcow2', '-', 'v1.qcow2'],
      ['backing', 'base.qcow2', '-', 'v2.qcow2'],
      ['backing', 'gone.qcow2', '-', 'w.qcow2'],
      ['backing', 'gone.qcow2', 's1', 'w.qcow2'],
      ['backing', 'gone.qcow2', 's2', 'w.qcow2'],
    ],
  );
  assert.deepEqual(found.unreadable, problem(`backing file ${f('gone.qcow2')} of ${f('w.qcow2')} is missing`, false));
});

test('usesOf sees a hard link as the same file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-'));
  writeFileSync(join(dir, 'v.raw'), '');
  linkSync(join(dir, 'v.raw'), join(dir, 'hard.raw'));
  const xml = domainXml('v', disk(join(dir, 'v.raw'), 'vda', 'raw'));
  const found = await readV(t, [batchCall(['dumpxml v --inactive'], [xml, xml, NO_SNAPSHOTS, ''])], false);
  assert.deepEqual(
    found.usesOf(join(dir, 'hard.raw')).map((u) => u.path),
    [join(dir, 'v.raw')],
  );
});

test('describeUse: every role in words, snapshots named; noteUnchecked names each VM that may use a file', () => {
  const use = (role: FileUse['role'], more: Partial<FileUse> = {}): FileUse => ({
    path: '/x',
    vm: 'v',
    role,
    access: 'write',
    ...more,
  });
  assert.deepEqual(
    [
      use('disk'),
      use('disk', { access: 'read' }),
      use('backing'),
      use('backing', { under: '/img/v.qcow2', snapshot: 's1' }),
      use('cdrom'),
      use('nvram'),
      use('loader'),
      use('kernel'),
      use('initrd'),
      use('console'),
      use('serial'),
      use('log'),
      use('channel'),
      use('memory'),
      use('memory', { snapshot: 's1' }),
    ].map(describeUse),
    [
      "v's disk",
      "v's read-only disk",
      "a base under v's disk",
      "a base under v's disk /img/v.qcow2 (in its snapshot s1)",
      "v's ISO (cdrom)",
      "v's NVRAM (UEFI variables)",
      "v's firmware",
      "v's kernel",
      "v's initrd",
      "v's console socket",
      "v's serial port",
      "v's console transcript",
      "v's channel socket",
      "the memory file of v's snapshot",
      "the memory file of v's snapshot s1",
    ],
  );
  const notes: string[] = [];
  const { ctx } = fakeContext([]);
  const inUse = {
    uses: [],
    vms: [],
    usesOf: () => [],
    unreadable: [
      { vm: 'a', reason: 'virsh cannot list its snapshots', incomplete: true },
      { vm: 'b', reason: 'its disk /img/b.qcow2 is missing', incomplete: false },
      { vm: 'c', reason: 'virsh cannot print its definition', incomplete: true },
    ],
  };
  noteUnchecked({ ...ctx, progress: { ...ctx.progress, note: (m) => notes.push(m) } }, inUse, '/img/x.qcow2');
  assert.deepEqual(notes, [
    'could not check whether a uses /img/x.qcow2: virsh cannot list its snapshots',
    'could not check whether c uses /img/x.qcow2: virsh cannot print its definition',
  ]);
});
