import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { shareTag } from '../../src/libvirt/fs-xml.js';
import { testbed } from '../helpers/testbed.js';

// vms mount / umount against the real libvirtd: the share is checked from inside the tiny guest over its console
// (files written on either side show on the other), in the live domain and in the saved definition.

const bed = testbed('mnt');
after(() => bed.cleanup());

const host = (d: string) => join(bed.dir, d);
const shares = { share: host('share'), ro: host('ro'), other: host('other') };
for (const [name, dir] of Object.entries(shares)) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'from-host.txt'), `${name} from the host\n`);
}

const saved = (n: string) => bed.virsh('dumpxml', n, '--inactive');
const live = (n: string) => bed.virsh('dumpxml', n);
const targetOf = (guestDir: string) => `<target dir='${shareTag(guestDir)}'/>`;
const virtiofsMounts = (n: string) => bed.guest(n, 'grep virtiofs /proc/mounts; true');
const fstab = (n: string) => bed.guest(n, 'cat /etc/fstab 2>/dev/null; true');

describe('vms mount and umount on one guest', () => {
  const n = bed.name('vm');
  before(() => bed.createTiny(n)); // shut off, without shared memory

  test('shut off: shared memory and the share go into the definition only; --temp is refused', async () => {
    const r = await bed.vms(['mount', n, shares.share, '/mnt/share', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      { mounted: r.json.mounted, persistent: r.json.persistent, tag: r.json.tag, hostDir: r.json.hostDir },
      { mounted: false, persistent: true, tag: shareTag('/mnt/share'), hostDir: shares.share },
    );
    const xml = saved(n);
    assert.match(xml, /<memoryBacking>\s*<source type='memfd'\/>\s*<access mode='shared'\/>/);
    assert.match(
      xml,
      new RegExp(`<driver type='virtiofs'/>\\s*<source dir='${shares.share}'/>\\s*${targetOf('/mnt/share')}`),
    );
    const temp = await bed.vms(['mount', n, shares.other, '/tmp/t', '--temp']);
    assert.equal(temp.code, 4, temp.stderr);
    assert.match(temp.stderr, /is shut off: --temp mounts only into a running VM/);
    assert.equal(saved(n), xml);
  });

  test('started: mount mounts it in the guest, files go both ways, and /etc/fstab has it once', async () => {
    assert.equal((await bed.vms(['start', n])).code, 0);
    const r = await bed.vms(['mount', n, shares.share, '/mnt/share']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        `^${shares.share} is mounted at /mnt/share in ${n} \\(virtiofs tag ${shareTag('/mnt/share')}\\)\nkept: in ${n}'s definition and its /etc/fstab\n$`,
      ),
    );
    assert.equal(await bed.guest(n, 'cat /mnt/share/from-host.txt'), 'share from the host\n');
    await bed.guest(n, 'echo written in the guest > /mnt/share/from-guest.txt');
    assert.equal(readFileSync(join(shares.share, 'from-guest.txt'), 'utf8'), 'written in the guest\n');
    const line = `${shareTag('/mnt/share')} /mnt/share virtiofs defaults,nofail 0 0\n`;
    assert.equal(await fstab(n), line);

    const before = saved(n);
    const again = await bed.vms(['mount', n, shares.share, '/mnt/share']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await fstab(n), line);
    assert.equal((await virtiofsMounts(n)).split('\n').filter((l) => l.startsWith(shareTag('/mnt/share'))).length, 1);
    assert.equal(saved(n), before);
  });

  test('--readonly: a second share plugged into the running VM; the guest reads it and cannot write', async () => {
    assert.doesNotMatch(live(n), new RegExp(targetOf('/srv/ro')));
    const r = await bed.vms(['mount', n, shares.ro, '/srv/ro', '--readonly', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.readonly, true);
    assert.equal(r.json.restarted, false, 'plugged in live, not by a restart');
    assert.match(live(n), new RegExp(targetOf('/srv/ro')));
    assert.match(saved(n), new RegExp(targetOf('/srv/ro')));
    assert.equal(await bed.guest(n, 'cat /srv/ro/from-host.txt'), 'ro from the host\n');
    assert.match(await bed.guest(n, 'touch /srv/ro/x 2>&1 && echo WRITABLE; true'), /Read-only file system/);
    assert.match(await fstab(n), new RegExp(`^${shareTag('/srv/ro')} /srv/ro virtiofs defaults,ro,nofail 0 0$`, 'm'));
  });

  test('--temp: mounted in the running VM, but neither in its definition nor in /etc/fstab', async () => {
    const before = saved(n);
    const r = await bed.vms(['mount', n, shares.other, '/tmp/t', '--temp', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      { persistent: r.json.persistent, fstab: r.json.fstab, mounted: r.json.mounted },
      { persistent: false, fstab: false, mounted: true },
    );
    assert.equal(await bed.guest(n, 'cat /tmp/t/from-host.txt'), 'other from the host\n');
    assert.match(live(n), new RegExp(targetOf('/tmp/t')));
    assert.equal(saved(n), before);
    assert.doesNotMatch(await fstab(n), new RegExp(shareTag('/tmp/t')));
  });

  test('a GUESTDIR with files is refused and nothing changes; --force mounts over it, umount brings the files back', async () => {
    await bed.guest(n, 'mkdir -p /opt/full && echo mine > /opt/full/own.txt');
    const [savedBefore, liveBefore] = [saved(n), live(n)];
    const r = await bed.vms(['mount', n, shares.other, '/opt/full']);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /error: \/opt\/full in .* is not empty: the share would hide its files\nhint: .*--force/);
    assert.equal(saved(n), savedBefore);
    assert.equal(live(n), liveBefore);
    assert.doesNotMatch(await virtiofsMounts(n), /\/opt\/full/);

    const forced = await bed.vms(['mount', n, shares.other, '/opt/full', '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(await bed.guest(n, 'ls /opt/full'), 'from-host.txt\n');
    const off = await bed.vms(['umount', n, '/opt/full']);
    assert.equal(off.code, 0, off.stderr);
    assert.equal(await bed.guest(n, 'cat /opt/full/own.txt'), 'mine\n');
  });

  test('a mount that fails in the guest is undone: the share leaves the running VM and the definition', async () => {
    const [savedBefore, liveBefore] = [saved(n), live(n)];
    const r = await bed.vms(['mount', n, shares.other, '/proc/vms-cannot']); // mkdir fails in /proc, after the hotplug
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /==> Plugging the share into .*\n(.*\n)*error: mounting .* at \/proc\/vms-cannot in the guest failed/,
    );
    assert.equal(saved(n), savedBefore);
    assert.equal(live(n), liveBefore);
  });

  test('umount: gone from the guest, its /etc/fstab, the running VM and the definition; the host files stay', async () => {
    for (const dir of ['/mnt/share', '/tmp/t']) {
      const r = await bed.vms(['umount', n, dir]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${dir} is unmounted in ${n} and the share removed\n`);
      assert.doesNotMatch(await virtiofsMounts(n), new RegExp(` ${dir} `));
      assert.doesNotMatch(await fstab(n), new RegExp(shareTag(dir)));
      assert.doesNotMatch(live(n), new RegExp(targetOf(dir)));
      assert.doesNotMatch(saved(n), new RegExp(targetOf(dir)));
    }
    assert.equal(readFileSync(join(shares.share, 'from-guest.txt'), 'utf8'), 'written in the guest\n');
  });

  test('umount of a shut-off VM takes the share out of its definition', async () => {
    assert.equal((await bed.vms(['kill', n])).code, 0);
    const r = await bed.vms(['umount', n, '/srv/ro', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.guest, false);
    assert.doesNotMatch(saved(n), /<filesystem/);
  });

  test('bad input changes nothing: unknown VM 3, missing HOSTDIR 3, relative GUESTDIR 2, unknown share 3', async () => {
    const before = saved(n);
    const cases: [string[], number, RegExp][] = [
      [['mount', bed.name('ghost'), shares.share, '/mnt/x'], 3, /error: no VM named '.*-ghost'/],
      [['mount', n, host('missing'), '/mnt/x'], 3, /error: host directory .*\/missing does not exist/],
      [['mount', n, shares.share, 'mnt/x'], 2, /error: GUESTDIR 'mnt\/x' is not an absolute path/],
      [['umount', n, '/mnt/nothing'], 3, /error: nothing is shared into .* at \/mnt\/nothing/],
      [['umount', n, 'mnt'], 2, /error: GUESTDIR 'mnt' is not an absolute path/],
    ];
    for (const [args, code, message] of cases) {
      const r = await bed.vms(args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /\nhint: /);
    }
    assert.equal(saved(n), before);
  });
});

describe('a running VM without shared memory', () => {
  const m = bed.name('nomem');
  before(() => bed.createTiny(m, ['--start']));

  test('is refused without --restart, changing nothing; --restart restarts it with shared memory and mounts', async () => {
    const before = saved(m);
    const r = await bed.vms(['mount', m, shares.share, '/mnt/s']);
    assert.equal(r.code, 4, r.stderr);
    assert.match(
      r.stderr,
      /error: .* needs a restart for virtiofs: it runs without shared memory\nhint: add --restart/,
    );
    assert.equal(saved(m), before);

    const restarted = await bed.vms(['mount', m, shares.share, '/mnt/s', '--restart', '--json']);
    assert.equal(restarted.code, 0, restarted.stderr);
    assert.deepEqual(
      { restarted: restarted.json.restarted, mounted: restarted.json.mounted },
      { restarted: true, mounted: true },
    );
    assert.match(live(m), /<access mode='shared'\/>/);
    assert.equal(await bed.guest(m, 'cat /mnt/s/from-host.txt'), 'share from the host\n');
    assert.match(await fstab(m), new RegExp(`^${shareTag('/mnt/s')} /mnt/s virtiofs`, 'm'));
  });
});
