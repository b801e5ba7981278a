import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { testbed } from '../helpers/testbed.js';

// `vms disk` against the real libvirtd, with one tiny guest: hotplug is checked from inside the guest, in /sys/block
// (it has no udev), and every refusal is checked to change nothing.

const bed = testbed('dsk');
after(() => bed.cleanup());

const MiB = 2 ** 20;
const sectors = (bytes: number) => String(bytes / 512);
const virtualSize = (path: string) =>
  JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', path], { encoding: 'utf8' }))['virtual-size'];

describe('vms disk', () => {
  const n = bed.name('vm');
  const images = bed.env.VMS_IMAGES_DIR!;
  const outside = join(bed.dir, 'outside.raw'); // images vms did not make, outside the images dir
  const shared = join(bed.dir, 'shared.raw');
  let scsiPath = '';

  /** The guest's block devices: size in sectors, and " ro" when read-only, from /sys/block. */
  async function guestBlocks(): Promise<Map<string, string>> {
    const out = await bed.guest(
      n,
      'for b in /sys/block/*; do echo "${b##*/} $(cat $b/size)$([ $(cat $b/ro) = 1 ] && echo " ro")"; done',
    );
    return new Map(
      out
        .split('\n')
        .map((l) => /^(\S+) (.+)$/.exec(l.trim()))
        .filter((m) => m !== null)
        .map((m) => [m![1]!, m![2]!]),
    );
  }

  /** Polls the guest until `check` holds (a hotplug takes the guest a moment under TCG). */
  async function untilGuest(
    what: string,
    check: (blocks: Map<string, string>) => boolean,
  ): Promise<Map<string, string>> {
    let blocks = new Map<string, string>();
    for (let i = 0; i < 20; i++) {
      blocks = await guestBlocks();
      if (check(blocks)) return blocks;
      await sleep(500);
    }
    assert.fail(`${what}: the guest's /sys/block shows ${JSON.stringify([...blocks])}`);
  }

  /** What must stay the same when a command is refused: both definitions and the images dir. */
  const state = () => ({
    saved: bed.virsh('dumpxml', n, '--inactive'),
    live: bed.virsh('domstate', n).trim() === 'running' ? bed.virsh('dumpxml', n) : '',
    images: readdirSync(images).sort(),
    outside: existsSync(outside),
  });

  before(async () => {
    await bed.createTiny(n, ['--start']);
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', outside, '24M']);
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', shared, '16M']);
  });

  test('add: a new virtio disk is plugged in live (the guest sees vdb at its size) and saved in the definition', async () => {
    await guestBlocks(); // booted
    const r = await bed.vms(['disk', 'add', n, '--size', '100M', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.target, 'vdb');
    assert.equal(r.json.live, true);
    assert.equal(r.json.path, join(images, `${n}-data.qcow2`));
    assert.equal(virtualSize(r.json.path), 100 * MiB);
    await untilGuest('vdb appears', (b) => b.get('vdb') === sectors(100 * MiB));
    assert.match(
      bed.virsh('dumpxml', n, '--inactive'),
      new RegExp(`<source file='${r.json.path}'/>\\s*<target dev='vdb' bus='virtio'/>`),
    );
  });

  test('add --bus scsi: a virtio-scsi controller comes with it; the guest sees a new sd disk', async () => {
    const r = await bed.vms(['disk', 'add', n, '--size', '60M', '--bus', 'scsi', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.target, 'sda');
    assert.equal(r.json.path, join(images, `${n}-data-2.qcow2`), 'a second added disk gets a name of its own');
    scsiPath = r.json.path;
    await untilGuest('an sd disk of 60M appears', (b) =>
      [...b].some(([dev, size]) => dev.startsWith('sd') && size === sectors(60 * MiB)),
    );
    const saved = bed.virsh('dumpxml', n, '--inactive');
    assert.match(saved, /<controller type='scsi' index='0' model='virtio-scsi'>/);
    assert.match(saved, /<target dev='sda' bus='scsi'\/>/);
  });

  test('resize of a running disk: the guest sees the new size at once', async () => {
    const r = await bed.vms(['disk', 'resize', n, 'vdb', '150M', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([r.json.from, r.json.to, r.json.live, r.json.changed], [100 * MiB, 150 * MiB, true, true]);
    await untilGuest('vdb grows', (b) => b.get('vdb') === sectors(150 * MiB));
    const same = await bed.vms(['disk', 'resize', n, 'vdb', '150M']);
    assert.equal(same.code, 0, same.stderr);
    assert.equal(same.stdout.trim(), `${n}: vdb is already 150M`);
  });

  test('attach an existing raw image: the guest sees it; the file is left as it was', async () => {
    const r = await bed.vms(['disk', 'attach', n, outside, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      [r.json.target, r.json.format, r.json.created, r.json.destroyedWithVm],
      ['vdc', 'raw', false, false],
    );
    await untilGuest('vdc appears', (b) => b.get('vdc') === sectors(24 * MiB));
    assert.match(
      bed.virsh('dumpxml', n, '--inactive'),
      /<driver name='qemu' type='raw' discard='unmap'\/>\s*<source file='[^']*outside\.raw'\/>/,
    );
    assert.equal(virtualSize(outside), 24 * MiB);
  });

  test('list: every disk with bus, sizes and format, as JSON and as a table', async () => {
    const r = await bed.vms(['disk', 'list', n, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.json.map((d: any) => [d.target, d.bus, d.format, d.virtualSize, d.readonly, d.inConfig, d.live]);
    assert.deepEqual(rows, [
      ['vda', 'virtio', 'qcow2', 64 * MiB, false, true, true],
      ['vdb', 'virtio', 'qcow2', 150 * MiB, false, true, true],
      ['vdc', 'virtio', 'raw', 24 * MiB, false, true, true],
      ['sda', 'scsi', 'qcow2', 60 * MiB, false, true, true],
    ]); // libvirt keeps the disks ordered by bus
    assert.ok(r.json.every((d: any) => d.actualSize > 0));
    const table = await bed.vms(['disk', 'list', n]);
    assert.match(table.stdout, /^TARGET\s+BUS\s+DEVICE\s+SIZE\s+USED\s+FORMAT\s+RO\s+PATH\s+BACKING$/m);
    assert.match(table.stdout, /^vdb\s+virtio\s+disk\s+150M\s+\S+\s+qcow2\s+no\s+\S+-data\.qcow2\s+-$/m);
  });

  const refusals: [string, string[], number, RegExp][] = [
    ['an unknown VM', ['disk', 'add', bed.name('ghost'), '--size', '1G'], 3, /no VM named/],
    ['a bad size', ['disk', 'add', n, '--size', '10X'], 2, /invalid disk size '10X'.*\nhint: for example --size 40G/],
    ['a missing --size', ['disk', 'add', n], 2, /required option '--size <size>'/],
    ['an unknown bus', ['disk', 'add', n, '--size', '1G', '--bus', 'ide'], 2, /unknown bus 'ide'/],
    [
      'nvme (libvirt 9.0 cannot emulate it)',
      ['disk', 'add', n, '--size', '1G', '--bus', 'nvme'],
      2,
      /bus 'nvme' is not supported/,
    ],
    [
      'sata on a running VM (no AHCI hotplug)',
      ['disk', 'add', n, '--size', '1G', '--bus', 'sata'],
      4,
      /cannot be plugged into a running VM/,
    ],
    ['detaching what is not attached', ['disk', 'detach', n, 'vdq'], 3, /has no disk vdq/],
    ['detaching the boot disk', ['disk', 'detach', n, 'vda'], 4, /vda is .* boot disk/],
    [
      'deleting a file vms did not make',
      ['disk', 'detach', n, 'vdc', '--delete'],
      4,
      /will not delete .*outside\.raw: vms did not make it for /,
    ],
    ['shrinking', ['disk', 'resize', n, 'vdb', '100M'], 2, /vms does not shrink disks/],
    ['a file that does not exist', ['disk', 'attach', n, join(bed.dir, 'none.qcow2')], 3, /no file .*none\.qcow2/],
    ['a file already attached', ['disk', 'attach', n, outside], 4, /already attached .* as vdc/],
    [
      'a read-only sata disk',
      ['disk', 'attach', n, outside, '--bus', 'sata', '--readonly'],
      2,
      /read-only disk cannot be on the sata bus/,
    ],
  ];
  for (const [what, args, code, message] of refusals) {
    test(`refused, nothing changed: ${what} (exit ${code})`, async () => {
      const before = state();
      const r = await bed.vms(args);
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /\nhint: |\(run `vms --help` for usage\)/);
      assert.deepEqual(state(), before);
    });
  }

  test('detach by target: gone from the guest and the definition; the file stays', async () => {
    const vdb = join(images, `${n}-data.qcow2`);
    const r = await bed.vms(['disk', 'detach', n, 'vdb', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json, { name: n, target: 'vdb', path: vdb, inConfig: true, live: true, deleted: false });
    await untilGuest('vdb goes', (b) => !b.has('vdb'));
    assert.doesNotMatch(bed.virsh('dumpxml', n, '--inactive'), /dev='vdb'/);
    assert.ok(existsSync(vdb));
  });

  test('detach by path with --delete: its own added disk goes from the guest, the definition and the disk', async () => {
    const r = await bed.vms(['disk', 'detach', n, scsiPath, '--delete']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `${n}: detached sda from the running VM and its definition; deleted ${scsiPath}`);
    await untilGuest('the scsi disk goes', (b) => ![...b.keys()].some((dev) => dev.startsWith('sd')));
    assert.doesNotMatch(bed.virsh('dumpxml', n, '--inactive'), /bus='scsi'/);
    assert.equal(existsSync(scsiPath), false);
  });

  test('shut off: sata and a read-only image go into the definition only; a shut-off disk grows with qemu-img; the guest sees it all at its next start', async () => {
    assert.equal((await bed.vms(['kill', n])).code, 0);
    const r = await bed.vms(['disk', 'add', n, '--size', '40M', '--bus', 'sata', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([r.json.target, r.json.live], ['sda', false]);
    const grown = await bed.vms(['disk', 'resize', n, 'sda', '48M', '--json']);
    assert.equal(grown.code, 0, grown.stderr);
    assert.equal(grown.json.live, false);
    assert.equal(virtualSize(r.json.path), 48 * MiB);
    const ro = await bed.vms(['disk', 'attach', n, shared, '--readonly', '--bus', 'scsi', '--json']);
    assert.equal(ro.code, 0, ro.stderr);
    assert.deepEqual([ro.json.target, ro.json.readonly, ro.json.live], ['sdb', true, false]);
    assert.match(
      bed.virsh('dumpxml', n, '--inactive'),
      /shared\.raw'\/>\s*<target dev='sdb' bus='scsi'\/>\s*<readonly\/>/,
    );
    assert.equal((await bed.vms(['start', n])).code, 0);
    const sizes = (b: Map<string, string>) =>
      [...b]
        .filter(([dev]) => dev.startsWith('sd'))
        .map(([, size]) => size)
        .sort();
    const expected = JSON.stringify([`${sectors(16 * MiB)} ro`, sectors(48 * MiB)].sort());
    await untilGuest(
      'the sata disk and the read-only one are there after the boot',
      (b) => JSON.stringify(sizes(b)) === expected,
    );
  });

  test('destroy removes the disks vms added and keeps the image attached from elsewhere', async () => {
    const added = readdirSync(images)
      .filter((f) => f.startsWith(`${n}-data`))
      .map((f) => join(images, f));
    assert.equal(added.length, 2, 'the detached vdb file and the sata disk');
    // vdb's file was detached, so it is no longer the VM's: attach it again to see destroy take it.
    assert.equal((await bed.vms(['disk', 'attach', n, added.find((p) => p.endsWith('-data.qcow2'))!])).code, 0);
    const r = await bed.vms(['destroy', n, '--yes', '--json']);
    assert.equal(r.code, 0, r.stderr);
    for (const path of added) assert.equal(existsSync(path), false, `${path} is removed`);
    assert.ok(existsSync(outside), 'the image attached from elsewhere stays');
    assert.ok(existsSync(shared), 'the read-only image stays');
    assert.ok(r.json.kept.some((k: any) => k.path === outside));
  });
});
