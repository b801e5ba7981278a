import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GUEST, ROOT, testbed } from '../helpers/testbed.js';

// vms as a person runs it after `vms bootstrap`: as a user of the libvirt group, not root, with QEMU running as
// libvirt-qemu. test/setup lets the libvirt group reach libvirtd without polkit, which is what Arch's polkit rule
// grants that group. Every other test file runs vms as root, which no file permission stops.

const bed = testbed('user');
const MEMBER = `vms-${bed.id}`; // in the libvirt group, as `vms bootstrap` leaves the user
const OUTSIDER = `vmx-${bed.id}`; // not in it
const HOME = join(bed.dir, 'home');
const FIXTURES = join(bed.dir, 'fixtures'); // the repo may be where other users cannot read (root's home)
const SMALL = [
  '--iso',
  GUEST.archIso,
  '--memory',
  '256M',
  '--cpus',
  '1',
  '--disk',
  '128M',
  '--network',
  'none',
  '--no-graphics',
];
const asMember = {
  as: MEMBER,
  env: { HOME, VMS_GUEST_DIR: join(FIXTURES, 'guest'), VMS_PROFILE_PATH: join(FIXTURES, 'profiles') },
  timeoutMs: 600_000,
};

const uidOf = (user: string) => Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
const libvirtGid = () => Number(execFileSync('getent', ['group', 'libvirt'], { encoding: 'utf8' }).split(':')[2]);
const socketOf = (vm: string) => join(bed.env.VMS_STATE_DIR!, vm, 'serial.sock');

/** What connecting to a unix socket as `user` gives: 'connected' or the error code. */
function connectAs(user: string, path: string): string {
  const script = `require('net').connect(process.argv[1]).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); })`;
  const r = spawnSync(
    'setpriv',
    [`--reuid=${user}`, `--regid=${user}`, '--init-groups', process.execPath, '-e', script, path],
    { encoding: 'utf8' },
  );
  return r.stdout.trim() || r.stderr;
}

before(() => {
  execFileSync('useradd', ['-M', '-G', 'libvirt', MEMBER]);
  execFileSync('useradd', ['-M', OUTSIDER]);
  // The directories as `vms bootstrap` makes them: group libvirt, 2775.
  for (const d of ['VMS_IMAGES_DIR', 'VMS_STATE_DIR', 'VMS_ISO_DIR', 'VMS_CACHE_DIR']) {
    mkdirSync(bed.env[d]!, { recursive: true });
    chownSync(bed.env[d]!, 0, libvirtGid());
    chmodSync(bed.env[d]!, 0o2775);
  }
  mkdirSync(HOME);
  chownSync(HOME, uidOf(MEMBER), libvirtGid());
  for (const f of ['guest', 'profiles']) cpSync(join(ROOT, 'test/fixtures', f), join(FIXTURES, f), { recursive: true });
});

after(() => {
  bed.cleanup();
  for (const user of [MEMBER, OUTSIDER]) spawnSync('userdel', [user]);
});

test('a session from before joining the libvirt group: doctor and the libvirt error say to log in again', async () => {
  const stale = { ...asMember, staleSession: true };
  const doctor = await bed.vms(['doctor', '--json'], stale);
  const group = doctor.json.checks.find((c: any) => c.check === 'group');
  assert.equal(group.status, 'fail');
  assert.equal(group.message, `${MEMBER} is in the libvirt group, but this session started before that`);
  const list = await bed.vms(['list'], stale);
  assert.equal(list.code, 5);
  assert.match(list.stderr, /error: cannot reach libvirt at qemu:\/\/\/system: .*Permission denied/);
  assert.match(
    list.stderr,
    /hint: libvirt lets the libvirt group in: `vms bootstrap` adds you to it, then log out and in again/,
  );
});

describe('vms as a user of the libvirt group', () => {
  const n = bed.name('work');
  const c = bed.name('copy');
  const c2 = bed.name('copy2');
  const c3 = bed.name('copy3');

  test("create installs and applies the profile over the serial console, which is the user's", async () => {
    const r = await bed.vms(['create', n, '--profile', 'tbase', ...SMALL], asMember);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, new RegExp(`password for root and ${MEMBER}: in `), 'the guest user is the one who ran vms');
    const sock = statSync(socketOf(n));
    assert.ok(sock.isSocket());
    assert.equal(sock.uid, uidOf(MEMBER), 'the console socket belongs to the user, not to libvirt-qemu');
    assert.equal(sock.gid, libvirtGid(), 'and to the libvirt group');
    assert.equal(sock.mode & 0o060, 0o060, 'which may connect too');
    const password = statSync(join(bed.env.VMS_STATE_DIR!, n, 'root-password'));
    assert.deepEqual([password.uid, password.mode & 0o777], [uidOf(MEMBER), 0o600]);
  });

  test("the install's download, written by the guest's root, joins the shared cache as a 0644 file of the user's", () => {
    const pkg = statSync(join(bed.env.VMS_CACHE_DIR!, 'pkg', `vms-test-${n}-1-1-any.pkg.tar.zst`));
    assert.deepEqual([pkg.uid, pkg.mode & 0o7777], [uidOf(MEMBER), 0o644]);
    assert.ok(!existsSync(join(bed.env.VMS_CACHE_DIR!, 'pkg-vm', n)), 'the per-VM cache is gone');
    for (const d of ['iso', 'pkg', 'pkg-vm']) {
      assert.equal(
        statSync(join(bed.env.VMS_CACHE_DIR!, d)).mode & 0o7777,
        0o2775,
        `cache/${d} is shared with the libvirt group`,
      );
    }
  });

  test('apply, as the user, runs a profile over the console with the password it keeps', async () => {
    const r = await bed.vms(['apply', n, 'tbase', '--json'], asMember);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.applied, ['tbase']);
    const password = readFileSync(join(bed.env.VMS_STATE_DIR!, n, 'root-password'), 'utf8').trim();
    assert.deepEqual((await bed.guest(n, 'cat /root/profiles.log', password)).trim().split('\n'), ['tbase', 'tbase']);
  });

  test('a user outside the libvirt group cannot connect to the console', () => {
    assert.equal(connectAs(OUTSIDER, socketOf(n)), 'EACCES');
    assert.equal(connectAs(MEMBER, socketOf(n)), 'connected');
  });

  test('a clone made by the user has a console of theirs, and logs in with the copied password', async () => {
    assert.equal((await bed.vms(['kill', n], asMember)).code, 0);
    const r = await bed.vms(['clone', n, c, '--start'], asMember);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(statSync(socketOf(c)).uid, uidOf(MEMBER));
    const password = readFileSync(join(bed.env.VMS_STATE_DIR!, c, 'root-password'), 'utf8').trim();
    assert.match(await bed.guest(c, 'echo clone-$((6*7))', password), /clone-42/);
  });

  test('cloning a running VM: its disk, now a base, belongs to the qemu user, so it stays writable and that is said', async () => {
    const base = (await bed.vms(['info', c, '--json'], asMember)).json.disks[0].path;
    const r = await bed.vms(['clone', c, c2], asMember);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `note: ${base} stays writable: it belongs to the qemu user while ${c} runs \\(\`sudo chmod 444 ${base}\` protects it\\)`,
      ),
    );
    assert.match(r.stdout, new RegExp(`now both stand on ${base}\n`), 'not called read-only');
    assert.equal(statSync(base).mode & 0o777, 0o644);
    // A shut-off VM's disk is the user's again (libvirt gave it back): cloning it makes a read-only base.
    const off = await bed.vms(['clone', c2, c3, '--json'], asMember);
    assert.equal(off.code, 0, off.stderr);
    assert.deepEqual(off.json.writable, []);
    assert.equal(statSync(off.json.frozen[0]).mode & 0o777, 0o444);
  });

  test('destroy, as the user, leaves nothing of any VM', async () => {
    const said: string[] = [];
    for (const vm of [c3, c2, c, n]) {
      const r = await bed.vms(['destroy', vm, '--yes'], asMember);
      assert.equal(r.code, 0, r.stderr);
      said.push(r.stdout);
    }
    assert.deepEqual(bed.domains(), []);
    assert.deepEqual(readdirSync(bed.env.VMS_IMAGES_DIR!), [], said.join(''));
    // Only vms' own bookkeeping stays: the lock files, and no journal.
    assert.deepEqual(
      readdirSync(bed.env.VMS_STATE_DIR!).filter((f) => f !== '.locks' && f !== '.operations'),
      [],
    );
    assert.deepEqual(readdirSync(join(bed.env.VMS_STATE_DIR!, '.operations')), []);
  });
});

describe("an EFI VM of the user's", () => {
  const e = bed.name('efi');
  const e2 = bed.name('efi2');

  test('its NVRAM, which libvirt made for the qemu user (0600), is copied for a clone through libvirt', async () => {
    const tiny = [
      '--bare',
      '--firmware',
      'efi',
      '--memory',
      '512M',
      '--cpus',
      '1',
      '--disk',
      '64M',
      '--network',
      'none',
      '--no-graphics',
    ];
    const kernel = ['--kernel', GUEST.kernel, '--initrd', GUEST.initrd, '--cmdline', 'console=ttyS0'];
    const made = await bed.vms(['create', e, ...tiny, ...kernel, '--start', '--json'], asMember);
    assert.equal(made.code, 0, made.stderr);
    await bed.guest(e, 'test -d /sys/firmware/efi'); // booted under OVMF, which has written its variables
    assert.equal((await bed.vms(['kill', e], asMember)).code, 0);
    const nvram = statSync(made.json.nvram);
    assert.notEqual(nvram.uid, uidOf(MEMBER), "not the user's: a plain copy would fail");
    const r = await bed.vms(['clone', e, e2, '--start', '--json'], asMember);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(readFileSync(r.json.nvram).equals(readFileSync(made.json.nvram)), 'the same variables');
    await bed.guest(e2, 'test -d /sys/firmware/efi');
    for (const vm of [e2, e]) assert.equal((await bed.vms(['destroy', vm, '--yes'], asMember)).code, 0);
    assert.deepEqual(bed.domains(), []);
  });
});
