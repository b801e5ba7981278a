// `vms disk detach` against a fake virsh: where a disk goes out from, which file is deleted (only one vms made that
// nothing needs), the wait for the guest to let go; and the undo steps of a plug (unplugDisk, removeScsiController).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { detachDisk, removeScsiController, unplugDisk } from '../../../src/core/devices/disk.js';
import type { Progress } from '../../../src/core/progress.js';
import { SCSI_CONTROLLER_XML } from '../../../src/libvirt/disk-xml.js';
import { FakeRunner } from '../../helpers/fake-runner.js';
import {
  BOOT,
  CDROM,
  defined,
  device,
  diskContext,
  diskElement,
  domain,
  inUseCalls,
  liveAgain,
  load,
  madeIn,
  recordingProgress,
  savedAgain,
  VM,
  withMade,
  failure,
  facts,
} from '../../helpers/disk-fake.js';
import { batchCall } from '../../helpers/virsh-fake.js';

const images = mkdtempSync(join(tmpdir(), 'vms-unit-disk-detach-'));
after(() => rmSync(images, { recursive: true, force: true }));
const context = (runner: FakeRunner, progress?: Progress) => diskContext(images, runner, progress);
const DATA = join(images, 'u-data.qcow2');
const OTHER = join(images, 'u-data-2.qcow2');
const VDB = diskElement('vdb', DATA);
const WITH_VDB = domain(BOOT + CDROM + VDB);
const detachVdb = (flags: string[]) =>
  device('detach-device', flags, /^<disk device='disk'><target dev='vdb'\/><\/disk>$/);
const hasVdb = (t: string) => t.includes(`<target dev="vdb"`);

describe('disk detach', () => {
  test('from a running VM: out of it live and out of the saved definition, then waited for until the guest lets go', async () => {
    const rec = recordingProgress();
    const fake = new FakeRunner([
      ...load(WITH_VDB, 'running', WITH_VDB),
      detachVdb(['--live']),
      savedAgain(WITH_VDB),
      defined((t) => !hasVdb(t) && t.includes('/img/u.qcow2')),
      liveAgain(WITH_VDB), // the guest still has it
      liveAgain(VM),
    ]);
    const r = await detachDisk(context(fake, rec.progress), { name: 'u', disk: 'vdb', delete: false });
    fake.done();
    assert.deepEqual(r, { name: 'u', target: 'vdb', path: DATA, inConfig: true, live: true, deleted: false });
    assert.deepEqual(rec.steps, ['Detaching vdb from u']);
  });

  test('a disk only the running VM has, on a VM with no disk saved: unplugged live only, the saved definition left alone', async () => {
    const fake = new FakeRunner([
      ...load(domain(CDROM), 'running', domain(CDROM + VDB)),
      detachVdb(['--live']),
      liveAgain(domain(CDROM)),
    ]);
    const r = await detachDisk(context(fake), { name: 'u', disk: DATA, delete: false });
    fake.done();
    assert.deepEqual([r.inConfig, r.live], [false, true]);
  });

  test('by path: the disk with that file, not the first one', async () => {
    const fake = new FakeRunner([...load(WITH_VDB, 'shut off'), savedAgain(WITH_VDB), defined((t) => !hasVdb(t))]);
    assert.equal((await detachDisk(context(fake), { name: 'u', disk: DATA, delete: false })).target, 'vdb');
    fake.done();
  });

  test('the boot disk is the first disk saved, even behind a cdrom', async () => {
    const fake = new FakeRunner(load(domain(CDROM + BOOT), 'shut off'));
    const err = await failure(detachDisk(context(fake), { name: 'u', disk: 'vda', delete: false }), fake);
    assert.deepEqual(facts(err), {
      code: 'conflict',
      message: "vda is u's boot disk: vms does not detach it",
      hint: '`vms destroy u` removes the VM with its disk',
      reason: undefined,
    });
  });

  test('an unknown disk is refused with where to look', async () => {
    const fake = new FakeRunner(load(VM, 'shut off'));
    const err = await failure(detachDisk(context(fake), { name: 'u', disk: 'vdq', delete: false }), fake);
    assert.equal(err.hint, '`vms disk list u` shows its disks (by target, e.g. vdb, or by path)');
  });

  test('a sata disk cannot be unplugged from a running VM', async () => {
    const sata = domain(BOOT + diskElement('sdb', DATA, { bus: 'sata' }));
    const fake = new FakeRunner(load(sata, 'running', sata));
    const err = await failure(detachDisk(context(fake), { name: 'u', disk: 'sdb', delete: false }), fake);
    assert.deepEqual(facts(err), {
      code: 'conflict',
      message: "a sata disk cannot be unplugged from a running VM (QEMU's AHCI has no hotplug)",
      hint: 'stop u first (`vms stop u`)',
      reason: undefined,
    });
  });

  test('without --delete a file vms made stays, and stays recorded (for gc)', async () => {
    writeFileSync(DATA, '');
    const xml = withMade(WITH_VDB, [DATA]);
    const fake = new FakeRunner([
      ...load(xml, 'shut off'),
      savedAgain(xml),
      defined((t) => !hasVdb(t) && madeIn(t).join() === DATA),
    ]);
    const r = await detachDisk(context(fake), { name: 'u', disk: 'vdb', delete: false });
    fake.done();
    assert.deepEqual([r.deleted, existsSync(DATA)], [false, true]);
    rmSync(DATA);
  });

  test('--delete unrecords only that file and deletes it (already gone is fine); steps named', async () => {
    const xml = withMade(WITH_VDB, [DATA, OTHER]);
    const rec = recordingProgress();
    const fake = new FakeRunner([
      ...load(xml, 'shut off'),
      ...inUseCalls(xml, []),
      savedAgain(xml),
      defined((t) => !hasVdb(t) && madeIn(t).join() === OTHER),
    ]);
    const r = await detachDisk(context(fake, rec.progress), { name: 'u', disk: 'vdb', delete: true });
    fake.done();
    assert.equal(r.deleted, true);
    assert.deepEqual(rec.steps, ['Detaching vdb from u', `Deleting ${DATA}`]);
  });

  describe('--delete is refused, before anything changes', () => {
    const notDeletable = (why: string) => ({
      code: 'conflict',
      message: `vms will not delete ${DATA}: ${why}`,
      hint: 'nothing was changed; detach it and keep the file',
      reason: 'disk.notDeletable',
    });

    test('for a made file only the running VM has (it is not in the saved definition)', async () => {
      const fake = new FakeRunner(load(withMade(VM, [DATA]), 'running', WITH_VDB));
      const err = await failure(detachDisk(context(fake), { name: 'u', disk: 'vdb', delete: true }), fake);
      assert.deepEqual(facts(err), notDeletable('vms did not make it for u'));
    });

    test("for a file one of the VM's snapshots names (a revert would want it back)", async () => {
      writeFileSync(DATA, '');
      const raw = domain(BOOT + diskElement('vdb', DATA, { format: 'raw' })); // raw: no backing chain to read
      const xml = withMade(raw, [DATA]);
      const fake = new FakeRunner([...load(xml, 'shut off'), ...inUseCalls(xml, [], { s1: raw })]);
      const err = await failure(detachDisk(context(fake), { name: 'u', disk: 'vdb', delete: true }), fake);
      assert.deepEqual(facts(err), notDeletable("it is also u's disk (in its snapshot s1)"));
      assert.ok(existsSync(DATA));
      rmSync(DATA);
    });

    test("for a base under another of the VM's disks", async () => {
      const top = join(images, 'top.qcow2');
      writeFileSync(top, '');
      const xml = withMade(domain(BOOT + diskElement('vdb', DATA, { format: 'raw' }) + diskElement('vdc', top)), [
        DATA,
      ]);
      const chain = [top, DATA].map((filename) => ({ filename, format: 'qcow2' }));
      const fake = new FakeRunner([
        ...load(xml, 'shut off'),
        ...inUseCalls(xml, []),
        {
          cmd: 'qemu-img',
          args: ['info', '-U', '--backing-chain', '--output=json', top],
          result: { stdout: JSON.stringify(chain) },
        },
      ]);
      const err = await failure(detachDisk(context(fake), { name: 'u', disk: 'vdb', delete: true }), fake);
      assert.deepEqual(facts(err), notDeletable(`it is also a base under u's disk ${top}`));
      rmSync(top);
    });

    test('for a disk without a file, named as such', async () => {
      const fake = new FakeRunner(
        load(domain(BOOT + `<disk type='file' device='disk'><target dev='vdb' bus='virtio'/></disk>`), 'shut off'),
      );
      const err = await failure(detachDisk(context(fake), { name: 'u', disk: 'vdb', delete: true }), fake);
      assert.equal(err.message, 'vms will not delete that disk: vms did not make it for u');
    });

    test('while a VM that might use it cannot be read', async () => {
      const xml = withMade(WITH_VDB, [DATA]);
      const o = { name: 'o', xml: domain(BOOT, 'o'), snapshotsFail: true };
      const fake = new FakeRunner([
        ...load(xml, 'shut off'),
        ...inUseCalls(xml, [o]),
        batchCall(['dumpxml o --inactive'], [o.xml, '', '', '']), // read once more: still unreadable
      ]);
      const err = await failure(detachDisk(context(fake), { name: 'u', disk: 'vdb', delete: true }), fake);
      assert.deepEqual(
        facts(err),
        notDeletable('VM o might use it and cannot be read (virsh cannot list its snapshots)'),
      );
    });
  });

  test('a guest that does not let go in time: a timeout that says what is done and what is not', async (t) => {
    const fake = new FakeRunner([
      ...load(WITH_VDB, 'running', WITH_VDB),
      detachVdb(['--live']),
      savedAgain(WITH_VDB),
      defined((text) => !hasVdb(text)),
      {
        ...liveAgain(WITH_VDB),
        args: (a) => {
          // The clock jumps past the wait's deadline while the guest is asked.
          const now = Date.now();
          t.mock.method(Date, 'now', () => now + 31_000);
          return a.join(' ') === `-c qemu:///system dumpxml u`;
        },
      },
    ]);
    const err = await failure(detachDisk(context(fake), { name: 'u', disk: 'vdb', delete: false }), fake);
    assert.deepEqual(facts(err), {
      code: 'timeout',
      message: "u's guest has not released vdb within 30s",
      hint: 'it is out of the saved definition and goes from the running VM when the guest lets go of it (or at the next stop); no file was deleted',
      reason: undefined,
    });
  });
});

describe('the undo of a plug', () => {
  const WITH_SCSI = domain(BOOT + SCSI_CONTROLLER_XML);
  const controller = (flags: string[]) =>
    device('detach-device', flags, /^<controller type='scsi' index='0' model='virtio-scsi'\/>$/);

  test('unplugDisk of a disk vms made: out of the running VM, out of the saved definition and its metadata.made', async () => {
    const xml = withMade(WITH_VDB, [DATA, OTHER]);
    const fake = new FakeRunner([
      ...load(xml, 'running', WITH_VDB),
      detachVdb(['--live']),
      savedAgain(xml),
      defined((t) => !hasVdb(t) && madeIn(t).join() === OTHER),
    ]);
    await unplugDisk(context(fake), 'u', 'vdb', DATA, true);
    fake.done();
  });

  test('unplugDisk of an attached file leaves metadata.made as it is', async () => {
    const xml = withMade(WITH_VDB, [DATA]);
    const fake = new FakeRunner([
      ...load(xml, 'shut off'),
      savedAgain(xml),
      defined((t) => !hasVdb(t) && madeIn(t).join() === DATA),
    ]);
    await unplugDisk(context(fake), 'u', 'vdb', DATA, false);
    fake.done();
  });

  test('unplugDisk of a made file whose disk never reached the definition: only its record goes', async () => {
    const xml = withMade(VM, [DATA, OTHER]);
    const fake = new FakeRunner([
      ...load(xml, 'shut off'),
      savedAgain(xml),
      defined((t) => madeIn(t).join() === OTHER),
    ]);
    await unplugDisk(context(fake), 'u', 'vdb', DATA, true);
    fake.done();
  });

  test('unplugDisk touches no disk that is not the one plugged (another file at its target, its file at another)', async () => {
    const live = domain(BOOT + diskElement('vdb', OTHER) + diskElement('vdc', DATA));
    const fake = new FakeRunner(load(domain(BOOT + diskElement('vdc', DATA)), 'running', live));
    await unplugDisk(context(fake), 'u', 'vdb', DATA, true);
    fake.done();
  });

  test('removeScsiController takes the controller out where it was added and still is', async () => {
    const cases: [{ live: boolean; config: boolean }, string, string, string[]][] = [
      [{ live: true, config: true }, WITH_SCSI, WITH_SCSI, ['--live', '--config']],
      [{ live: true, config: true }, VM, WITH_SCSI, ['--live']],
      [{ live: false, config: true }, WITH_SCSI, WITH_SCSI, ['--config']],
    ];
    for (const [lacking, saved, live, flags] of cases) {
      const fake = new FakeRunner([...load(saved, 'running', live), controller(flags)]);
      await removeScsiController(context(fake), 'u', lacking);
      fake.done();
    }
    // Stopped since: the running VM and its controller are gone; the saved definition's is taken out.
    const stopped = new FakeRunner([...load(WITH_SCSI, 'shut off'), controller(['--config'])]);
    await removeScsiController(context(stopped), 'u', { live: true, config: true });
    stopped.done();
    const gone = new FakeRunner(load(VM, 'running', WITH_SCSI));
    await removeScsiController(context(gone), 'u', { live: false, config: true });
    gone.done();
  });
});
