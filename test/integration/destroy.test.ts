import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { testbed } from '../helpers/testbed.js';

const bed = testbed('destroy');
after(() => bed.cleanup());

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
});
