import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { GUEST, ROOT, testbed } from '../helpers/testbed.js';

// `vms create` end to end on real libvirt + QEMU: the test ISO's live system logs in like archiso, the test installer
// (test/fixtures/guest) partitions the disk and puts a bootable system on it, and the test profiles run there after
// the VM booted from that disk. Only what the guest runs is a stand-in; every step of vms is the real one.

const bed = testbed('install');
const FIXTURES = join(ROOT, 'test/fixtures');
const guestDir = (kind: string) => ({
  VMS_GUEST_DIR: join(FIXTURES, kind),
  VMS_PROFILE_PATH: join(FIXTURES, 'profiles'),
});
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
const ISO_UUID = '2026-11-01-12-00-00-00';

after(() => bed.cleanup());

/** Nothing of VM `n` is left: no domain, disk, directory or per-VM package cache. */
function assertNothingLeft(n: string) {
  assert.ok(!bed.domains().includes(n), `domain ${n} is gone`);
  assert.deepEqual(
    readdirSync(bed.env.VMS_IMAGES_DIR!).filter((f) => f.startsWith(n)),
    [],
    'no disk left',
  );
  assert.ok(!existsSync(join(bed.env.VMS_STATE_DIR!, n)), 'no VM directory left');
  assert.ok(!existsSync(join(bed.env.VMS_CACHE_DIR!, 'pkg-vm', n)), 'no package cache left');
}

const password = (n: string) => readFileSync(join(bed.env.VMS_STATE_DIR!, n, 'root-password'), 'utf8').trim();
const inactiveXml = (n: string) => bed.virsh('dumpxml', n, '--inactive');

describe('vms create: the whole install, then the profiles on the installed disk', () => {
  const n = bed.name('full');
  let created: any;
  let out = { stdout: '', stderr: '' };

  before(async () => {
    // Not --json: that prints no progress, and the steps are part of what is tested.
    const r = await bed.vms(['create', n, '--profile', 'tchild', ...SMALL], {
      env: guestDir('guest'),
      timeoutMs: 600_000,
    });
    out = r;
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    created = (await bed.vms(['info', n, '--json'])).json;
  });

  test('reports each step, and what it made', async () => {
    for (const step of [
      'Checking input',
      'Reading archlinux-test.iso',
      'Booting the live ISO',
      'Logging in on the serial console',
      'Copying the installer',
      'Installing (install.sh)',
      `Switching ${n} to boot from its disk`,
      'Applying profile tbase',
      'Applying profile tchild',
      `Rebooting ${n}`,
    ]) {
      assert.ok(out.stderr.includes(`==> ${step}`), `step '${step}' in:\n${out.stderr}`);
    }
    assert.match(out.stderr, /note: install phase partition \(up to 60s\)/);
    const dir = join(bed.env.VMS_STATE_DIR!, n);
    assert.match(
      out.stdout,
      new RegExp(`password for root and arch: in ${dir}/root-password`),
      'root runs the tests: the guest user falls back to arch',
    );
    assert.match(out.stdout, new RegExp(`install transcript: ${dir}/install.log`));
    assert.match(out.stdout, new RegExp(`vms console ${n} `));
    assert.equal(created.state, 'running');
    assert.equal(created.profile, 'tchild');
    assert.equal(created.pending, undefined);
    assert.equal(created.createdFrom, GUEST.archIso);
    const listed = (await bed.vms(['list', '--json'])).json.find((v: any) => v.name === n);
    assert.equal(
      listed.pending,
      undefined,
      'list reads the saved metadata, not the copy the running domain started with',
    );
    assert.equal(listed.profile, 'tchild');
  });

  test('the live ISO was booted with the archiso arguments, and the installer got its files', () => {
    const log = readFileSync(join(bed.env.VMS_STATE_DIR!, n, 'install.log'), 'utf8');
    assert.match(log, new RegExp(`archisobasedir=arch archisosearchuuid=${ISO_UUID} console=ttyS0,115200`));
    assert.match(log, /archiso login:/);
    assert.match(log, /::vms-phase partition \d+/);
  });

  test('afterwards the VM boots from its disk alone: no kernel, no cdrom, no install shares', () => {
    const xml = inactiveXml(n);
    assert.doesNotMatch(xml, /<kernel>|<initrd>|<cmdline>|device='cdrom'|vms-pkg-/);
    assert.match(xml, /<boot dev='hd'\/>/);
    assert.match(xml, new RegExp(`<entry>vms.name=${n}</entry>`));
  });

  test('inside: the installed system, its hostname, the root password, and the profiles in order', async () => {
    const s = await bed.shell(n, password(n));
    try {
      const run = async (cmd: string) => (await s.run(cmd)).output.trim();
      assert.match(await run('cat /proc/cmdline'), /root=\/dev\/vda1/, 'booted from the installed disk');
      assert.equal(await run('hostname'), n);
      assert.deepEqual(
        (await run('cat /root/profiles.log')).split('\n'),
        ['tbase', 'tchild'],
        'parents first, each once',
      );
    } finally {
      s.close();
    }
  });

  test('the password and settings are kept 0600 in the VM directory', () => {
    for (const f of ['root-password', 'settings.sh', 'install.log']) {
      assert.equal(statSync(join(bed.env.VMS_STATE_DIR!, n, f)).mode & 0o777, 0o600, f);
    }
    assert.match(readFileSync(join(bed.env.VMS_STATE_DIR!, n, 'settings.sh'), 'utf8'), /^VMS_PASSWORD_HASH='\$6\$/m);
  });

  test('the kernel and initramfs were read out of the ISO once, into the cache by checksum', () => {
    const sha = execFileSync('sha256sum', [GUEST.archIso], { encoding: 'utf8' }).split(' ')[0]!;
    const dir = join(bed.env.VMS_CACHE_DIR!, 'iso', sha);
    for (const f of ['vmlinuz-linux', 'initramfs-linux.img']) assert.ok(existsSync(join(dir, f)), f);
  });

  test('the package cache: what the install downloaded went into the shared cache, the per-VM cache is gone', () => {
    const pkg = join(bed.env.VMS_CACHE_DIR!, 'pkg', `vms-test-${n}-1-1-any.pkg.tar.zst`);
    assert.equal(readFileSync(pkg, 'utf8'), `downloaded on ${n}\n`, 'written by the guest over virtiofs');
    assert.ok(!existsSync(join(bed.env.VMS_CACHE_DIR!, 'pkg-vm', n)));
    assert.match(out.stderr, /note: 1 downloaded packages added to the shared cache/);
  });

  test('vms apply on the running VM runs the chain again and leaves it running', async () => {
    const r = await bed.vms(['apply', n, 'tchild', '--json'], { env: guestDir('guest'), timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.applied, ['tbase', 'tchild']);
    assert.equal(r.json.state, 'running');
    const log = await bed.guest(n, 'cat /root/profiles.log', password(n));
    assert.deepEqual(log.trim().split('\n'), ['tbase', 'tchild', 'tbase', 'tchild']);
  });

  test('vms apply on a shut-off VM starts it, runs the profile, and powers it off again', async () => {
    assert.equal((await bed.vms(['kill', n])).code, 0);
    const r = await bed.vms(['apply', n, 'tbase', '--json'], { env: guestDir('guest'), timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.state, 'shut off');
    assert.match(readFileSync(r.json.transcript, 'utf8'), /vms apply .* tbase/);
    assert.equal((await bed.vms(['start', n])).code, 0);
    const log = await bed.guest(n, 'cat /root/profiles.log', password(n));
    assert.deepEqual(log.trim().split('\n'), ['tbase', 'tchild', 'tbase', 'tchild', 'tbase']);
  });

  test('a clone of an installed VM keeps its password and settings: vms apply works on it', async () => {
    const c = bed.name('fullc');
    const cloned = await bed.vms(['clone', n, c, '--json']);
    assert.equal(cloned.code, 0, cloned.stderr);
    for (const f of ['root-password', 'settings.sh']) {
      assert.equal(statSync(join(bed.env.VMS_STATE_DIR!, c, f)).mode & 0o777, 0o600, f);
    }
    assert.equal(password(c), password(n));
    const r = await bed.vms(['apply', c, 'tbase', '--json'], { env: guestDir('guest'), timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.state, 'shut off', 'started for it and powered off again');
  });

  test('apply: an unknown profile or VM is refused', async () => {
    const unknown = await bed.vms(['apply', n, 'nosuch'], { env: guestDir('guest') });
    assert.equal(unknown.code, 3);
    assert.match(unknown.stderr, /unknown profile 'nosuch'/);
    assert.match(unknown.stderr, /hint: known profiles: .*tbase/);
    const novm = await bed.vms(['apply', bed.name('nosuchvm'), 'tbase'], { env: guestDir('guest') });
    assert.equal(novm.code, 3);
  });
});

describe('vms create: failures leave nothing behind (or, with --keep-failed, a VM to resume)', () => {
  test('a failing install script (-v): its exit status and last lines, the transcript kept, nothing else', async () => {
    const n = bed.name('fail');
    const r = await bed.vms(['-v', 'create', n, '--profile', 'tbase', ...SMALL], {
      env: guestDir('guest-fail'),
      timeoutMs: 300_000,
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /archiso login:/, '-v streams the console transcript');
    assert.match(r.stderr, /virsh -c qemu:\/\/\/system start /, '-v shows the commands run');
    assert.match(r.stderr, /error: the install \(install\.sh\) failed with exit status 3/);
    assert.match(r.stderr, /test install failed on purpose/);
    const saved = /the whole transcript is in (\S+);/.exec(r.stderr)?.[1];
    assert.ok(saved && existsSync(saved), `transcript path in:\n${r.stderr}`);
    assert.match(readFileSync(saved, 'utf8'), /archiso login:/);
    assertNothingLeft(n);
  });

  test('an install phase that runs past its timeout: exit 6 naming the phase, nothing left', async () => {
    const n = bed.name('hang');
    const r = await bed.vms(['create', n, '--profile', 'tbase', ...SMALL], {
      env: guestDir('guest-hang'),
      timeoutMs: 300_000,
    });
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /install.sh did not finish phase 'hang' within 3s/);
    assertNothingLeft(n);
  });

  test('no login prompt within the boot timeout: exit 6, nothing left', async () => {
    const n = bed.name('slow');
    const r = await bed.vms(['create', n, '--profile', 'tbase', ...SMALL], {
      env: { ...guestDir('guest'), VMS_BOOT_TIMEOUT: '1' },
      timeoutMs: 300_000,
    });
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /no login prompt on the console within 1s/);
    assertNothingLeft(n);
  });

  test('Ctrl-C in the middle of the install: exit 130, nothing left', async () => {
    const n = bed.name('int');
    const slow = join(bed.dir, 'guest-slow');
    mkdirSync(slow, { recursive: true });
    writeFileSync(join(slow, 'install.sh'), 'echo "::vms-phase wait 600"\nsleep 600\n');
    const child = bed.spawnVms(['create', n, '--profile', 'tbase', ...SMALL], {
      VMS_GUEST_DIR: slow,
      VMS_PROFILE_PATH: join(FIXTURES, 'profiles'),
    });
    let stderr = '';
    await new Promise<void>((resolve) => {
      child.stderr!.on('data', (d) => {
        stderr += d;
        if (stderr.includes('install phase wait')) resolve();
      });
    });
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 130, stderr);
    assert.match(stderr, /interrupted/);
    assertNothingLeft(n);
  });

  test('--keep-failed keeps a failed install; --resume goes on from the install step', async () => {
    const n = bed.name('keep');
    const r = await bed.vms(['create', n, '--profile', 'tchild', ...SMALL, '--keep-failed'], {
      env: guestDir('guest-fail'),
      timeoutMs: 300_000,
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /hint: kept for inspection .*vms create .* --resume/);
    const info = await bed.vms(['info', n, '--json']);
    assert.equal(info.json.pending, 'install');
    const list = await bed.vms(['list']);
    assert.match(list.stdout, new RegExp(`${n}\\s+\\S+\\s+tchild \\(unfinished\\)`));

    const resumed = await bed.vms(['create', n, '--resume', '--json'], { env: guestDir('guest'), timeoutMs: 600_000 });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(resumed.json.pending, undefined);
    assert.equal(resumed.json.state, 'running');
    const log = await bed.guest(n, 'cat /root/profiles.log', password(n));
    assert.deepEqual(log.trim().split('\n'), ['tbase', 'tchild']);
    // A later install sees the earlier ones' downloads in the shared cache (read-only).
    assert.match(
      readFileSync(join(bed.env.VMS_STATE_DIR!, n, 'install.log'), 'utf8'),
      /cache vms-pkg-shared holds: .*vms-test-\S+-full-1-1-any\.pkg\.tar\.zst/,
    );

    const again = await bed.vms(['create', n, '--resume']);
    assert.equal(again.code, 4, 'a complete VM has nothing to resume');
    assert.match(again.stderr, /nothing to resume/);
  });

  test('a failing profile with --keep-failed: the VM is installed, --resume runs the profiles again', async () => {
    const n = bed.name('pfail');
    const r = await bed.vms(['create', n, '--profile', 'tfail', ...SMALL, '--keep-failed'], {
      env: guestDir('guest'),
      timeoutMs: 600_000,
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /error: profile tfail failed with exit status 4/);
    assert.equal((await bed.vms(['info', n, '--json'])).json.pending, 'profile');
    assert.doesNotMatch(inactiveXml(n), /<kernel>/, 'already switched to its disk');

    // The user fixes the profile (their own directory comes first) and goes on.
    const fixed = join(bed.dir, 'profiles-fixed');
    mkdirSync(fixed, { recursive: true });
    writeFileSync(join(fixed, 'tfail.sh'), '# vms-parent: tbase\necho fixed >> /root/profiles.log\n');
    const resumed = await bed.vms(['create', n, '--resume', '--json'], {
      env: { ...guestDir('guest'), VMS_PROFILE_PATH: `${fixed}:${join(FIXTURES, 'profiles')}` },
      timeoutMs: 600_000,
    });
    assert.equal(resumed.code, 0, resumed.stderr);
    const log = await bed.guest(n, 'cat /root/profiles.log', password(n));
    assert.deepEqual(log.trim().split('\n'), ['tbase', 'tbase', 'fixed']);
  });
});

describe('vms create: bad input is refused before anything is made', () => {
  const refused = async (args: string[], env: Record<string, string>, code: number, message: RegExp, hint: RegExp) => {
    const n = bed.name('bad');
    const r = await bed.vms(['create', n, ...args], { env });
    assert.equal(r.code, code, r.stderr);
    assert.match(r.stderr, message);
    assert.match(r.stderr, hint);
    assertNothingLeft(n);
  };

  test('an unknown profile', () =>
    refused(
      ['--profile', 'nosuch', ...SMALL],
      guestDir('guest'),
      3,
      /unknown profile 'nosuch'/,
      /hint: known profiles: .*minimal/,
    ));
  test('no Arch ISO', () =>
    refused(
      ['--profile', 'tbase', '--network', 'none'],
      guestDir('guest'),
      3,
      /ISO not found: .*archlinux-x86_64\.iso/,
      /hint: .*vms iso fetch/,
    ));
  test('an ISO that is not an Arch ISO', () =>
    refused(
      ['--profile', 'tbase', ...SMALL, '--iso', GUEST.iso],
      guestDir('guest'),
      1,
      /has no vmlinuz-linux in arch\/boot\/x86_64/,
      /hint: is this an Arch Linux ISO/,
    ));
  test('a bad user name', () =>
    refused(
      ['--profile', 'tbase', ...SMALL, '--user', 'Bad Name'],
      guestDir('guest'),
      2,
      /invalid user name 'Bad Name'/,
      /hint:/,
    ));
  test('not enough space in the images dir', () => {
    const tiny = join(bed.dir, 'tiny-images');
    mkdirSync(tiny, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', tiny]);
    return refused(
      ['--profile', 'tbase', ...SMALL],
      { ...guestDir('guest'), VMS_IMAGES_DIR: tiny },
      1,
      /not enough free space in .*tiny-images/,
      /hint: free some space/,
    ).finally(() => execFileSync('umount', [tiny]));
  });
});
