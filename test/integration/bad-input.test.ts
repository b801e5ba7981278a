import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { shareTag } from '../../src/libvirt/fs-xml.js';
import { GUEST, ROOT, testbed } from '../helpers/testbed.js';

// Bad input and security, on the real libvirtd: --iso takes only ISO 9660 images, `vms mount` refuses the host's
// system directories, a read-only share stays read-only through the hint a shut-off mount prints, notes XML cannot
// hold are bad input, and the hints quote paths so that pasting one runs exactly what it shows.

const bed = testbed('input');
after(() => bed.cleanup());

const saved = (n: string) => bed.virsh('dumpxml', n, '--inactive');
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
/** What must not change about a file: owner, group, mode and content. */
const fileState = (path: string) => {
  const s = statSync(path);
  return { uid: s.uid, gid: s.gid, mode: s.mode.toString(8), sha256: sha256(path) };
};

/** A refusal: the exit code, exactly one error line and one hint line on stderr. */
function assertRefused(r: { code: number; stderr: string }, code: number, error: RegExp, hint: RegExp) {
  assert.equal(r.code, code, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l && !l.startsWith('==> '));
  assert.equal(lines.length, 2, `one error line and one hint:\n${r.stderr}`);
  assert.match(lines[0]!, error);
  assert.match(lines[1]!, hint);
}

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

/**
 * Runs a line a hint printed as a user pasting it into sh would, in `cwd`: `vms` is this build of vms, `sudo` runs
 * its command as it is (the tests run as root). Returns sh's exit code and output.
 */
function pasteIntoShell(line: string, cwd: string) {
  const prelude = `vms() { ${process.execPath} ${join(ROOT, 'dist/vms.cjs')} "$@"; }; sudo() { "$@"; }; `;
  try {
    const out = execFileSync('sh', ['-c', prelude + line], {
      cwd,
      env: { ...process.env, ...bed.env, NO_COLOR: '1' },
      encoding: 'utf8',
      stdio: 'pipe',
      timeout: 600_000,
    });
    return { code: 0, out };
  } catch (err) {
    const e = err as { status: number; stdout: string; stderr: string };
    return { code: e.status, out: `${e.stdout}${e.stderr}` };
  }
}

/** A directory whose name has everything a shell would act on: a quote, `$(…)`, backquotes and spaces. */
const AWKWARD = "it's $(touch PWNED) `touch PWNED2` dir";

describe('--iso takes only ISO 9660 images', () => {
  const dir = join(bed.dir, 'isos');
  mkdirSync(dir, { recursive: true });
  const secret = join(dir, 'root-only');
  writeFileSync(secret, 'root:$6$not-a-real-hash:19000:0:99999:7:::\n'.repeat(64));
  chmodSync(secret, 0o600);
  const link = join(dir, 'innocent.iso');
  symlinkSync(secret, link);
  const plain = join(dir, 'plain.iso');
  writeFileSync(plain, 'not an ISO, only named like one\n'.repeat(2000));
  const directory = join(dir, 'a-directory.iso');
  mkdirSync(directory);
  // A link in the ISO dir, given by name as an ISO in the ISO dir is.
  symlinkSync(secret, join(bed.env.VMS_ISO_DIR!, 'by-name.iso'));
  const TINY = ['--memory', '256M', '--cpus', '1', '--disk', '64M', '--network', 'none', '--no-graphics'];
  const HINT = /^hint: --iso takes an ISO 9660 image: its name in .*\/iso, or its path$/;

  const cases: [string, string[], RegExp, string][] = [
    [
      'a link to a root-only 0600 file (create --bare --start)',
      ['--bare', '--iso', link, '--start'],
      new RegExp(`^error: ${link} \\(a link to ${secret}\\) is not an ISO 9660 image$`),
      secret,
    ],
    [
      'such a link in the ISO dir, given by name',
      ['--bare', '--iso', 'by-name.iso', '--start'],
      /^error: .*\/iso\/by-name\.iso \(a link to .*\/root-only\) is not an ISO 9660 image$/,
      secret,
    ],
    [
      'a plain file named .iso',
      ['--bare', '--iso', plain, '--start'],
      new RegExp(`^error: ${plain} is not an ISO 9660 image$`),
      plain,
    ],
    // Not started even before the fix, so /etc/shadow could never be handed to the qemu user here.
    [
      '/etc/shadow',
      ['--bare', '--iso', '/etc/shadow'],
      /^error: \/etc\/shadow is not an ISO 9660 image$/,
      '/etc/shadow',
    ],
    [
      'a directory: "is a directory", not "not found"',
      ['--bare', '--iso', directory],
      new RegExp(`^error: ${directory} is a directory, not an ISO image$`),
      directory,
    ],
  ];
  for (const [what, args, error, target] of cases) {
    test(`${what}: exit 2, one error and a hint; no domain, no file, the target's owner, mode and content unchanged`, async () => {
      const n = bed.name('iso');
      const before = statSync(target).isDirectory() ? statSync(target).mode : fileState(target);
      const r = await bed.vms(['create', n, ...args, ...TINY]);
      assertRefused(r, 2, error, HINT);
      assertNothingMade(n);
      assert.deepEqual(statSync(target).isDirectory() ? statSync(target).mode : fileState(target), before);
    });
  }

  test('the install (`vms create NAME --iso`) refuses a link to a root-only file the same way', async () => {
    const n = bed.name('isoinst');
    const before = fileState(secret);
    const r = await bed.vms(['create', n, '--iso', link, ...TINY]);
    assertRefused(
      r,
      2,
      new RegExp(`^error: ${link} \\(a link to ${secret}\\) is not an ISO 9660 image$`),
      /^hint: `vms iso fetch` downloads the current Arch ISO$/,
    );
    assertNothingMade(n);
    assert.deepEqual(fileState(secret), before);
  });

  test('as a user of the libvirt group: /etc/shadow, or a link to it, is a file vms cannot read: exit 2, nothing made, /etc/shadow untouched', async () => {
    const user = `vms-${bed.id}`;
    execFileSync('useradd', ['-M', '-G', 'libvirt', user]);
    try {
      const own = join(bed.dir, 'user-links');
      mkdirSync(own);
      chownSync(own, Number(execFileSync('id', ['-u', user], { encoding: 'utf8' })), 0);
      const link = join(own, 'shadow.iso');
      execFileSync('setpriv', [`--reuid=${user}`, `--regid=${user}`, '--init-groups', 'ln', '-s', '/etc/shadow', link]);
      const before = fileState('/etc/shadow');
      // Never with --start: before this fix that would have handed /etc/shadow to the qemu user.
      for (const [iso, shown] of [
        ['/etc/shadow', '/etc/shadow'],
        [link, `${link} \\(a link to /etc/shadow\\)`],
      ]) {
        const n = bed.name('isouser');
        const r = await bed.vms(['create', n, '--bare', '--iso', iso, ...TINY], { as: user });
        assertRefused(
          r,
          2,
          new RegExp(`^error: cannot read ${shown}: permission denied$`),
          /^hint: vms takes only ISO images you can read$/,
        );
        assertNothingMade(n);
      }
      assert.deepEqual(fileState('/etc/shadow'), before);
    } finally {
      spawnSync('userdel', [user]);
    }
  });

  test('a link to a real ISO is taken, and the definition names the ISO itself, not the link', async () => {
    const good = join(dir, 'good-link.iso');
    symlinkSync(GUEST.iso, good);
    const r = await bed.vms(['create', bed.name('isook'), '--print-xml', '--bare', '--iso', good, ...TINY]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`<source file='${GUEST.iso}'/>`));
    assert.doesNotMatch(r.stdout, /good-link/);
  });
});

describe('vms mount, set --notes and the hints on one shut-off guest', () => {
  const n = bed.name('vm');
  before(() => bed.createTiny(n));

  for (const [what, args] of [
    ['/', ['/']],
    ['/etc', ['/etc']],
    ['/etc with --force (that flag is for a non-empty GUESTDIR only)', ['/etc', '--force']],
    ['/usr/bin through a link in a harmless place', ['@link']],
    ['/root', ['/root']],
    ['/var', ['/var']],
  ] as const) {
    test(`mount of ${what} is refused: exit 2, the reason and the override; the definition unchanged`, async () => {
      const link = join(bed.dir, 'bin-link');
      if (!existsSync(link)) symlinkSync('/usr/bin', link);
      const hostArgs = args.map((a) => (a === '@link' ? link : a));
      const xml = saved(n);
      const r = await bed.vms(['mount', n, ...hostArgs.slice(0, 1), '/mnt/host', ...hostArgs.slice(1)]);
      assertRefused(
        r,
        2,
        /^error: .* is a system directory: virtiofsd runs as root, so the guest would get it with root's rights on the host$/,
        /^hint: share a directory of your own \(your home or one below it is fine\), or add --allow-system-dir if you mean it$/,
      );
      assert.equal(saved(n), xml);
    });
  }

  test('--allow-system-dir shares it all the same (here: into the definition of the shut-off VM), and umount takes it out', async () => {
    const xml = saved(n);
    const r = await bed.vms(['mount', n, '/etc', '/mnt/etc', '--allow-system-dir']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(saved(n), new RegExp(`<source dir='/etc'/>\\s*<target dir='${shareTag('/mnt/etc')}'/>`));
    assert.match(
      r.stdout,
      /next: vms start \S+ && vms mount \S+ \/etc \/mnt\/etc --allow-system-dir {3}#/,
      'the hint carries the override',
    );
    assert.equal((await bed.vms(['umount', n, '/mnt/etc'])).code, 0);
    assert.doesNotMatch(saved(n), /<source dir='\/etc'\/>/);
    assert.notEqual(saved(n), xml, 'shared memory stays (it costs nothing)');
  });

  for (const [what, notes] of [
    ['U+FFFF', 'before\uFFFFafter'],
    ['U+FFFE', '\uFFFE'],
    ['a control character (U+0007)', 'ring\x07'],
  ] as const) {
    test(`set --notes with ${what}: exit 2 with a clear error, not the XML builder's; nothing changed`, async () => {
      const xml = saved(n);
      const r = await bed.vms(['set', n, '--notes', notes]);
      const code = `U+${notes
        // eslint-disable-next-line no-control-regex -- the control characters are what this test is about
        .match(/[\x00-\x08\uFFFE\uFFFF]/)![0]
        .codePointAt(0)!
        .toString(16)
        .toUpperCase()
        .padStart(4, '0')}`;
      assertRefused(
        r,
        2,
        new RegExp(
          `^error: the notes may not hold ${code.replace('+', '\\+')}: control characters, U\\+FFFE, U\\+FFFF and lone surrogates cannot be kept in the domain's XML$`,
        ),
        /^hint: plain text, tabs and newlines are fine$/,
      );
      assert.equal(saved(n), xml);
    });
  }

  test('snapshot create --description with U+FFFF: exit 2 before libvirt is asked; no snapshot', async () => {
    const r = await bed.vms(['snapshot', 'create', n, 's1', '--description', 'x\uFFFF']);
    assertRefused(
      r,
      2,
      /^error: the description may not hold U\+FFFF: .* cannot be kept in the snapshot's XML$/,
      /^hint: plain text, tabs and newlines are fine$/,
    );
    assert.equal(bed.virsh('snapshot-list', n, '--name').trim(), '');
  });

  test("mount --readonly of a shut-off VM (a HOSTDIR with ' and $(…)): the pasted hint mounts it read-only, and it stays so", async () => {
    const hostDir = join(bed.dir, AWKWARD);
    mkdirSync(hostDir);
    writeFileSync(join(hostDir, 'from-host.txt'), 'read me\n');
    const tag = shareTag('/mnt/ro');

    const r = await bed.vms(['mount', n, hostDir, '/mnt/ro', '--readonly']);
    assert.equal(r.code, 0, r.stderr);
    const quoted = `'${hostDir.replaceAll("'", `'\\''`)}'`;
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(
      lines[0],
      `${hostDir} is shared read-only into ${n} (shut off) as ${tag}: only its definition changed`,
    );
    assert.equal(
      lines[1],
      `next: vms start ${n} && vms mount ${n} ${quoted} /mnt/ro --readonly   # mounts it read-only in the guest and adds it to /etc/fstab`,
    );
    assert.match(
      lines[2]!,
      /^note: read-only in the guest only: libvirt cannot make this virtiofs share read-only on the host \(libvirt 9\.0 refuses <readonly\/> for virtiofs\)/,
    );
    const xml = saved(n);
    assert.match(
      xml,
      /<vms:readonly-share>vms-mnt-mnt-ro-[0-9a-f]{8}<\/vms:readonly-share>/,
      'read-only kept in the definition',
    );
    assert.doesNotMatch(xml, /<readonly\/>/, 'libvirt 9.0 keeps no <readonly/> for virtiofs');

    // What a user does next: paste the hint into a shell.
    const pasted = pasteIntoShell(lines[1]!.replace(/^next: /, ''), bed.dir);
    assert.equal(pasted.code, 0, pasted.out);
    assert.match(pasted.out, new RegExp(`is mounted read-only at /mnt/ro in ${n}`));
    assert.deepEqual(
      readdirSync(bed.dir).filter((f) => f.startsWith('PWNED')),
      [],
      'nothing in the path ran',
    );
    assert.match(await bed.guest(n, 'grep " /mnt/ro " /proc/mounts'), /^vms-mnt-mnt-ro-\S+ \/mnt\/ro virtiofs ro[, ]/);
    assert.equal(await bed.guest(n, 'cat /mnt/ro/from-host.txt'), 'read me\n');
    assert.match(await bed.guest(n, 'touch /mnt/ro/x 2>&1; mkdir /mnt/ro/d 2>&1; true'), /Read-only file system/);
    assert.deepEqual(readdirSync(hostDir), ['from-host.txt'], 'the guest wrote nothing into the host directory');
    assert.match(
      await bed.guest(n, 'cat /etc/fstab'),
      new RegExp(`^${tag} /mnt/ro virtiofs defaults,ro,nofail 0 0$`, 'm'),
    );

    // A mount again without --readonly (after a umount in the guest, as after a reboot) keeps it read-only.
    await bed.guest(n, 'umount /mnt/ro');
    const again = await bed.vms(['mount', n, hostDir, '/mnt/ro']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(
      again.stdout,
      /note: read-only, as .*'s definition keeps this share since it was mounted with --readonly/,
    );
    assert.match(await bed.guest(n, 'grep " /mnt/ro " /proc/mounts'), / virtiofs ro[, ]/);
    assert.match(
      await bed.guest(n, 'cat /etc/fstab'),
      new RegExp(`^${tag} /mnt/ro virtiofs defaults,ro,nofail 0 0$`, 'm'),
    );
    assert.deepEqual(readdirSync(hostDir), ['from-host.txt']);

    const off = await bed.vms(['umount', n, '/mnt/ro']);
    assert.equal(off.code, 0, off.stderr);
    assert.doesNotMatch(saved(n), /readonly-share/, 'umount takes the record away with the share');
  });
});

describe('hints are quoted for the shell', () => {
  test("doctor's fix for a missing images dir with ' and $(…) in its path, pasted into sh, makes exactly that directory", async () => {
    const base = join(bed.dir, 'paste');
    mkdirSync(base);
    const images = join(base, AWKWARD, 'images');
    const r = await bed.vms(['doctor', '--json'], { env: { VMS_IMAGES_DIR: images } });
    const check = r.json.checks.find((c: { check: string }) => c.check === 'images');
    assert.equal(check.status, 'fail');
    const fix: string = check.fix;
    assert.equal(fix, `\`vms bootstrap\` creates it, or: sudo mkdir -p '${images.replaceAll("'", `'\\''`)}'`);
    const pasted = pasteIntoShell(fix.replace(/^.*or: /, ''), base);
    assert.equal(pasted.code, 0, pasted.out);
    assert.ok(statSync(images).isDirectory(), 'the directory the hint names was made');
    assert.deepEqual(readdirSync(base), [AWKWARD], 'and nothing else: no PWNED, no half-made path');
  });
});
