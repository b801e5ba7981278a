import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { testbed } from '../helpers/testbed.js';

const bed = testbed('clone');
after(() => bed.cleanup());

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const backing = (path: string) =>
  JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', path], { encoding: 'utf8' }))['backing-filename'];

/** Writes a marker into the raw disk at a sector (the tiny guest runs from RAM: its disk is a plain block device). */
const write = (vm: string, sector: number, text: string) =>
  bed.guest(vm, `echo ${text} | dd of=/dev/vda bs=512 seek=${sector} conv=fsync 2>/dev/null`);
const read = async (vm: string, sector: number) =>
  (
    await bed.guest(vm, `dd if=/dev/vda bs=512 skip=${sector} count=1 2>/dev/null | head -c 16 | tr -dc A-Za-z0-9`)
  ).trim();

describe('linked clone of a shut-off VM', () => {
  const src = bed.name('src');
  const dst = bed.name('dst');
  let base = '';

  test('a linked clone copies nothing: SRC freezes into a read-only base, and both go on from overlays on it', async () => {
    const made = await bed.createTiny(src, ['--start', '--network', 'user']);
    base = made.disks[0].path;
    await write(src, 100, 'SRCDATA');
    await bed.vms(['stop', src]);
    const before = sha(base);

    const r = await bed.vms(['clone', src, dst, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.linked, true);
    assert.deepEqual(r.json.frozen, [base]);
    assert.equal(r.json.createdFrom, src);
    assert.deepEqual(r.json.bases, [base]);
    assert.equal(statSync(base).mode & 0o777, 0o444, 'the base is read-only');

    const srcNow = (await bed.vms(['info', src, '--json'])).json;
    assert.notEqual(srcNow.disks[0].path, base, 'SRC moved onto a new overlay');
    assert.equal(backing(srcNow.disks[0].path), base);
    assert.equal(backing(r.json.disks[0].path), base);
    assert.deepEqual(srcNow.bases, [base], 'the base is recorded in SRC metadata too');
    assert.notEqual(r.json.uuid, srcNow.uuid);
    const macs = (vm: string) => bed.virsh('domiflist', vm).match(/([0-9a-f]{2}:){5}[0-9a-f]{2}/g);
    assert.notDeepEqual(macs(dst), macs(src));
    assert.match(
      bed.virsh('dumpxml', dst, '--inactive'),
      new RegExp(`<entry>vms.name=${dst}</entry>`),
      'the guest learns its new name (SMBIOS)',
    );
    assert.match(bed.virsh('dumpxml', src, '--inactive'), new RegExp(`<entry>vms.name=${src}</entry>`));
    assert.match(r.json.serialSocket, new RegExp(`/${dst}/serial\\.sock$`));
    assert.equal(sha(base), before, 'cloning wrote nothing into the base');
  });

  test("inside the guests: the clone sees the base data; neither sees the other one's writes; the base never changes", async () => {
    const before = sha(base);
    await bed.vms(['start', src]);
    await bed.vms(['start', dst]);
    assert.equal(await read(dst, 100), 'SRCDATA');
    await write(dst, 200, 'DSTONLY');
    await write(src, 300, 'SRCONLY');
    assert.equal(await read(src, 200), '');
    assert.equal(await read(dst, 300), '');
    assert.equal(await read(dst, 200), 'DSTONLY');
    await bed.vms(['kill', src]);
    await bed.vms(['kill', dst]);
    assert.equal(sha(base), before);
  });

  test('list shows the clone with its base', async () => {
    const r = await bed.vms(['list']);
    assert.match(r.stdout, /^NAME\s+STATE\s+PROFILE\s+MEMORY\s+CPUS\s+DISK\s+FROM$/m);
    assert.match(r.stdout, new RegExp(`^${dst}\\s+shut off\\s+-\\s+256M\\s+1\\s+64M\\s+${src}$`, 'm'));
    const json = (await bed.vms(['list', '--json'])).json;
    assert.equal(json.find((v: any) => v.name === dst).createdFrom, src);
  });

  test('a name already taken is refused and nothing changes', async () => {
    const srcDisk = (await bed.vms(['info', src, '--json'])).json.disks[0].path;
    const files = readdirSync(bed.env.VMS_IMAGES_DIR!).sort();
    const r = await bed.refused(['clone', src, dst]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /already exists/);
    assert.equal((await bed.vms(['info', src, '--json'])).json.disks[0].path, srcDisk);
    assert.deepEqual(readdirSync(bed.env.VMS_IMAGES_DIR!).sort(), files);
  });

  test('destroy keeps a base while anything stands on it, and removes it with its last user', async () => {
    const third = bed.name('third');
    assert.equal((await bed.vms(['clone', dst, third])).code, 0); // dst's disk becomes a second base, on top of the first
    const dstBase = (await bed.vms(['info', third, '--json'])).json.bases;
    assert.equal(dstBase.length, 2);
    assert.equal(dstBase[1], base);

    let r = await bed.vms(['destroy', src, '--yes', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.json.kept.some((k: any) => k.path === base && /used by/.test(k.reason)));
    assert.ok(existsSync(base));
    r = await bed.vms(['destroy', dst, '--yes', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(dstBase[0]) && existsSync(base), 'both bases still carry the third VM');
    r = await bed.vms(['destroy', third, '--yes', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.json.removed.includes(dstBase[0]) && r.json.removed.includes(base));
    assert.deepEqual(readdirSync(bed.env.VMS_IMAGES_DIR!), [], 'every disk is gone with the last VM');
  });
});

describe('linked clone of a running VM', () => {
  test('SRC keeps running on a fresh overlay (external snapshot) and the clone boots from the frozen disk', async () => {
    const src = bed.name('live');
    const dst = bed.name('livec');
    const made = await bed.createTiny(src, ['--start']);
    await write(src, 100, 'LIVEDATA');
    const r = await bed.vms(['clone', src, dst, '--start', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.quiesced, false, 'no guest agent in the tiny guest');
    assert.equal(bed.virsh('domstate', src).trim(), 'running');
    const live = bed.virsh('domblklist', src);
    assert.doesNotMatch(live, new RegExp(made.disks[0].path.replace(/[.]/g, '\\.') + '\\s*$', 'm'));
    assert.equal(await read(dst, 100), 'LIVEDATA');
    await write(src, 400, 'STILLOK');
    assert.equal(await read(src, 400), 'STILLOK', 'SRC still reads and writes');
    assert.equal(await read(dst, 400), '');
    const inactive = bed.virsh('dumpxml', src, '--inactive');
    assert.ok(
      inactive.includes(`<vms:base>${made.disks[0].path}</vms:base>`),
      'the persistent definition records the base',
    );
  });
});

describe('a running VM with a disk attached live only', () => {
  test('is refused: its running disks differ from the saved definition, and nothing changes', async () => {
    const src = bed.name('livex');
    await bed.createTiny(src, ['--start']);
    const extra = join(bed.dir, 'extra.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', extra, '16M']);
    bed.virsh('attach-disk', src, extra, 'vdb', '--driver', 'qemu', '--subdriver', 'qcow2', '--live');
    const files = readdirSync(bed.env.VMS_IMAGES_DIR!).sort();
    const r = await bed.refused(['clone', src, bed.name('livexc')]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /running disks differ from its saved definition/);
    assert.deepEqual(readdirSync(bed.env.VMS_IMAGES_DIR!).sort(), files);
  });
});

describe('a live clone failing after the snapshot', () => {
  test('is rolled back: SRC merged back onto its own disk, its metadata restored, nothing of NEW left', async () => {
    const src = bed.name('lroll');
    const dst = bed.name('lrollc');
    const iso = join(bed.env.VMS_ISO_DIR!, 'gone.iso');
    execFileSync('cp', ['/var/cache/vms-test/tiny/tiny.iso', iso]);
    const made = await bed.createTiny(src, ['--iso', iso, '--start']);
    await write(src, 100, 'BEFORE');
    execFileSync('rm', [iso]); // SRC's qemu keeps it open; NEW cannot open it, so starting NEW fails
    const files = readdirSync(bed.env.VMS_IMAGES_DIR!).sort();
    const r = await bed.vms(['clone', src, dst, '--start']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /==> Starting .*: failed/);
    assert.doesNotMatch(r.stderr, /clean-up failed/);
    assert.deepEqual(
      bed.domains().filter((d) => d === dst),
      [],
    );
    assert.deepEqual(readdirSync(bed.env.VMS_IMAGES_DIR!).sort(), files, 'overlays removed');
    assert.match(bed.virsh('domblklist', src), new RegExp(`vda\\s+${made.disks[0].path}`));
    assert.equal(bed.virsh('domstate', src).trim(), 'running');
    assert.equal(statSync(made.disks[0].path).mode & 0o200, 0o200, "still writable: it is SRC's disk again");
    assert.deepEqual((await bed.vms(['info', src, '--json'])).json.bases, []);
    assert.doesNotMatch(
      bed.virsh('dumpxml', src, '--inactive'),
      /-2\.qcow2/,
      'the saved definition is back on its own disk',
    );
    await write(src, 500, 'AFTER');
    assert.equal(await read(src, 100), 'BEFORE');
    assert.equal(await read(src, 500), 'AFTER');
  });
});

describe('clone --full, EFI, failures', () => {
  test('--full makes an independent copy and leaves SRC as it was', async () => {
    const src = bed.name('fsrc');
    const made = await bed.createTiny(src);
    const r = await bed.vms(['clone', src, bed.name('fcopy'), '--full', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.linked, false);
    assert.equal(backing(r.json.disks[0].path), undefined);
    assert.equal((await bed.vms(['info', src, '--json'])).json.disks[0].path, made.disks[0].path);
    assert.equal(statSync(made.disks[0].path).mode & 0o200, 0o200, 'SRC disk still writable');
  });

  test('--full of a running VM is refused with a hint', async () => {
    const src = bed.name('frun');
    await bed.createTiny(src, ['--start']);
    const r = await bed.refused(['clone', src, bed.name('frunc'), '--full']);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /hint: `vms stop .*` first, or drop --full/);
  });

  test('an EFI clone gets its own copy of the NVRAM', async () => {
    const src = bed.name('esrc');
    await bed.createTiny(src, ['--firmware', 'efi', '--memory', '512M', '--start']);
    await bed.guest(src, 'true');
    await bed.vms(['kill', src]);
    const dst = bed.name('edst');
    const r = await bed.vms(['clone', src, dst, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const srcNvram = join(bed.env.VMS_STATE_DIR!, src, 'nvram.fd');
    assert.equal(r.json.nvram, join(bed.env.VMS_STATE_DIR!, dst, 'nvram.fd'));
    assert.equal(sha(r.json.nvram), sha(srcNvram));
    assert.equal((await bed.vms(['start', dst])).code, 0);
    await bed.guest(dst, 'test -d /sys/firmware/efi');
    const d = await bed.vms(['destroy', dst, '--yes']);
    assert.equal(d.code, 0);
    assert.equal(existsSync(r.json.nvram), false, 'destroy removes the NVRAM');
    assert.ok(existsSync(srcNvram));
  });

  test('disk full midway (--full onto a full filesystem): the clone is removed, SRC is untouched', async (t) => {
    const src = bed.name('dsrc');
    const made = await bed.createTiny(src);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 8M', made.disks[0].path], { stdio: 'ignore' });
    const small = join(bed.dir, 'small-fs');
    mkdirSync(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', small]);
    t.after(() => execFileSync('umount', [small]));
    const dst = bed.name('ddst');
    const r = await bed.refused(['clone', src, dst, '--full'], { env: { VMS_IMAGES_DIR: small } }); // all undone
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^error: cannot copy .*No space left on device/m);
    assert.match(r.stderr, /^hint: free some disk space, or set VMS_IMAGES_DIR to a roomier place$/m);
    assert.deepEqual(readdirSync(small), []);
    assert.deepEqual(
      bed.domains().filter((d) => d === dst),
      [],
    );
    assert.equal(existsSync(join(bed.env.VMS_STATE_DIR!, dst)), false);
    assert.equal((await bed.vms(['info', src, '--json'])).json.disks[0].path, made.disks[0].path);
  });

  test('Ctrl-C midway: everything the clone made is removed, exit 130', async () => {
    const src = bed.name('isrc');
    const made = await bed.createTiny(src, ['--disk', '3G']);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 1536M', made.disks[0].path], { stdio: 'ignore' });
    const dst = bed.name('idst');
    const child = bed.spawnVms(['clone', src, dst, '--full']);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    while (!/==> Copying/.test(stderr)) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /error: interrupted/);
    assert.deepEqual(
      bed.domains().filter((d) => d === dst),
      [],
    );
    assert.deepEqual(
      readdirSync(bed.env.VMS_IMAGES_DIR!).filter((f) => f.startsWith(dst)),
      [],
    );
    assert.equal(existsSync(join(bed.env.VMS_STATE_DIR!, dst)), false);
  });

  test("clone foo foo-2: the clone's disk and foo's new overlay are never the same file", async () => {
    const src = bed.name('foo');
    await bed.createTiny(src);
    const r = await bed.vms(['clone', src, `${src}-2`, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const srcDisk = (await bed.vms(['info', src, '--json'])).json.disks[0].path;
    assert.notEqual(srcDisk, r.json.disks[0].path);
    assert.equal(backing(srcDisk), backing(r.json.disks[0].path));
    assert.match(bed.virsh('domblklist', src), new RegExp(srcDisk.replace(/[.]/g, '\\.')));
  });

  test('unknown SRC: exit 3', async () => {
    const r = await bed.refused(['clone', bed.name('nope'), bed.name('nope2')]);
    assert.equal(r.code, 3);
  });
});
