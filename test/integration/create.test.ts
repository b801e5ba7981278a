import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { GUEST, testbed } from '../helpers/testbed.js';

const bed = testbed('create');
after(() => bed.cleanup());

/** Nothing of VM `n` exists: no domain, no disk, no state dir. */
function assertNothingMade(n: string) {
  assert.deepEqual(
    bed.domains().filter((d) => d === n),
    [],
    `domain ${n} left behind`,
  );
  assert.deepEqual(
    readdirSync(bed.env.VMS_IMAGES_DIR!).filter((f) => f.startsWith(n)),
    [],
    'disk left behind',
  );
  assert.equal(existsSync(join(bed.env.VMS_STATE_DIR!, n)), false, 'state dir left behind');
}

describe('vms create --bare', () => {
  test('--print-xml prints a valid definition and touches nothing', async () => {
    const n = bed.name('printed');
    const r = await bed.vms(['create', n, '--print-xml', '--network', 'none', '--firmware', 'efi', '--memory', '1G']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`<name>${n}</name>`));
    assert.match(r.stdout, /<domain type='qemu'>/, 'no working KVM here: libvirt offers only TCG');
    assert.match(r.stdout, /firmware='efi'/);
    const file = join(bed.dir, 'printed.xml');
    writeFileSync(file, r.stdout);
    execFileSync('virt-xml-validate', [file, 'domain']);
    assertNothingMade(n);
  });

  test('defines a VM with a qcow2 disk of the given size, reported in --json', async () => {
    const n = bed.name('plain');
    const vm = await bed.createTiny(n, ['--disk', '96M', '--memory', '300M', '--cpus', '2']);
    assert.equal(vm.name, n);
    assert.equal(vm.state, 'shut off');
    assert.equal(vm.memory, 300 * 2 ** 20);
    assert.equal(vm.cpus, 2);
    assert.equal(vm.disks[0].capacity, 96 * 2 ** 20);
    const info = JSON.parse(
      execFileSync('qemu-img', ['info', '--output=json', vm.disks[0].path], { encoding: 'utf8' }),
    );
    assert.equal(info.format, 'qcow2');
    assert.ok(vm.created, 'creation time kept in the vms metadata');
    assert.deepEqual(
      bed.domains().filter((d) => d === n),
      [n],
    );
  });

  test('--start boots it: the guest logs in on the serial console and sees its disk', async () => {
    const n = bed.name('booted');
    const vm = await bed.createTiny(n, ['--start']);
    assert.equal(vm.state, 'running');
    const out = await bed.guest(n, 'cat /sys/block/vda/size');
    assert.equal(out.trim(), String((64 * 2 ** 20) / 512));
    assert.ok(statSync(vm.serialLog).size > 0, 'the console transcript is written by libvirt');
  });

  test('--iso boots the ISO from the cdrom (BIOS)', async () => {
    const n = bed.name('iso');
    const r = await bed.vms([
      'create',
      n,
      '--bare',
      '--json',
      '--iso',
      GUEST.iso,
      '--memory',
      '256M',
      '--cpus',
      '1',
      '--disk',
      '64M',
      '--network',
      'none',
      '--no-graphics',
      '--start',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.json.disks.some((d: any) => d.device === 'cdrom' && d.path === GUEST.iso));
    assert.match(await bed.guest(n, 'cat /proc/cmdline'), /console=ttyS0/);
  });

  test('--firmware efi boots under OVMF with its own NVRAM', async () => {
    const n = bed.name('efi');
    const vm = await bed.createTiny(n, ['--firmware', 'efi', '--memory', '512M', '--start']);
    assert.equal(vm.firmware, 'efi');
    await bed.guest(n, 'test -d /sys/firmware/efi');
    assert.ok(existsSync(join(bed.env.VMS_STATE_DIR!, n, 'nvram.fd')), 'NVRAM created in the VM dir');
  });

  test('an ISO given by name is looked up in the ISO dir; a missing one is a clear error and nothing is made', async () => {
    const n = bed.name('noiso');
    const r = await bed.refused(['create', n, '--bare', '--iso', 'archlinux-x86_64.iso', '--network', 'none']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /error: ISO not found: .*iso\/archlinux-x86_64.iso/);
    assert.match(r.stderr, /hint: /);
    assertNothingMade(n);
  });
});

describe('vms create: bad input is refused before anything is made', () => {
  const cases: [string, string[], number, RegExp][] = [
    ['a slash in the name', ['create', 'a/b', '--bare'], 2, /invalid VM name 'a\/b'/],
    ['".." in the name', ['create', 'a..b', '--bare'], 2, /invalid VM name/],
    ['a space in the name', ['create', 'a b', '--bare'], 2, /invalid VM name/],
    ['a quote in the name', ['create', "a'b", '--bare'], 2, /invalid VM name/],
    ['markup in the name', ['create', 'a<b', '--bare'], 2, /invalid VM name/],
    ['a size without unit', ['create', 'okname', '--bare', '--memory', '4096'], 2, /invalid memory '4096'/],
    ['a bad unit', ['create', 'okname', '--bare', '--disk', '10X'], 2, /invalid disk size '10X'/],
    ['a size out of range', ['create', 'okname', '--bare', '--memory', '1M'], 2, /memory '1M' is out of range/],
    ['zero CPUs', ['create', 'okname', '--bare', '--cpus', '0'], 2, /invalid CPU count '0'/],
    ['an unknown firmware', ['create', 'okname', '--bare', '--firmware', 'coreboot'], 2, /invalid firmware/],
    ['--start without --bare', ['create', 'okname', '--start'], 2, /--start is for --bare/],
    [
      '--kernel without --bare',
      ['create', 'okname', '--kernel', '/boot/vmlinuz'],
      2,
      /--kernel is for `vms create --bare`/,
    ],
  ];
  for (const [what, args, code, message] of cases) {
    test(what, async () => {
      const r = await bed.refused(args);
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /^hint: /m);
      assert.equal(r.stderr.trim().split('\n').length, 2, `one error line and one hint:\n${r.stderr}`);
    });
  }

  test('a name already taken is refused and the existing VM is untouched', async () => {
    const n = bed.name('taken');
    const first = await bed.createTiny(n);
    const r = await bed.refused(['create', n, '--bare', '--network', 'none', '--json']);
    assert.equal(r.code, 4);
    assert.equal(r.json.error.code, 'conflict');
    assert.match(r.json.error.message, /already exists/);
    const again = await bed.vms(['info', n, '--json']);
    assert.equal(again.json.uuid, first.uuid);
    assert.ok(existsSync(first.disks[0].path));
  });

  test('libvirtd unreachable: exit 5 with a hint at vms bootstrap, nothing made', async () => {
    const n = bed.name('noconn');
    const r = await bed.refused([
      '--connect',
      'qemu:///system?socket=/nonexistent/libvirt-sock',
      'create',
      n,
      '--bare',
      '--network',
      'none',
    ]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /error: cannot reach libvirt at qemu:\/\/\/system\?socket=/);
    assert.match(r.stderr, /hint: .*vms bootstrap/);
    assertNothingMade(n);
  });
});

describe('vms create: a step failing midway removes everything made so far', () => {
  test('start fails (unknown network): domain, disk and directory are all removed', async () => {
    const n = bed.name('badnet');
    const r = await bed.vms([
      'create',
      n,
      '--bare',
      '--network',
      'no-such-net',
      '--memory',
      '256M',
      '--disk',
      '64M',
      '--no-graphics',
      '--start',
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /==> Starting/);
    assert.match(r.stderr, /error: .*no-such-net/);
    assertNothingMade(n);
  });

  test('disk full: a full images filesystem gives a clear error and leaves nothing', async (t) => {
    const n = bed.name('full');
    const small = join(bed.dir, 'small-fs');
    mkdirSync(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', small]); // smaller than an empty qcow2
    t.after(() => execFileSync('umount', [small]));
    const r = await bed.vms(['create', n, '--bare', '--network', 'none', '--disk', '1G'], {
      env: { VMS_IMAGES_DIR: small },
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /error: cannot create disk .*No space left on device/);
    assert.match(r.stderr, /hint: free some disk space/);
    assertNothingMade(n);
    assert.deepEqual(readdirSync(small), []);
  });
});
