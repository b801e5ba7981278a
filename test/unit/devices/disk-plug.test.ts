// `vms disk add` and `vms disk attach` against a fake virsh and qemu-img: the steps they name, the commands they run,
// what a failure is explained as, and which file is refused and why.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { addDisk, attachDisk } from '../../../src/core/devices/disk.js';
import { leftBehind } from '../../../src/core/ops/undo.js';
import type { Progress } from '../../../src/core/progress.js';
import { VmsError } from '../../../src/errors.js';
import { SCSI_CONTROLLER_XML, type DiskBus } from '../../../src/libvirt/disk-xml.js';
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
  load,
  madeIn,
  qemuImgCreate,
  qemuImgInfo,
  recordingProgress,
  savedAgain,
  virsh,
  VM,
  withMade,
  type OtherVm,
  failure,
  facts,
} from '../../helpers/disk-fake.js';

const images = mkdtempSync(join(tmpdir(), 'vms-unit-disk-plug-'));
after(() => rmSync(images, { recursive: true, force: true }));
const context = (runner: FakeRunner, progress?: Progress) => diskContext(images, runner, progress);
const WITH_SCSI = domain(BOOT + CDROM + SCSI_CONTROLLER_XML);
const DATA = join(images, 'u-data.qcow2');
const qcow2Files = () => readdirSync(images).filter((f) => f.endsWith('.qcow2'));

describe('disk add', () => {
  test('a sata disk on a shut-off VM: the file is made, then attached in the saved definition alone, steps named', async () => {
    const rec = recordingProgress();
    const fake = new FakeRunner([
      ...load(VM, 'shut off'),
      qemuImgCreate(2 ** 20),
      savedAgain(VM),
      defined((t) => /<target dev="sdb" bus="sata"\/>/.test(t) && madeIn(t).join() === DATA),
    ]);
    const r = await addDisk(context(fake, rec.progress), { name: 'u', size: 2 ** 20, bus: 'sata' });
    fake.done();
    assert.deepEqual(rec.steps, [`Creating disk ${DATA} (1M)`, 'Attaching sdb to u']);
    assert.deepEqual([r.target, r.live, r.destroyedWithVm, r.created], ['sdb', false, true, true]);
    rmSync(DATA);
  });

  test('a scsi disk on a running VM without a controller: the controller goes in live and saved, then the disk', async () => {
    const rec = recordingProgress();
    const fake = new FakeRunner([
      ...load(VM, 'running', VM),
      qemuImgCreate(2 ** 20),
      device('attach-device', ['--live', '--config'], /virtio-scsi/),
      device('attach-device', ['--live'], /<target dev='sdb' bus='scsi'\/>/),
      savedAgain(WITH_SCSI),
      defined(/<target dev="sdb" bus="scsi"\/>/),
    ]);
    const r = await addDisk(context(fake, rec.progress), { name: 'u', size: 2 ** 20, bus: 'scsi' });
    fake.done();
    assert.deepEqual(rec.steps, [
      `Creating disk ${DATA} (1M)`,
      'Adding a virtio-scsi controller to u',
      'Attaching sdb to u',
    ]);
    assert.equal(r.live, true);
    rmSync(DATA);
  });

  test('a scsi disk on a running VM that has the controller only live: it goes into the saved definition alone', async () => {
    const fake = new FakeRunner([
      ...load(VM, 'running', WITH_SCSI),
      qemuImgCreate(2 ** 20),
      device('attach-device', ['--config'], /virtio-scsi/),
      device('attach-device', ['--live'], /bus='scsi'/),
      savedAgain(WITH_SCSI),
      defined(/bus="scsi"/),
    ]);
    await addDisk(context(fake), { name: 'u', size: 2 ** 20, bus: 'scsi' });
    fake.done();
    rmSync(DATA);
  });

  test('a scsi disk on a VM that has its controller: no controller is added', async () => {
    const rec = recordingProgress();
    const fake = new FakeRunner([
      ...load(WITH_SCSI, 'shut off'),
      qemuImgCreate(2 ** 20),
      savedAgain(WITH_SCSI),
      defined(/bus="scsi"/),
    ]);
    await addDisk(context(fake, rec.progress), { name: 'u', size: 2 ** 20, bus: 'scsi' });
    fake.done();
    assert.deepEqual(rec.steps, [`Creating disk ${DATA} (1M)`, 'Attaching sdb to u']);
    rmSync(DATA);
  });

  test('an undo that fails says which step it was: the disk first, then the controller (newest first)', async () => {
    const broken = { exitCode: 1, stderr: 'error: internal error: something broke' };
    const fake = new FakeRunner([
      ...load(VM, 'shut off'),
      qemuImgCreate(2 ** 20),
      device('attach-device', ['--config'], /virtio-scsi/),
      savedAgain(WITH_SCSI),
      defined(/bus="scsi"/, broken),
      { ...virsh(['dumpxml', 'u', '--inactive', '--security-info']), result: broken }, // undo of the disk
      { ...virsh(['dumpxml', 'u', '--inactive', '--security-info']), result: broken }, // undo of the controller
    ]);
    const err = await failure(addDisk(context(fake), { name: 'u', size: 2 ** 20, bus: 'scsi' }), fake);
    assert.deepEqual(
      leftBehind(err).map((l) => l.slice(0, l.indexOf(':'))),
      ['detach sdb from u', 'remove the scsi controller from u'],
    );
    assert.deepEqual(qcow2Files(), [], 'the new file is removed all the same');
  });

  test('a sata disk on a running VM is refused, with the buses that can be plugged in', async () => {
    const fake = new FakeRunner(load(VM, 'running', VM));
    const err = await failure(addDisk(context(fake), { name: 'u', size: 2 ** 20, bus: 'sata' }), fake);
    assert.deepEqual(facts(err), {
      code: 'conflict',
      message: "a sata disk cannot be plugged into a running VM (QEMU's AHCI has no hotplug)",
      hint: 'stop u first (`vms stop u`), or use --bus virtio or scsi',
      reason: undefined,
    });
  });
});

describe('disk add: a refused plug is explained, and everything made is taken back', () => {
  const NO_SLOTS = 'error: Failed to attach device\nerror: internal error: No more available PCI slots';
  const STOP = 'stop u and try again (libvirt adds slots to a shut-off VM)';
  const NO_SLOT_MESSAGE = 'u has no free PCIe slot left to plug the disk into while it runs';

  /** addDisk on a running VM (saved and live definitions) whose live attach of the disk fails with `stderr`. */
  async function liveAttachFails(saved: string, live: string, bus: DiskBus, stderr: string): Promise<VmsError> {
    const fake = new FakeRunner([
      ...load(saved, 'running', live),
      qemuImgCreate(2 ** 20),
      device('attach-device', ['--live'], /<disk/, stderr),
      ...load(saved, 'running', live), // the undo: the disk is in neither definition
    ]);
    const err = await failure(addDisk(context(fake), { name: 'u', size: 2 ** 20, bus }), fake);
    assert.deepEqual(qcow2Files(), []);
    return err;
  }

  test('no PCIe slot for a virtio disk while a scsi controller runs: scsi is offered', async () => {
    const err = await liveAttachFails(WITH_SCSI, WITH_SCSI, 'virtio', NO_SLOTS);
    assert.deepEqual(facts(err), {
      code: 'conflict',
      message: NO_SLOT_MESSAGE,
      hint: `${STOP}, or use --bus scsi: its controller holds many disks`,
      reason: undefined,
    });
  });

  test('no PCIe slot for a virtio disk and no scsi controller running: only stopping is offered', async () => {
    const err = await liveAttachFails(WITH_SCSI, VM, 'virtio', NO_SLOTS);
    assert.deepEqual(facts(err), { code: 'conflict', message: NO_SLOT_MESSAGE, hint: STOP, reason: undefined });
  });

  test('no PCIe slot for a scsi disk: scsi is not offered again', async () => {
    const err = await liveAttachFails(WITH_SCSI, WITH_SCSI, 'scsi', NO_SLOTS);
    assert.deepEqual(facts(err), { code: 'conflict', message: NO_SLOT_MESSAGE, hint: STOP, reason: undefined });
  });

  test("QEMU's write lock taken by another VM: said in plain words", async () => {
    const locked = 'error: internal error: unable to execute QEMU command: Failed to get "write" lock';
    const err = await liveAttachFails(VM, VM, 'virtio', locked);
    assert.deepEqual(facts(err), {
      code: 'conflict',
      message: `${DATA} is in use by a running VM (QEMU holds its lock)`,
      hint: 'stop the VM that uses it first, or attach a copy of it',
      reason: undefined,
    });
  });

  test('a failure that is not a failed command (a conflict) passes as it is, even with a slot reason', async () => {
    const err = await liveAttachFails(VM, VM, 'virtio', `error: Requested operation is not valid: domain: ${NO_SLOTS}`);
    assert.equal(err.code, 'conflict');
    assert.equal(err.reason, 'pci.noSlots');
    assert.doesNotMatch(err.message, /no free PCIe slot/);
  });

  test('an unexplained failure passes as it is', async () => {
    const err = await liveAttachFails(VM, VM, 'virtio', 'error: internal error: something broke');
    assert.deepEqual(
      [err.code, err.message],
      ['failed', 'virsh attach-device failed: internal error: something broke'],
    );
  });

  test('no PCIe slot for the scsi controller: only stopping is offered, and nothing is left', async () => {
    const fake = new FakeRunner([
      ...load(VM, 'running', VM),
      qemuImgCreate(2 ** 20),
      device('attach-device', ['--live', '--config'], /virtio-scsi/, NO_SLOTS),
      ...load(VM, 'running', VM), // the undo: no controller came in
    ]);
    const err = await failure(addDisk(context(fake), { name: 'u', size: 2 ** 20, bus: 'scsi' }), fake);
    assert.deepEqual(facts(err), { code: 'conflict', message: NO_SLOT_MESSAGE, hint: STOP, reason: undefined });
    assert.deepEqual(qcow2Files(), []);
  });
});

describe('disk attach', () => {
  const dir = join(images, 'attach');
  mkdirSync(dir);
  let n = 0;
  /** A new file (of `mode`) for one test. */
  const newFile = (mode = 0o644) => {
    const path = join(dir, `f${++n}.img`);
    writeFileSync(path, '');
    chmodSync(path, mode);
    return path;
  };
  const attach = (fake: FakeRunner, path: string, bus: DiskBus = 'virtio', readonly = false, progress?: Progress) =>
    attachDisk(context(fake, progress), { name: 'u', path, bus, readonly });
  const rawInfo = (path: string, format = 'raw') => qemuImgInfo(path, { format, 'virtual-size': 3 * 2 ** 20 });

  test('read-only on the sata bus is refused before anything is read', async () => {
    const fake = new FakeRunner([]);
    const err = await failure(attach(fake, newFile(), 'sata', true), fake);
    assert.deepEqual(facts(err), {
      code: 'usage',
      message: 'a read-only disk cannot be on the sata bus (libvirt refuses it)',
      hint: 'put it on the virtio or scsi bus',
      reason: 'disk.readonlySata',
    });
  });

  test('no such file, or a directory, is refused', async () => {
    const missing = join(dir, 'missing.img');
    const none = new FakeRunner(load(VM, 'shut off'));
    assert.deepEqual(facts(await failure(attach(none, missing))), {
      code: 'notFound',
      message: `no file ${missing}`,
      hint: 'give the path of an existing disk image; `vms disk add` makes a new one',
      reason: undefined,
    });
    none.done();
    const folder = new FakeRunner(load(VM, 'shut off'));
    assert.deepEqual(facts(await failure(attach(folder, dir))), {
      code: 'usage',
      message: `${dir} is not a regular file`,
      hint: 'vms attaches disk image files (qcow2 or raw)',
      reason: undefined,
    });
    folder.done();
  });

  test('a file the VM has already, saved or only live, is refused naming its target', async () => {
    const path = newFile();
    const saved = new FakeRunner(load(domain(BOOT + diskElement('vdc', path)), 'shut off'));
    const hint = '`vms disk list u` shows its disks';
    assert.deepEqual(facts(await failure(attach(saved, path))), {
      code: 'conflict',
      message: `${path} is already attached to u as vdc`,
      hint,
      reason: undefined,
    });
    saved.done();
    const live = new FakeRunner(load(VM, 'running', domain(BOOT + diskElement('vdd', path))));
    assert.equal((await failure(attach(live, path), live)).message, `${path} is already attached to u as vdd`);
  });

  test('a file without write permission is attached read-only only', async () => {
    const path = newFile(0o444);
    const rec = recordingProgress();
    const fake = new FakeRunner([...load(VM, 'shut off'), ...inUseCalls(VM, [])]);
    const err = await failure(attach(fake, path, 'virtio', false, rec.progress), fake);
    assert.deepEqual(facts(err), {
      code: 'conflict',
      message: `${path} is read-only (a clone's base?)`,
      hint: 'attach it read-only, or attach a copy of it',
      reason: 'disk.readOnlyFile',
    });
    assert.deepEqual(rec.steps, ['Checking which VMs use it']);
    const readonly = new FakeRunner([
      ...load(VM, 'shut off'),
      ...inUseCalls(VM, []),
      rawInfo(path),
      savedAgain(VM),
      defined(/<readonly\/>/),
    ]);
    assert.equal((await attach(readonly, path, 'virtio', true)).readonly, true);
    readonly.done();
  });

  test('a sata disk on a running VM is refused after the checks, with the buses that can be plugged in', async () => {
    const path = newFile();
    const fake = new FakeRunner([...load(VM, 'running', VM), ...inUseCalls(VM, [])]);
    const err = await failure(attach(fake, path, 'sata'), fake);
    assert.equal(err.hint, 'stop u first (`vms stop u`), or use --bus virtio or scsi');
  });

  test('an image neither qcow2 nor raw is refused, with the conversion that makes it one', async () => {
    const path = newFile();
    const fake = new FakeRunner([...load(VM, 'shut off'), ...inUseCalls(VM, []), rawInfo(path, 'vmdk')]);
    assert.deepEqual(facts(await failure(attach(fake, path))), {
      code: 'usage',
      message: `${path} is a vmdk image: vms attaches qcow2 and raw images`,
      hint: `convert it: qemu-img convert -O qcow2 ${path} NEW.qcow2`,
      reason: undefined,
    });
    fake.done();
  });

  test("a user's file is attached as it is: its size from qemu-img, not recorded as vms's, not destroyed with the VM", async () => {
    const path = newFile();
    const rec = recordingProgress();
    const fake = new FakeRunner([
      ...load(VM, 'shut off'),
      ...inUseCalls(VM, []),
      rawInfo(path),
      savedAgain(VM),
      defined((t) => t.includes(`<source file="${path}"/>`) && madeIn(t).length === 0),
    ]);
    const r = await attach(fake, path, 'virtio', false, rec.progress);
    fake.done();
    assert.deepEqual(r, {
      name: 'u',
      target: 'vdb',
      bus: 'virtio',
      path,
      format: 'raw',
      size: 3 * 2 ** 20,
      readonly: false,
      live: false,
      destroyedWithVm: false,
      created: false,
    });
    assert.deepEqual(rec.steps, ['Checking which VMs use it', 'Attaching vdb to u']);
  });

  test('a file vms made for the VM (detached, kept) goes with it again when attached writable, not read-only', async () => {
    const path = newFile();
    const xml = withMade(VM, [path]);
    const again = (readonly: boolean) =>
      new FakeRunner([
        ...load(xml, 'shut off'),
        ...inUseCalls(xml, []),
        rawInfo(path),
        savedAgain(xml),
        // <readonly/>: the cdrom's, and the disk's when attached read-only.
        defined((t) => madeIn(t).join() === path && t.split('<readonly/>').length === (readonly ? 3 : 2)),
      ]);
    const writable = again(false);
    assert.equal((await attach(writable, path)).destroyedWithVm, true);
    writable.done();
    const readonly = again(true);
    assert.equal((await attach(readonly, path, 'virtio', true)).destroyedWithVm, false);
    readonly.done();
  });

  describe('a file some VM uses', () => {
    const vm = (name: string, disks: string): OtherVm => ({ name, xml: domain(disks, name) });
    const refused = async (path: string, others: OtherVm[], readonly: boolean, uSnapshots = {}) => {
      const fake = new FakeRunner([...load(VM, 'shut off'), ...inUseCalls(VM, others, uSnapshots)]);
      const err = await failure(attach(fake, path, 'virtio', readonly), fake);
      return err;
    };
    const copy = (path: string, shutOff = '') => `attach a copy of it (cp --sparse=always ${path} COPY${shutOff})`;

    test('one another VM writes is refused even read-only, naming the writer first and the others after', async () => {
      const path = newFile();
      const others = [
        vm('o', diskElement('vdb', path, { format: 'raw', readonly: true })),
        vm('p', diskElement('vdb', path, { format: 'raw' })),
        vm('q', diskElement('vdb', path, { format: 'raw', readonly: true })),
      ];
      const err = await refused(path, others, true);
      assert.deepEqual(facts(err), {
        code: 'conflict',
        message: `${path} is in use: it is p's disk, and used by o, q`,
        hint: `${copy(path, ', with p shut off')}; vms attaches no file another VM writes, not even read-only`,
        reason: 'disk.inUse',
      });
      assert.deepEqual(err.data, { copy: copy(path, ', with p shut off') });
    });

    test('one other VMs only read is refused writable, offering read-only', async () => {
      const path = newFile();
      const ro = diskElement('vdb', path, { format: 'raw', readonly: true });
      const err = await refused(path, [vm('o', ro), vm('p', ro)], false);
      assert.deepEqual(facts(err), {
        code: 'conflict',
        message: `${path} is in use: it is o's read-only disk, and used by p`,
        hint: `${copy(path)}, or attach it read-only: the VMs that use it only read it`,
        reason: 'disk.inUseReadable',
      });
    });

    test("one named by another VM's snapshot is refused", async () => {
      const path = newFile();
      const o = { ...vm('o', BOOT), snapshots: { s1: domain(diskElement('vdb', path, { format: 'raw' }), 'o') } };
      const err = await refused(path, [o], false);
      assert.equal(err.message, `${path} is in use: it is o's disk (in its snapshot s1)`);
    });

    test("one named by the VM's own snapshot as anything but a disk (its ISO) is refused", async () => {
      const path = newFile();
      const iso = `<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='${path}'/><target dev='sda' bus='sata'/><readonly/></disk>`;
      const err = await refused(path, [], false, { s1: domain(BOOT + iso) });
      assert.equal(err.message, `${path} is in use: it is u's ISO (cdrom) (in its snapshot s1)`);
    });

    test('its own current disk under another name (a symlink) is refused', async () => {
      const path = newFile();
      const link = join(dir, 'link.img');
      symlinkSync(path, link);
      const xml = domain(BOOT + diskElement('vdb', path, { format: 'raw' }));
      const fake = new FakeRunner([...load(xml, 'shut off'), ...inUseCalls(xml, [])]);
      const err = await failure(attach(fake, link), fake);
      assert.equal(err.message, `${link} is in use: it is u's disk`);
    });
  });
});
