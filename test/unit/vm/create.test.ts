import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { UndoAction } from '../../../src/core/ops/undo-actions.js';
import { createVm, parseFirmware, planVm, resolveIso, type CreateOptions } from '../../../src/core/vm/create.js';
import { interrupted, VmsError } from '../../../src/errors.js';
import { domainFacts, parseDomainXml } from '../../../src/libvirt/domain-parse.js';
import { defineCall, when } from '../../helpers/domain-fake.js';
import type { Expected } from '../../helpers/fake-runner.js';
import { assertUnchanged, tempHost } from '../../helpers/temp-host.js';
import { assertValidDomainXml } from '../../helpers/validate-xml.js';
import { URI, virshCall } from '../../helpers/virsh-fake.js';

// `vms create --bare` (src/core/vm/create.ts): the VM's directory, its disk (claimed exclusively, then created) and
// its definition, each with its undo written down before the step runs; a failure at any step takes back exactly
// what was made, newest first. Real directories in a temp dir, processes from the strict fake runner.

const MiB = 2 ** 20;
const OPTIONS: CreateOptions = {
  name: 'web',
  memory: 256 * MiB,
  cpus: 1,
  disk: 64 * MiB,
  firmware: 'bios',
  network: { kind: 'none' },
  graphics: false,
  start: false,
};
const CAPS =
  `<capabilities><guest><os_type>hvm</os_type>` +
  `<arch name='x86_64'><domain type='qemu'/></arch></guest></capabilities>`;
const NO_DOMAIN = { exitCode: 1, stderr: "error: failed to get domain 'web'\n" };
const UNDEFINE = ['undefine', 'web', '--nvram', '--managed-save', '--snapshots-metadata', '--checkpoints-metadata'];

/** The name is free (asked before planning), libvirt offers TCG, and the name is still free under the lock. */
const checks = (): Expected[] => [
  virshCall(['domuuid', 'web'], '', NO_DOMAIN),
  virshCall(['capabilities'], CAPS),
  virshCall(['domuuid', 'web'], '', NO_DOMAIN),
];
const qemuImgCreate = (path: string, result: Expected['result'] = {}): Expected => ({
  cmd: 'qemu-img',
  args: ['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', path, String(64 * MiB)],
  result,
});
const QEMU_IMG_FAILS = { exitCode: 1, stderr: 'qemu-img: web.qcow2: No space left on device\n' };

function host() {
  const h = tempHost();
  /** The undo steps the operation's journal holds now, `since` left out (a time). */
  const undoSteps = () =>
    h.journals().flatMap((j) =>
      j.steps.map((s) => {
        const { since: _since, ...action } = s.action as UndoAction & { since?: number };
        return action;
      }),
    );
  return { ...h, dir: h.vmDir('web'), disk: h.img('web.qcow2'), undoSteps };
}

/** The undo steps of a create that got as far as its disk, oldest first. */
const madeDisk = (h: ReturnType<typeof host>, disk = h.disk) => [
  { kind: 'remove-dir', path: h.dir },
  { kind: 'remove-claim', path: disk },
  { kind: 'remove-file', path: disk },
];

/**
 * Watches the undo of a failing step: `failing` wraps the call that fails, to keep the undo steps written down by
 * then; `undefine` is the undo's undefine, at which the disk must still be there (undone newest first).
 */
function watchUndo(h: ReturnType<typeof host>) {
  const seen: { steps: unknown[]; diskAtUndefine?: boolean } = { steps: [] };
  return {
    seen,
    failing: (call: Expected) => when(call, () => (seen.steps = h.undoSteps())),
    undefine: when(virshCall(UNDEFINE), () => (seen.diskAtUndefine = existsSync(h.disk))),
  };
}

/** Nothing of web is left, and the operation left no journal. */
function assertNothingLeft(h: ReturnType<typeof host>, imagesLeft: string[] = []) {
  assert.deepEqual(readdirSync(h.images), imagesLeft);
  assert.equal(existsSync(h.dir), false, 'the VM directory went');
  assert.deepEqual(h.journals(), []);
}

test('createVm: directory, disk and definition by the exact calls; the new VM is shown', async () => {
  const h = host();
  const defined: string[] = [];
  const showDefined: Expected = {
    cmd: 'virsh',
    args: (a) => {
      showDefined.result = { stdout: defined[0] };
      return a.join(' ') === `-c ${URI} dumpxml web --inactive --security-info`;
    },
  };
  let dirAtCreate: boolean | undefined;
  const { ctx, runner } = h.context([
    ...checks(),
    when(qemuImgCreate(h.disk), () => (dirAtCreate = existsSync(h.dir))),
    defineCall((xml) => defined.push(xml)),
    showDefined,
    virshCall(['domstate', 'web'], 'shut off\n'),
    {
      cmd: 'qemu-img',
      args: ['info', '-U', '--output=json', h.disk],
      result: { stdout: JSON.stringify({ filename: h.disk, format: 'qcow2', 'virtual-size': 64 * MiB }) },
    },
  ]);
  const info = await createVm(ctx, OPTIONS);
  runner.done();
  assert.equal(dirAtCreate, true, 'the directory is made before the disk');
  assert.equal(defined.length, 1);
  assertValidDomainXml(defined[0]!, 'created');
  const facts = domainFacts(await parseDomainXml(defined[0]!));
  assert.deepEqual(
    [facts.name, facts.memoryBytes, facts.cpus, facts.firmware, facts.networks, facts.serialSocket, facts.serialLog],
    ['web', 256 * MiB, 1, 'bios', [], join(h.dir, 'serial.sock'), join(h.dir, 'serial.log')],
  );
  assert.deepEqual(
    facts.disks.map((d) => [d.target, d.path, d.format]),
    [['vda', h.disk, 'qcow2']],
  );
  assert.deepEqual([facts.metadata.made, facts.metadata.bases], [[h.disk], []]);
  assert.deepEqual(
    [info.name, info.state, info.disks.map((d) => [d.path, d.capacity])],
    ['web', 'shut off', [[h.disk, 64 * MiB]]],
  );
  assert.deepEqual(readdirSync(h.images), ['web.qcow2']);
  assert.deepEqual(readdirSync(h.dir), []);
  assert.deepEqual(h.journals(), []);
});

// web-2.qcow2 is made beside it; neither the create nor its rollback touches web.qcow2.
test('createVm never reuses a disk path: an existing web.qcow2 is left alone', async () => {
  const h = host();
  mkdirSync(h.dir); // empty (a VM of the name removed cleanly): no conflict
  const theirs = h.file(h.disk);
  const mine = h.img('web-2.qcow2');
  const defined: string[] = [];
  const { ctx, runner } = h.context([
    ...checks(),
    qemuImgCreate(mine),
    defineCall((xml) => defined.push(xml)),
    virshCall(['start', 'web'], '', { exitCode: 1, stderr: 'error: stop here\n' }), // to see the rollback too
    virshCall(['domuuid', 'web'], '', NO_DOMAIN),
    virshCall(['domuuid', 'web'], '', NO_DOMAIN),
  ]);
  await assert.rejects(createVm(ctx, { ...OPTIONS, start: true }), /stop here/);
  runner.done();
  const facts = domainFacts(await parseDomainXml(defined[0]!));
  assert.deepEqual([facts.disks.map((d) => d.path), facts.metadata.made], [[mine], [mine]]);
  assertUnchanged([theirs]);
  assertNothingLeft(h, ['web.qcow2']);
});

// Claimed (an empty new file) by another command after planning: skipped, and kept by the rollback.
test('createVm: a disk name claimed meanwhile is left to the one who claimed it', async () => {
  const h = host();
  const mine = h.img('web-2.qcow2');
  const [free, capabilities, underLock] = checks();
  const watch = watchUndo(h);
  const { ctx, runner } = h.context([
    free!,
    capabilities!,
    when(underLock!, () => writeFileSync(h.disk, '')), // planned with web.qcow2: now another create's claim
    watch.failing(qemuImgCreate(mine, QEMU_IMG_FAILS)),
  ]);
  await assert.rejects(createVm(ctx, OPTIONS), /cannot create disk .*web-2\.qcow2: .*No space left on device/);
  runner.done();
  assert.deepEqual(watch.seen.steps, madeDisk(h, mine), 'no claim of web.qcow2 is left to undo');
  assertNothingLeft(h, ['web.qcow2']);
});

test('createVm: the name taken is a conflict before anything is locked or made', async () => {
  const h = host();
  const { ctx, runner } = h.context([virshCall(['domuuid', 'web'], 'b7c1\n')]);
  await assert.rejects(createVm(ctx, OPTIONS), (err: unknown) => {
    assert.ok(err instanceof VmsError, String(err));
    assert.deepEqual(
      [err.code, err.message, err.hint],
      ['conflict', "a VM named 'web' already exists", 'pick another name, or `vms destroy` the old one'],
    );
    return true;
  });
  runner.done();
  assert.deepEqual([readdirSync(h.images), readdirSync(h.state)], [[], []]);
});

test('createVm: the name taken meanwhile (seen under the lock) is a conflict, and nothing is made', async () => {
  const h = host();
  const [free, capabilities] = checks();
  const { ctx, runner } = h.context([free!, capabilities!, virshCall(['domuuid', 'web'], 'b7c1\n')]);
  await assert.rejects(createVm(ctx, OPTIONS), /a VM named 'web' already exists/);
  runner.done();
  assertNothingLeft(h);
});

test('createVm: a directory of the name that holds something is a conflict, left as it was', async () => {
  const h = host();
  mkdirSync(h.dir);
  const left = h.file(join(h.dir, 'install.log'));
  const { ctx, runner } = h.context(checks());
  await assert.rejects(createVm(ctx, OPTIONS), (err: unknown) => {
    assert.ok(err instanceof VmsError, String(err));
    assert.deepEqual([err.code, err.message], ['conflict', `${h.dir} already exists and is not empty`]);
    return true;
  });
  runner.done();
  assertUnchanged([left]);
  assert.deepEqual([readdirSync(h.images), readdirSync(h.dir), h.journals()], [[], ['install.log'], []]);
});

test('createVm: no images dir: not found, and the VM directory it made is removed again', async () => {
  const h = host();
  rmSync(h.images, { recursive: true });
  const { ctx, runner } = h.context(checks());
  await assert.rejects(createVm(ctx, OPTIONS), (err: unknown) => {
    assert.ok(err instanceof VmsError, String(err));
    assert.deepEqual([err.code, err.message], ['notFound', `images directory ${h.images} does not exist`]);
    return true;
  });
  runner.done();
  assert.deepEqual([existsSync(h.dir), existsSync(h.images), h.journals()], [false, false, []]);
});

test('createVm: qemu-img failing removes the claimed disk and the directory, nothing else runs', async () => {
  const h = host();
  const watch = watchUndo(h);
  const { ctx, runner } = h.context([...checks(), watch.failing(qemuImgCreate(h.disk, QEMU_IMG_FAILS))]);
  await assert.rejects(createVm(ctx, OPTIONS), (err: unknown) => {
    assert.ok(err instanceof VmsError, String(err));
    assert.deepEqual(
      [err.code, err.message, err.hint],
      [
        'failed',
        `cannot create disk ${h.disk}: web.qcow2: No space left on device`,
        'free some disk space, or set VMS_IMAGES_DIR to a roomier place',
      ],
    );
    return true;
  });
  runner.done();
  assert.deepEqual(
    watch.seen.steps,
    madeDisk(h),
    'the claim and the removal of the disk are written down before qemu-img runs',
  );
  assertNothingLeft(h);
});

// libvirt defined it all the same: undefined first, then the disk and the directory go.
test('createVm: define failing takes back the definition, then the files', async () => {
  const h = host();
  const watch = watchUndo(h);
  const { ctx, runner } = h.context([
    ...checks(),
    qemuImgCreate(h.disk),
    watch.failing(defineCall(() => {}, { exitCode: 1, stderr: 'error: operation failed: timed out\n' })),
    virshCall(['domuuid', 'web'], 'b7c1\n'),
    watch.undefine,
  ]);
  await assert.rejects(createVm(ctx, OPTIONS), /timed out/);
  runner.done();
  assert.deepEqual(watch.seen, { steps: [...madeDisk(h), { kind: 'undefine', vm: 'web' }], diskAtUndefine: true });
  assertNothingLeft(h);
});

test('createVm --start: start failing powers off, undefines, then removes the disk and directory', async () => {
  const h = host();
  const watch = watchUndo(h);
  const { ctx, runner } = h.context([
    ...checks(),
    qemuImgCreate(h.disk),
    defineCall(() => {}),
    watch.failing(virshCall(['start', 'web'], '', { exitCode: 1, stderr: 'error: no memory\n' })),
    virshCall(['domuuid', 'web'], 'b7c1\n'),
    virshCall(['domstate', 'web'], 'running\n'),
    virshCall(['destroy', 'web']),
    virshCall(['domuuid', 'web'], 'b7c1\n'),
    watch.undefine,
  ]);
  await assert.rejects(createVm(ctx, { ...OPTIONS, start: true }), /no memory/);
  runner.done();
  assert.deepEqual(watch.seen, {
    steps: [...madeDisk(h), { kind: 'undefine', vm: 'web' }, { kind: 'power-off', vm: 'web' }],
    diskAtUndefine: true,
  });
  assertNothingLeft(h);
});

test('createVm interrupted once its disk is made: everything made is removed, and it says so', async () => {
  const h = host();
  const stop = new AbortController();
  const { ctx, runner } = h.context([...checks(), when(qemuImgCreate(h.disk), () => stop.abort(interrupted()))]);
  await assert.rejects(createVm({ ...ctx, signal: stop.signal }, OPTIONS), (err: unknown) => {
    assert.ok(err instanceof VmsError, String(err));
    assert.deepEqual([err.code, err.hint], ['interrupted', 'everything this command had made so far was removed']);
    return true;
  });
  runner.done();
  assertNothingLeft(h);
});

// ---- planning: firmware, the ISO looked up, kernel files required ------------------------------------------------

test('parseFirmware: bios and efi are taken as they are; anything else is a usage error (exit 2)', () => {
  assert.deepEqual([parseFirmware('bios'), parseFirmware('efi')], ['bios', 'efi']);
  assert.throws(
    () => parseFirmware('uefi'),
    (e: unknown) => e instanceof VmsError && e.exitCode === 2 && e.message === "invalid firmware 'uefi'",
  );
});

/** The smallest file checkIsoImage takes for ISO 9660: 16 empty sectors, then a primary volume descriptor. */
function isoFile(path: string): string {
  const pvd = Buffer.alloc(2048);
  pvd[0] = 1;
  pvd.write('CD001', 1, 'latin1');
  writeFileSync(path, Buffer.concat([Buffer.alloc(16 * 2048), pvd]));
  return path;
}

/** A config and host for resolveIso: the ISO dir and the caller's directory, both temp dirs. */
function isoPlaces() {
  const h = tempHost();
  const [isoDir, cwd] = [join(h.outside, 'iso'), join(h.outside, 'cwd')];
  mkdirSync(isoDir);
  mkdirSync(cwd);
  const ctx = { config: { isoDir: { value: isoDir } }, host: { cwd } } as unknown as Parameters<typeof resolveIso>[0];
  return { isoDir, cwd, ctx };
}

test('resolveIso: a name is looked up in the ISO dir first, then in the current directory; a path is taken as it is', async () => {
  const { isoDir, cwd, ctx } = isoPlaces();
  isoFile(join(cwd, 'a.iso'));
  assert.equal(await resolveIso(ctx, 'a.iso'), join(cwd, 'a.iso'));
  isoFile(join(isoDir, 'a.iso'));
  assert.equal(await resolveIso(ctx, 'a.iso'), join(isoDir, 'a.iso'));
  isoFile(join(cwd, 'b.iso'));
  assert.equal(await resolveIso(ctx, './b.iso'), join(cwd, 'b.iso'));
});

test("resolveIso: a name found nowhere is not found in the ISO dir, with the dir in its data; a caller's hint is kept as it is", async () => {
  const { isoDir, ctx } = isoPlaces();
  await assert.rejects(resolveIso(ctx, 'gone.iso'), (e: unknown) => {
    assert.ok(e instanceof VmsError);
    assert.deepEqual(
      [e.exitCode, e.message, e.hint, e.data],
      [
        3,
        `ISO not found: ${join(isoDir, 'gone.iso')}`,
        `an ISO 9660 image is given by its name in ${isoDir}, or its path`,
        { isoDir },
      ],
    );
    return true;
  });
  await assert.rejects(resolveIso(ctx, 'gone.iso', 'use --iso'), (e: unknown) => {
    assert.ok(e instanceof VmsError);
    assert.deepEqual([e.exitCode, e.hint, e.data], [3, 'use --iso', undefined]);
    return true;
  });
});

test('planVm: kernel and initrd must exist; NVRAM only for efi; the ISO resolved as the cdrom; made starts empty', async () => {
  const h = host();
  const kernel = h.file(join(h.outside, 'vmlinuz'));
  const initrd = join(h.outside, 'initrd.img'); // not there yet
  const plan = (opts: Partial<CreateOptions>, calls = [virshCall(['capabilities'], CAPS)]) => {
    const { ctx, runner } = h.context(calls);
    return planVm(ctx, { ...OPTIONS, ...opts }).finally(() => runner.done());
  };
  await assert.rejects(
    plan({ kernelBoot: { kernel, initrd } }, []), // refused before libvirt is asked
    (e: unknown) => e instanceof VmsError && e.exitCode === 3 && e.message === `initrd not found: ${initrd}`,
  );
  await assert.rejects(
    plan({ kernelBoot: { kernel: initrd } }, []),
    (e: unknown) => e instanceof VmsError && e.exitCode === 3 && e.message === `kernel not found: ${initrd}`,
  );
  h.file(initrd);
  const withBoot = await plan({ kernelBoot: { kernel, initrd }, firmware: 'efi' });
  assert.deepEqual(withBoot.kernelBoot, { kernel, initrd, cmdline: undefined });
  assert.equal(withBoot.nvramPath, join(h.dir, 'nvram.fd'));
  assert.deepEqual(withBoot.metadata.made, []);
  const iso = isoFile(join(h.outside, 'arch.iso'));
  const bios = await plan({ kernelBoot: { kernel }, iso });
  assert.deepEqual([bios.kernelBoot?.initrd, bios.nvramPath, bios.cdrom], [undefined, undefined, iso]);
});
