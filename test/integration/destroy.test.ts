import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { testbed } from '../helpers/testbed.js';

const bed = testbed('destroy');
after(() => bed.cleanup());

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Runs `vms destroy` on a pty and types `answer` at its question. */
const destroyOnTerminal = (n: string, answer: string) => bed.onTerminal(['destroy', n], `${answer}\n`);

describe('vms destroy', () => {
  test('without --yes and without a terminal it refuses and removes nothing', async () => {
    const n = bed.name('keep');
    const vm = await bed.createTiny(n);
    const r = await bed.refused(['destroy', n]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /error: refusing to destroy .* without confirmation\nhint: add --yes/);
    assert.deepEqual(
      bed.domains().filter((d) => d === n),
      [n],
    );
    assert.ok(existsSync(vm.disks[0].path));
  });

  test('on a terminal it lists what goes and asks; "n" keeps everything', async () => {
    const n = bed.name('ask');
    const vm = await bed.createTiny(n);
    const before = bed.snapshotWorld();
    const { code, out } = destroyOnTerminal(n, 'n');
    assert.equal(code, 4, out);
    assert.deepEqual(bed.snapshotWorld(), before, 'answering "n" changed nothing');
    assert.match(out, /This removes VM .* and deletes:/);
    assert.ok(out.includes(vm.disks[0].path));
    assert.match(out, /Destroy it\? \[y\/N\]/);
    assert.match(out, /not destroyed/);
    assert.ok(existsSync(vm.disks[0].path));
    const yes = destroyOnTerminal(n, 'y');
    assert.equal(yes.code, 0, yes.out);
    assert.match(yes.out, new RegExp(`${n} destroyed`));
    assert.equal(existsSync(vm.disks[0].path), false);
  });

  test("a disk attached from outside the images dir and a user's file in the VM dir are kept", async () => {
    const n = bed.name('foreign');
    const vm = await bed.createTiny(n);
    const foreign = join(bed.dir, 'data.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', foreign, '16M']);
    bed.virsh('attach-disk', n, foreign, 'vdb', '--driver', 'qemu', '--subdriver', 'qcow2', '--config');
    const mine = join(bed.env.VMS_STATE_DIR!, n, 'notes.txt');
    execFileSync('sh', ['-c', `echo keep > ${mine}`]);
    const r = await bed.vms(['destroy', n, '--yes', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.removed, [vm.disks[0].path]);
    assert.ok(r.json.kept.some((k: any) => k.path === foreign && /vms did not make it/.test(k.reason)));
    assert.ok(existsSync(foreign), 'the foreign disk survives');
    assert.ok(existsSync(mine), "the user's file survives");
  });

  test('--yes on a running EFI VM: powers off, removes domain, NVRAM, disk and its directory, keeps the ISO', async () => {
    const n = bed.name('gone');
    const iso = join(bed.env.VMS_ISO_DIR!, 'keep.iso');
    execFileSync('cp', [
      process.env.VMS_TEST_CACHE
        ? join(process.env.VMS_TEST_CACHE, 'tiny/tiny.iso')
        : '/var/cache/vms-test/tiny/tiny.iso',
      iso,
    ]);
    const vm = await bed.createTiny(n, ['--firmware', 'efi', '--memory', '512M', '--iso', 'keep.iso', '--start']);
    const nvram = join(bed.env.VMS_STATE_DIR!, n, 'nvram.fd');
    for (let i = 0; i < 50 && !existsSync(nvram); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(existsSync(nvram));
    const r = await bed.vms(['destroy', n, '--yes', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.removed, [vm.disks[0].path]);
    assert.deepEqual(
      bed.domains().filter((d) => d === n),
      [],
    );
    assert.equal(existsSync(nvram), false);
    assert.equal(existsSync(join(bed.env.VMS_STATE_DIR!, n)), false);
    assert.ok(existsSync(iso), 'a cdrom image is never deleted');
  });

  /** A tiny VM whose disk the user put on a golden image of their own at `golden`; destroy must leave that be. */
  async function keepsUserBase(n: string, golden: string) {
    const vm = await bed.createTiny(n);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', golden, '64M']);
    execFileSync('qemu-img', ['rebase', '-u', '-b', golden, '-F', 'qcow2', vm.disks[0].path]);
    const sum = sha256(golden);
    const r = await bed.vms(['destroy', n, '--yes', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json, {
      name: n,
      removed: [vm.disks[0].path],
      kept: [{ path: golden, reason: 'vms did not make it' }],
    });
    assert.equal(existsSync(vm.disks[0].path), false);
    assert.equal(sha256(golden), sum, 'the golden image is there, unchanged');
  }

  test('destroy keeps a base the user made under the images dir', async () => {
    const n = bed.name('gold-in');
    await keepsUserBase(n, join(bed.env.VMS_IMAGES_DIR!, `${n}-golden.qcow2`));
  });

  test('destroy keeps a base the user made outside the images dir', async () => {
    const n = bed.name('gold-out');
    await keepsUserBase(n, join(bed.dir, `${n}-golden.qcow2`));
  });

  /** A tiny VM and its linked clone, both on the base the VM's disk froze into. */
  async function cloneOnBase(tag: string) {
    const src = bed.name(tag);
    const clone = bed.name(`${tag}-c`);
    const base = (await bed.createTiny(src)).disks[0].path;
    const c = await bed.vms(['clone', src, clone, '--json']);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(c.json.bases, [base]);
    const srcDisk: string = (await bed.vms(['info', src, '--json'])).json.disks[0].path;
    return { src, clone, base, srcDisk, cloneDisk: c.json.disks[0].path as string, sum: sha256(base) };
  }

  /** Destroys src while the clone cannot be read (`env`): the base stays, unchanged, and the JSON says why. */
  async function destroyKeepsBase(vms: Awaited<ReturnType<typeof cloneOnBase>>, env: Record<string, string> = {}) {
    const r = await bed.vms(['destroy', vms.src, '--yes', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json, {
      name: vms.src,
      removed: [vms.srcDisk],
      kept: [{ path: vms.base, reason: `${vms.clone} cannot be read and may stand on it` }],
    });
    assert.equal(sha256(vms.base), vms.sum, 'the base is there, unchanged');
    assert.deepEqual(
      bed.domains().filter((d) => d.startsWith(vms.src)),
      [vms.clone],
    );
  }

  test("destroy of one VM with another VM's definition unreadable keeps the bases that VM may use and says so", async () => {
    const vms = await cloneOnBase('frz');
    // The real virsh, except that it cannot print the clone's definition (as for a VM it may not read): everything
    // else, the destroy included, is the real libvirtd's.
    const bin = join(bed.dir, 'bin');
    const virsh = execFileSync('which', ['virsh'], { encoding: 'utf8' }).trim();
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'virsh'),
      `#!/bin/bash\nexec ${virsh} "\${@//dumpxml ${vms.clone}/dumpxml ${vms.clone}.hidden}"\n`,
    );
    chmodSync(join(bin, 'virsh'), 0o755);
    await destroyKeepsBase(vms, { PATH: `${bin}:${process.env.PATH}` });

    // Read as it is, the clone is the last VM on the base: destroying it takes the base too.
    const last = await bed.vms(['destroy', vms.clone, '--yes', '--json']);
    assert.equal(last.code, 0, last.stderr);
    assert.deepEqual([last.json.removed, last.json.kept], [[vms.cloneDisk, vms.base], []]);
  });

  test("destroy with another VM's disk chain unreadable keeps the bases that VM may use and says so", async () => {
    const vms = await cloneOnBase('chn');
    // The clone stands on the base through a layer whose header is garbled: what lies below it cannot be known.
    const mid = join(bed.env.VMS_IMAGES_DIR!, `${vms.clone}-mid.qcow2`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', vms.base, '-F', 'qcow2', mid]);
    execFileSync('qemu-img', ['rebase', '-u', '-b', mid, '-F', 'qcow2', vms.cloneDisk]);
    const fd = openSync(mid, 'r+');
    writeSync(fd, Buffer.alloc(4), 0, 4, 0); // no qcow2 magic
    closeSync(fd);
    await destroyKeepsBase(vms);
  });
});
