import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { addDisk, attachDisk, detachDisk, resizeDisk } from '../../../src/core/devices/disk.js';
import { VmsError } from '../../../src/errors.js';
import { forCommandLine } from '../../../src/cli/hints.js';
import { parseDomainXml, type XmlNode } from '../../../src/libvirt/domain-parse.js';
import { VMS_NS } from '../../../src/libvirt/metadata.js';
import {
  diskDevices,
  diskNode,
  diskXml,
  hasScsiController,
  nextTarget,
  parseBus,
  SCSI_CONTROLLER_XML,
  targetIndex,
  targetName,
  withDisk,
  withoutDisk,
} from '../../../src/libvirt/disk-xml.js';
import { FakeRunner, type Expected } from '../../helpers/fake-runner.js';
import { assertValidDomainXml } from '../../helpers/validate-xml.js';
import { batchCall } from '../../helpers/virsh-fake.js';
import {
  BOOT,
  CDROM,
  defined,
  device,
  diskContext,
  domain,
  load,
  NO_SNAPSHOTS,
  qemuImgCreate,
  savedAgain,
  virsh,
  VM,
} from '../../helpers/disk-fake.js';

describe('disk XML', () => {
  test('target names count like libvirt: vda … vdz, vdaa …', () => {
    assert.deepEqual(
      [0, 1, 25, 26, 27, 51, 52, 701, 702].map((i) => targetName('vd', i)),
      ['vda', 'vdb', 'vdz', 'vdaa', 'vdab', 'vdaz', 'vdba', 'vdzz', 'vdaaa'],
    );
  });

  test('the next target is the first free one of the bus family; sata and scsi share sd (a cdrom is often sda)', () => {
    assert.equal(nextTarget('virtio', ['vda', 'sda']), 'vdb');
    assert.equal(nextTarget('virtio', ['vda', 'vdc']), 'vdb');
    assert.equal(nextTarget('sata', ['vda', 'sda']), 'sdb');
    assert.equal(nextTarget('scsi', ['vda', 'sda', 'sdb', 'sdd']), 'sdc');
    assert.equal(nextTarget('scsi', ['vda']), 'sda');
    const all = Array.from({ length: 26 }, (_, i) => targetName('vd', i));
    assert.equal(nextTarget('virtio', all), 'vdaa');
  });

  test('buses: virtio, sata and scsi; nvme refused with the reason; anything else is a usage error', () => {
    assert.deepEqual(['virtio', 'sata', 'scsi'].map(parseBus), ['virtio', 'sata', 'scsi']);
    const usage = (text: string, message: RegExp) =>
      assert.throws(
        () => parseBus(text),
        (e: unknown) => e instanceof VmsError && e.code === 'usage' && message.test(e.message),
      );
    usage('nvme', /bus 'nvme' is not supported: libvirt 9\.0 cannot emulate an NVMe disk/);
    usage('ide', /unknown bus 'ide'/);
    usage('VIRTIO', /unknown bus/);
  });

  test('disk XML is valid libvirt XML (checked by virt-xml-validate), with a stated format and quoted paths', async () => {
    const path = `/srv/it's & <odd>.img`;
    const cases = [
      diskXml({ path: '/img/u-data.qcow2', format: 'qcow2', bus: 'virtio', target: 'vdb', readonly: false }),
      diskXml({ path, format: 'raw', bus: 'scsi', target: 'sdb', readonly: true }),
      diskXml({ path: '/img/s.qcow2', format: 'qcow2', bus: 'sata', target: 'sdc', readonly: false }),
    ];
    for (const xml of cases) assertValidDomainXml(domain(BOOT + xml + SCSI_CONTROLLER_XML), xml);
    const [rw, ro] = await Promise.all(
      cases.slice(0, 2).map(async (x) => diskDevices(await parseDomainXml(domain(x)))[0]),
    );
    assert.deepEqual(rw, {
      type: 'file',
      device: 'disk',
      target: 'vdb',
      bus: 'virtio',
      path: '/img/u-data.qcow2',
      format: 'qcow2',
      readonly: false,
    });
    assert.deepEqual(ro, {
      type: 'file',
      device: 'disk',
      target: 'sdb',
      bus: 'scsi',
      path,
      format: 'raw',
      readonly: true,
    });
  });

  test("withDisk puts a disk where libvirt's attach-device would: among its bus by target, else at the end; withoutDisk takes it out", async () => {
    const vdc = `<disk type='file' device='disk'><source file='/img/c'/><target dev='vdc' bus='virtio'/></disk>`;
    const parsed = await parseDomainXml(domain(BOOT + CDROM + vdc));
    const spec = (target: string, bus: 'virtio' | 'scsi' | 'sata') =>
      diskNode({ path: `/img/${target}`, format: 'qcow2', bus, target, readonly: false });
    const order = (d: XmlNode) =>
      diskDevices(d)
        .map((x) => x.target)
        .join(' ');
    assert.equal(
      order(withDisk(parsed, await spec('vdb', 'virtio'))),
      'vda sda vdb vdc',
      'just before the first virtio disk with a higher target',
    );
    assert.equal(order(withDisk(parsed, await spec('vdd', 'virtio'))), 'vda sda vdc vdd', 'after the last virtio disk');
    assert.equal(order(withDisk(parsed, await spec('sdb', 'sata'))), 'vda sda sdb vdc', 'after the sata cdrom');
    assert.equal(
      order(withDisk(parsed, await spec('sda', 'scsi'))),
      'vda sda vdc sda',
      'the first of its bus: at the end',
    );
    assert.equal(order(withoutDisk(parsed, 'sda')), 'vda vdc');
    assert.equal(order(parsed), 'vda sda vdc', 'the input is left alone');
    assert.deepEqual(['vda', 'vdz', 'vdaa', 'sdb', 'hda', 'x'].map(targetIndex), [0, 25, 26, 1, 0, -1]);
  });

  test('diskDevices reads every disk with its bus, in order; hasScsiController finds any scsi controller', async () => {
    const parsed = await parseDomainXml(VM);
    assert.deepEqual(
      diskDevices(parsed).map((d) => [d.target, d.bus, d.device]),
      [
        ['vda', 'virtio', 'disk'],
        ['sda', 'sata', 'cdrom'],
      ],
    );
    assert.equal(hasScsiController(parsed), false);
    assert.equal(
      hasScsiController(await parseDomainXml(domain(`<controller type='scsi' index='0' model='lsilogic'/>`))),
      true,
    );
    assert.equal(hasScsiController(await parseDomainXml(domain(`<controller type='sata' index='0'/>`))), false);
  });
});

// The core against a fake virsh/qemu-img: which commands run, in which order, and what is left after a failure.
describe('disk commands (fake virsh)', () => {
  const images = mkdtempSync(join(tmpdir(), 'vms-unit-disk-'));
  after(() => rmSync(images, { recursive: true, force: true }));
  const context = (runner: FakeRunner) => diskContext(images, runner);

  test('add a scsi disk to a shut-off VM: a virtio-scsi controller first, then the disk and its file in metadata.made, in one define', async () => {
    const path = join(images, 'u-data.qcow2');
    const fake = new FakeRunner([
      ...load(VM, 'shut off'),
      qemuImgCreate(2 ** 30),
      device('attach-device', ['--config'], /<controller type='scsi' index='0' model='virtio-scsi'\/>/),
      savedAgain(domain(BOOT + CDROM + SCSI_CONTROLLER_XML)),
      defined(new RegExp(`<target dev="sdb" bus="scsi"/>[^]*<vms:made>${path}</vms:made>`)),
    ]);
    const r = await addDisk(context(fake), { name: 'u', size: 2 ** 30, bus: 'scsi' });
    fake.done();
    assert.deepEqual(r, {
      name: 'u',
      target: 'sdb',
      bus: 'scsi',
      path: join(images, 'u-data.qcow2'),
      format: 'qcow2',
      size: 2 ** 30,
      readonly: false,
      live: false,
      destroyedWithVm: true,
      created: true,
    });
    rmSync(r.path);
  });

  test('add to a running VM plugs it in live too, on a target free in both definitions; sizes round up to whole sectors', async () => {
    const live = domain(
      BOOT + CDROM + `<disk type='file' device='disk'><source file='/tmp/x'/><target dev='vdb' bus='virtio'/></disk>`,
    );
    const fake = new FakeRunner([
      ...load(VM, 'running'),
      virsh(['dumpxml', 'u'], live),
      qemuImgCreate(1024 * 1024 + 512),
      device('attach-device', ['--live'], /<target dev='vdc' bus='virtio'\/>/),
      savedAgain(VM),
      defined(/<target dev="vdc" bus="virtio"\/>[^]*<vms:made>[^<]*u-data.qcow2<\/vms:made>/),
    ]);
    const r = await addDisk(context(fake), { name: 'u', size: 1024 * 1024 + 1, bus: 'virtio' });
    fake.done();
    assert.equal(r.live, true);
    assert.equal(r.size, 1024 * 1024 + 512);
    rmSync(r.path);
  });

  test('add: when the attach fails, the controller it added and the new file are removed again', async () => {
    const withController = domain(BOOT + CDROM + SCSI_CONTROLLER_XML);
    const fake = new FakeRunner([
      ...load(VM, 'shut off'),
      qemuImgCreate(2 ** 20),
      device('attach-device', ['--config'], /virtio-scsi/),
      savedAgain(withController),
      {
        ...defined(/bus="scsi"/),
        result: { exitCode: 1, stderr: 'error: Failed to define domain\nerror: internal error: something broke' },
      },
      ...load(withController, 'shut off'), // undo the attach: the disk is not there
      ...load(withController, 'shut off'), // undo the controller: it is
      device('detach-device', ['--config'], /virtio-scsi/),
    ]);
    await assert.rejects(
      addDisk(context(fake), { name: 'u', size: 2 ** 20, bus: 'scsi' }),
      /virsh define failed: .*something broke/,
    );
    fake.done();
    assert.deepEqual(
      readdirSync(images).filter((f) => f.endsWith('.qcow2')),
      [],
    );
  });

  test('add sata to a running VM is refused before anything is made', async () => {
    const fake = new FakeRunner([...load(VM, 'running'), virsh(['dumpxml', 'u'], VM)]);
    await assert.rejects(
      addDisk(context(fake), { name: 'u', size: 2 ** 20, bus: 'sata' }),
      (e: VmsError) => e.code === 'conflict' && /cannot be plugged into a running VM/.test(e.message),
    );
    fake.done();
    assert.equal(existsSync(join(images, 'u-data.qcow2')), false);
  });

  test('resize: shrinking is refused (usage), the same size changes nothing, growing a shut-off disk uses qemu-img with its format', async () => {
    const info = {
      cmd: 'qemu-img',
      args: ['info', '-U', '--output=json', '/img/u.qcow2'],
      result: { stdout: JSON.stringify({ filename: '/img/u.qcow2', format: 'qcow2', 'virtual-size': 2 ** 30 }) },
    };
    const shrink = new FakeRunner([...load(VM, 'shut off'), info]);
    await assert.rejects(
      resizeDisk(context(shrink), { name: 'u', disk: 'vda', size: 2 ** 29 }),
      (e: VmsError) => e.code === 'usage' && /vms does not shrink disks/.test(e.message),
    );
    shrink.done();
    const same = new FakeRunner([...load(VM, 'shut off'), info]);
    assert.equal((await resizeDisk(context(same), { name: 'u', disk: '/img/u.qcow2', size: 2 ** 30 })).changed, false);
    const grow = new FakeRunner([
      ...load(VM, 'shut off'),
      info,
      { cmd: 'qemu-img', args: ['resize', '-q', '-f', 'qcow2', '/img/u.qcow2', String(2 ** 31)] },
    ]);
    const r = await resizeDisk(context(grow), { name: 'u', disk: 'vda', size: 2 ** 31 });
    grow.done();
    assert.deepEqual(
      { from: r.from, to: r.to, changed: r.changed, live: r.live },
      { from: 2 ** 30, to: 2 ** 31, changed: true, live: false },
    );
  });

  test('resize of a read-only disk or a cdrom is refused', async () => {
    const ro = domain(
      BOOT +
        `<disk type='file' device='disk'><driver type='raw'/><source file='/img/ro.img'/><target dev='vdb' bus='virtio'/><readonly/></disk>`,
    );
    const fake = new FakeRunner([...load(ro, 'shut off')]);
    await assert.rejects(
      resizeDisk(context(fake), { name: 'u', disk: 'vdb', size: 2 ** 31 }),
      (e: VmsError) => e.code === 'conflict' && /read-only/.test(e.message),
    );
    const cdrom = new FakeRunner([...load(VM, 'shut off')]);
    await assert.rejects(
      resizeDisk(context(cdrom), { name: 'u', disk: 'sda', size: 2 ** 31 }),
      (e: VmsError) => e.code === 'notFound',
    );
  });

  test('detach refuses the boot disk and an unknown target, changing nothing', async () => {
    const boot = new FakeRunner([...load(VM, 'shut off')]);
    await assert.rejects(
      detachDisk(context(boot), { name: 'u', disk: 'vda', delete: false }),
      (e: VmsError) => e.code === 'conflict' && /boot disk/.test(e.message),
    );
    const unknown = new FakeRunner([...load(VM, 'shut off')]);
    await assert.rejects(
      detachDisk(context(unknown), { name: 'u', disk: 'vdq', delete: false }),
      (e: VmsError) => e.code === 'notFound' && /u has no disk vdq/.test(e.message),
    );
    boot.done();
    unknown.done();
  });

  describe('detach --delete: only a file vms made for the VM that nothing else needs', () => {
    const data = join(images, 'u-data.qcow2');
    const made = (files: string[]) =>
      `<metadata><vms:vm xmlns:vms="${VMS_NS}">${files.map((f) => `<vms:made>${f}</vms:made>`).join('')}</vms:vm></metadata>`;
    const withData = (files: string[]) =>
      domain(
        BOOT +
          `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${data}'/><target dev='vdb' bus='virtio'/></disk>`,
      ).replace('<devices>', `${made(files)}<devices>`);
    const chain = (path: string): Expected => ({
      cmd: 'qemu-img',
      args: ['info', '-U', '--backing-chain', '--output=json', path],
      result: { stdout: JSON.stringify([{ filename: path, format: 'qcow2' }]) },
    });
    const inUse = (others: string, answers: string[]): Expected[] => [
      virsh(['list', '--all', '--name'], `u\n${others}`),
      batchCall(['dumpxml u --inactive'], answers),
    ];

    test('a file the user attached (not in metadata.made) is refused before anything is read or changed', async () => {
      const fake = new FakeRunner(load(withData([]), 'shut off'));
      await assert.rejects(
        detachDisk(context(fake), { name: 'u', disk: 'vdb', delete: true }),
        (e: VmsError) =>
          e.code === 'conflict' && e.message === `vms will not delete ${data}: vms did not make it for u`,
      );
      fake.done();
    });

    test('a made file another VM uses is refused, naming it; an unused one is detached, unrecorded and deleted', async () => {
      writeFileSync(data, '');
      const other = domain(
        `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${data}'/><target dev='vdb' bus='virtio'/><readonly/></disk>`,
      ).replace('<name>u</name>', '<name>o</name>');
      const xml = withData([data]);
      const refused = new FakeRunner([
        ...load(xml, 'shut off'),
        ...inUse('o\n', [xml, xml, NO_SNAPSHOTS, '', other, other, NO_SNAPSHOTS, '']),
        chain(data),
      ]);
      await assert.rejects(
        detachDisk(context(refused), { name: 'u', disk: 'vdb', delete: true }),
        (e: VmsError) => e.message === `vms will not delete ${data}: it is also o's read-only disk`,
      );
      refused.done();
      assert.ok(existsSync(data));

      const fake = new FakeRunner([
        ...load(xml, 'shut off'),
        ...inUse('', [xml, xml, NO_SNAPSHOTS, '']),
        chain(data),
        savedAgain(xml),
        defined((text) => !text.includes('u-data') && text.includes('<vms:vm')),
      ] as Expected[]);
      const r = await detachDisk(context(fake), { name: 'u', disk: 'vdb', delete: true });
      fake.done();
      assert.deepEqual([r.deleted, existsSync(data)], [true, false]);
    });
  });

  describe('attach of a file a VM uses', () => {
    const image = join(images, 'shared.qcow2');
    const user = (name: string, disk: string) => domain(disk).replace('<name>u</name>', `<name>${name}</name>`);
    const qcow2Disk = (path: string) =>
      `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${path}'/><target dev='vda' bus='virtio'/></disk>`;
    const chain = (top: string, files: string[]): Expected => ({
      cmd: 'qemu-img',
      args: ['info', '-U', '--backing-chain', '--output=json', top],
      result: { stdout: JSON.stringify([top, ...files].map((filename) => ({ filename, format: 'qcow2' }))) },
    });
    const info: Expected = {
      cmd: 'qemu-img',
      args: ['info', '-U', '--output=json', image],
      result: { stdout: JSON.stringify({ filename: image, format: 'qcow2', 'virtual-size': 2 ** 20 }) },
    };
    /** u (shut off, no disk of its own here) and o, whose disk stands on `image`; u has a snapshot naming `snapDisk`. */
    const others = (snapshot?: string): Expected[] => {
      const top = join(images, 'o.qcow2');
      writeFileSync(top, '');
      const snap =
        snapshot &&
        `<domainsnapshot><name>s1</name>${user('u', `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${snapshot}'/><target dev='vdb' bus='virtio'/></disk>`)}</domainsnapshot>`;
      return [
        virsh(['list', '--all', '--name'], 'u\no\n'),
        batchCall(
          ['dumpxml o --inactive'],
          [
            VM,
            VM,
            snap ? `${NO_SNAPSHOTS} s1  2026  shutoff\n` : NO_SNAPSHOTS,
            snap ? 's1\n' : '',
            user('o', qcow2Disk(top)),
            user('o', qcow2Disk(top)),
            NO_SNAPSHOTS,
            '',
          ],
        ),
        ...(snap ? [batchCall(['snapshot-dumpxml u s1'], [snap])] : []),
        chain(top, [image]),
      ];
    };

    test('a base under another VM is refused writable, with the way out; --readonly attaches it', async () => {
      writeFileSync(image, '');
      const refused = new FakeRunner([...load(VM, 'shut off'), ...others()]);
      await assert.rejects(
        attachDisk(context(refused), { name: 'u', path: image, bus: 'virtio', readonly: false }),
        (e: VmsError) =>
          e.code === 'conflict' &&
          e.message === `${image} is in use: it is a base under o's disk ${join(images, 'o.qcow2')}` &&
          forCommandLine(e).hint ===
            `attach a copy of it (cp --sparse=always ${image} COPY), or attach it with --readonly: the VMs that use it only read it`,
      );
      refused.done();

      const readonly = new FakeRunner([
        ...load(VM, 'shut off'),
        ...others(),
        info,
        savedAgain(VM),
        defined(/<source file="[^"]*shared.qcow2"\/>\s*<target dev="vdb" bus="virtio"\/>\s*<readonly\/>/),
      ]);
      const r = await attachDisk(context(readonly), { name: 'u', path: image, bus: 'virtio', readonly: true });
      readonly.done();
      assert.deepEqual([r.target, r.readonly, r.destroyedWithVm], ['vdb', true, false]);
    });

    test('its own disk from before, named by one of its snapshots, may be attached again', async () => {
      const own = join(images, 'u-old.raw');
      writeFileSync(own, '');
      const ownInfo: Expected = {
        cmd: 'qemu-img',
        args: ['info', '-U', '--output=json', own],
        result: { stdout: JSON.stringify({ filename: own, format: 'raw', 'virtual-size': 2 ** 20 }) },
      };
      const fake = new FakeRunner([
        ...load(VM, 'shut off'),
        ...others(own),
        ownInfo,
        savedAgain(VM),
        defined(/u-old\.raw/),
      ]);
      assert.equal(
        (await attachDisk(context(fake), { name: 'u', path: own, bus: 'virtio', readonly: false })).path,
        own,
      );
      fake.done();
    });
  });
});
