import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSnapshotXml } from '../../../src/libvirt/snapshot-xml.js';

// parseSnapshotXml on the sparse and odd documents libvirt can print: what it reads decides which files a snapshot
// needs (kept by destroy and gc) and whether revert and delete are internal or external.

const domain = (tag: string, file: string) =>
  `<${tag} type='kvm'><name>v</name><devices><disk type='file' device='disk'><source file='${file}'/>` +
  `<target dev='vda' bus='virtio'/></disk></devices></${tag}>`;

test('a snapshot document with nothing in it: every field has its default, no error', async () => {
  assert.deepEqual(await parseSnapshotXml('<domainsnapshot><description/></domainsnapshot>'), {
    name: '',
    description: undefined,
    created: '1970-01-01T00:00:00.000Z',
    state: 'unknown',
    parent: undefined,
    kind: 'internal',
    withMemory: false,
    memoryFile: undefined,
    disks: [],
  });
});

test('bare <memory/>, <disks/>, <disk/>, <source/> and <parent/> elements are no error', async () => {
  const s = await parseSnapshotXml(
    "<domainsnapshot><name>s</name><memory/><parent/><disks><disk/><disk name='vdb'><source/></disk></disks>" +
      '</domainsnapshot>',
  );
  assert.deepEqual(s.disks, [
    { target: '', snapshot: 'no', file: undefined },
    { target: 'vdb', snapshot: 'no', file: undefined },
  ]);
  assert.equal(s.parent, undefined);
  assert.equal(s.withMemory, false);
  assert.equal((await parseSnapshotXml('<domainsnapshot><disks/></domainsnapshot>')).disks.length, 0);
});

test("an internal disk's file is where the disk was when it was taken: the inactive definition's, else the domain's", async () => {
  const disks = "<disks><disk name='vda' snapshot='internal'/></disks>";
  const both = await parseSnapshotXml(
    `<domainsnapshot>${disks}${domain('domain', '/i/live.qcow2')}${domain('inactiveDomain', '/i/saved.qcow2')}` +
      '</domainsnapshot>',
  );
  assert.deepEqual(both.disks, [{ target: 'vda', snapshot: 'internal', file: '/i/saved.qcow2' }]);
  const onlyDomain = await parseSnapshotXml(
    `<domainsnapshot>${disks}${domain('domain', '/i/live.qcow2')}</domainsnapshot>`,
  );
  assert.deepEqual(onlyDomain.disks, [{ target: 'vda', snapshot: 'internal', file: '/i/live.qcow2' }]);
  const external = await parseSnapshotXml(
    "<domainsnapshot><disks><disk name='vda' snapshot='external'/></disks>" +
      `${domain('domain', '/i/live.qcow2')}</domainsnapshot>`,
  );
  assert.deepEqual(external.disks, [{ target: 'vda', snapshot: 'external', file: undefined }], 'no guess for it');
});

test("a disk's file from its source: a file, else a block device", async () => {
  const s = await parseSnapshotXml(
    "<domainsnapshot><disks><disk name='vda' snapshot='external'><source file='/i/o'/></disk>" +
      "<disk name='vdb' snapshot='external' type='block'><source dev='/dev/vg/o'/></disk></disks></domainsnapshot>",
  );
  assert.deepEqual(s.disks, [
    { target: 'vda', snapshot: 'external', file: '/i/o' },
    { target: 'vdb', snapshot: 'external', file: '/dev/vg/o' },
  ]);
});

test('external when its memory or any one disk is external; internal otherwise', async () => {
  const kind = async (memory: string, disks: string[]) =>
    (
      await parseSnapshotXml(
        `<domainsnapshot><memory snapshot='${memory}'/><disks>` +
          disks.map((d, i) => `<disk name='vd${i}' snapshot='${d}'/>`).join('') +
          '</disks></domainsnapshot>',
      )
    ).kind;
  assert.equal(await kind('external', ['no']), 'external');
  assert.equal(await kind('no', ['internal', 'external']), 'external');
  assert.equal(await kind('internal', ['internal', 'no']), 'internal');
  assert.equal(await kind('no', ['no']), 'internal');
});

test('state in vms words, an unknown one as libvirt says it; parent; time; description', async () => {
  const s = await parseSnapshotXml(
    '<domainsnapshot><name>s</name><description>d</description><state>pmsuspended</state>' +
      '<creationTime>86400</creationTime><parent><name>p</name></parent></domainsnapshot>',
  );
  assert.deepEqual(
    [s.state, s.parent, s.created, s.description],
    ['pmsuspended', 'p', '1970-01-02T00:00:00.000Z', 'd'],
  );
  const off = await parseSnapshotXml('<domainsnapshot><state>shutoff</state></domainsnapshot>');
  assert.equal(off.state, 'shut off');
});
