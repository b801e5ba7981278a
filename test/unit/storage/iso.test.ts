import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  ARCHISO_INITRD,
  ARCHISO_KERNEL,
  archisoCmdline,
  checkIsoImage,
  extractCommand,
  isoBootFiles,
  parsePrimaryVolumeDescriptor,
  readIsoIdentity,
  sha256File,
} from '../../../src/core/storage/iso.js';
import { VmsError } from '../../../src/errors.js';
import { resolveConfig } from '../../../src/config.js';
import { createContext } from '../../../src/core/context.js';
import { ExecaRunner, type RunResult } from '../../../src/runner.js';
import { FakeRunner, type Expected } from '../../helpers/fake-runner.js';

const TMP = mkdtempSync(join(tmpdir(), 'vms-unit-iso-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

const UNSET = '0000000000000000\0'; // ISO 9660's "date not specified": sixteen '0' digits and a zero zone byte

/** A primary volume descriptor: type 1, "CD001", the label at 40 and the creation/modification dates at 813/830. */
function pvd(label: string, created: string, modified: string): Buffer {
  const b = Buffer.alloc(2048);
  b[0] = 1;
  b.write('CD001', 1, 'latin1');
  b[6] = 1;
  b.write(label.padEnd(32, ' '), 40, 'latin1');
  b.write(created, 813, 'latin1');
  b.write(modified, 830, 'latin1');
  return b;
}

/** The smallest image blkid takes for ISO 9660: 16 empty sectors, the PVD, a set terminator. */
function isoImage(descriptor: Buffer): Buffer {
  const terminator = Buffer.alloc(2048);
  terminator[0] = 255;
  terminator.write('CD001', 1, 'latin1');
  terminator[6] = 1;
  return Buffer.concat([Buffer.alloc(16 * 2048), descriptor, terminator, Buffer.alloc(4 * 2048)]);
}

let imageCount = 0;
function writeTemp(data: Buffer): string {
  const path = join(TMP, `image-${imageCount++}.iso`);
  writeFileSync(path, data);
  return path;
}

/** What blkid (libblkid, which archiso's initramfs relies on through udev) says about an image. */
function blkid(path: string): { uuid?: string; label: string } {
  const tag = (name: string) =>
    execFileSync('blkid', ['-p', '-s', name, '-o', 'value', path], { encoding: 'utf8' }).trim();
  return { uuid: tag('UUID') || undefined, label: tag('LABEL') };
}

const CASES: [string, Buffer, { label: string; uuid?: string }][] = [
  [
    'both dates: the modification date wins',
    pvd('ARCH_202405', '2024050110004300\0', '2025010203040506\x04'),
    { label: 'ARCH_202405', uuid: '2025-01-02-03-04-05-06' },
  ],
  [
    'unset modification date: the creation date',
    pvd('ARCH_202405', '2024050110004300\0', UNSET),
    { label: 'ARCH_202405', uuid: '2024-05-01-10-00-43-00' },
  ],
  ['no dates at all: no uuid', pvd('NO DATES', UNSET, UNSET), { label: 'NO DATES', uuid: undefined }],
  [
    'a label of all 32 characters',
    pvd('A'.repeat(32), '2024050110004300\0', '2024050110004300\0'),
    { label: 'A'.repeat(32), uuid: '2024-05-01-10-00-43-00' },
  ],
];

test('parsePrimaryVolumeDescriptor: label without its padding, uuid from the modification or else the creation date', () => {
  for (const [name, buffer, expected] of CASES) assert.deepEqual(parsePrimaryVolumeDescriptor(buffer), expected, name);
});

test('readIsoIdentity reads what blkid reads, on images around the hand-built descriptors', async () => {
  for (const [name, buffer, expected] of CASES) {
    const path = writeTemp(isoImage(buffer));
    assert.deepEqual(blkid(path), expected, `blkid on ${name}`); // the expectations are libblkid's own
    assert.deepEqual(await readIsoIdentity(path), expected, name);
  }
});

test('parsePrimaryVolumeDescriptor refuses what is not an ISO 9660 PVD', () => {
  const notPvd: [string, Buffer][] = [
    ['zeros', Buffer.alloc(2048)],
    [
      'a terminator, not a PVD',
      (() => {
        const b = pvd('X', UNSET, UNSET);
        b[0] = 255;
        return b;
      })(),
    ],
    [
      'wrong magic',
      (() => {
        const b = pvd('X', UNSET, UNSET);
        b.write('CD002', 1, 'latin1');
        return b;
      })(),
    ],
    ['cut short (a file smaller than 34 KiB)', pvd('X', UNSET, UNSET).subarray(0, 500)],
    ['empty', Buffer.alloc(0)],
  ];
  for (const [name, buffer] of notPvd) {
    assert.throws(
      () => parsePrimaryVolumeDescriptor(buffer),
      (err: unknown) => {
        assert.ok(err instanceof VmsError, `${name}: ${String(err)}`);
        assert.equal(err.code, 'usage');
        assert.match(err.message, /not an ISO 9660 image/);
        return true;
      },
      name,
    );
  }
});

test('readIsoIdentity refuses a file that is not an ISO, however short', async () => {
  for (const data of [Buffer.alloc(0), randomBytes(100), Buffer.alloc(40 * 2048)]) {
    await assert.rejects(
      readIsoIdentity(writeTemp(data)),
      (err: unknown) => err instanceof VmsError && /not an ISO 9660 image/.test(err.message),
    );
  }
});

test('checkIsoImage takes an ISO 9660 image, directly or through a link, and returns the file it checked', async () => {
  const iso = writeTemp(isoImage(CASES[0]![1]));
  assert.equal(await checkIsoImage(iso, 'h'), iso);
  const link = join(TMP, 'link-to-iso.iso');
  symlinkSync(iso, link);
  assert.equal(
    await checkIsoImage(link, 'h'),
    iso,
    'the definition names the checked file, not a link that could be re-pointed',
  );
});

test('checkIsoImage refuses anything else with a usage error (exit 2) and its hint, and changes nothing', async () => {
  const secret = join(TMP, 'root-only-secret');
  writeFileSync(secret, 'root:$6$hash:19000:0:99999:7:::\n'.repeat(40));
  chmodSync(secret, 0o600);
  const before = statSync(secret);
  const link = join(TMP, 'innocent.iso');
  symlinkSync(secret, link);
  const dir = mkdtempSync(join(TMP, 'a-dir.iso-'));
  const fifo = join(TMP, 'a-fifo.iso');
  execFileSync('mkfifo', [fifo]);
  const plain = writeTemp(Buffer.from('just text\n'));
  const cases: [string, string, RegExp][] = [
    ['a link to a root-only file', link, new RegExp(`^${link} \\(a link to ${secret}\\) is not an ISO 9660 image$`)],
    ['a plain file', plain, new RegExp(`^${plain} is not an ISO 9660 image$`)],
    ['/etc/shadow', '/etc/shadow', /^\/etc\/shadow is not an ISO 9660 image$/],
    ['a directory', dir, new RegExp(`^${dir} is a directory, not an ISO image$`)],
    ['a FIFO (would block a reader)', fifo, /is not a regular file, so not an ISO image$/],
    ['/dev/null', '/dev/null', /^\/dev\/null is not a regular file/],
  ];
  for (const [what, path, message] of cases) {
    await assert.rejects(
      checkIsoImage(path, 'the hint'),
      (err: unknown) => {
        assert.ok(err instanceof VmsError, `${what}: ${String(err)}`);
        assert.equal(err.exitCode, 2, what);
        assert.match(err.message, message, what);
        assert.equal(err.hint, 'the hint', what);
        return true;
      },
      what,
    );
  }
  const after = statSync(secret);
  assert.deepEqual(
    [after.uid, after.gid, after.mode, after.mtimeMs],
    [before.uid, before.gid, before.mode, before.mtimeMs],
  );
});

test('checkIsoImage: a missing file or a dangling link is not found (exit 3)', async () => {
  const dangling = join(TMP, 'dangling.iso');
  symlinkSync(join(TMP, 'nowhere'), dangling);
  for (const path of [join(TMP, 'missing.iso'), dangling]) {
    await assert.rejects(
      checkIsoImage(path, 'h'),
      (err: unknown) => err instanceof VmsError && err.exitCode === 3 && err.message === `ISO not found: ${path}`,
    );
  }
});

/** An ISO made by xorriso from a tree holding archiso's two boot files (and something else beside them). */
function buildIso(label: string, files: Record<string, Buffer>): string {
  const tree = mkdtempSync(join(TMP, 'tree-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(tree, path)), { recursive: true });
    writeFileSync(join(tree, path), content);
  }
  const iso = join(TMP, `${label}-${imageCount++}.iso`);
  execFileSync('xorriso', ['-as', 'mkisofs', '-V', label, '-o', iso, tree], { stdio: 'pipe' });
  return iso;
}

const KERNEL = randomBytes(70_000);
const INITRD = randomBytes(5_000);
const BOOT_ISO = buildIso('TESTLBL', {
  [ARCHISO_KERNEL]: KERNEL,
  [ARCHISO_INITRD]: INITRD,
  'arch/boot/x86_64/other.img': Buffer.from('not extracted'),
  'arch/x86_64/airootfs.sfs': Buffer.from('squashfs'),
});

test('readIsoIdentity on an ISO made by xorriso agrees with blkid', async () => {
  const id = await readIsoIdentity(BOOT_ISO);
  assert.equal(id.label, 'TESTLBL');
  assert.match(id.uuid ?? '', /^\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}$/);
  assert.deepEqual(id, blkid(BOOT_ISO));
});

test('archisoCmdline finds the ISO by uuid when it has one, else by label', () => {
  assert.equal(
    archisoCmdline({ label: 'ARCH_202405', uuid: '2024-05-01-10-00-43-00' }),
    'archisobasedir=arch archisosearchuuid=2024-05-01-10-00-43-00 console=ttyS0,115200',
  );
  assert.equal(
    archisoCmdline({ label: 'ARCH_202405' }),
    'archisobasedir=arch archisolabel=ARCH_202405 console=ttyS0,115200',
  );
});

test('extractCommand: the exact xorriso and bsdtar command lines', () => {
  assert.deepEqual(extractCommand('xorriso', '/isos/arch.iso', '/cache/x'), {
    cmd: 'xorriso',
    args: [
      '-osirrox',
      'on',
      '-indev',
      '/isos/arch.iso',
      '-extract',
      '/arch/boot/x86_64/vmlinuz-linux',
      '/cache/x/vmlinuz-linux',
      '-extract',
      '/arch/boot/x86_64/initramfs-linux.img',
      '/cache/x/initramfs-linux.img',
    ],
  });
  assert.deepEqual(extractCommand('bsdtar', '/isos/arch.iso', '/cache/x'), {
    cmd: 'bsdtar',
    args: [
      '-x',
      '-f',
      '/isos/arch.iso',
      '-C',
      '/cache/x',
      '--strip-components',
      '3',
      'arch/boot/x86_64/vmlinuz-linux',
      'arch/boot/x86_64/initramfs-linux.img',
    ],
  });
});

test('extractCommand really extracts the two boot files, with xorriso and with bsdtar', () => {
  for (const tool of ['xorriso', 'bsdtar'] as const) {
    const dir = mkdtempSync(join(TMP, `extract-${tool}-`));
    const { cmd, args } = extractCommand(tool, BOOT_ISO, dir);
    execFileSync(cmd, args, { stdio: 'pipe' });
    assert.deepEqual(readdirSync(dir).sort(), ['initramfs-linux.img', 'vmlinuz-linux'], tool);
    assert.ok(readFileSync(join(dir, 'vmlinuz-linux')).equals(KERNEL), `${tool}: kernel`);
    assert.ok(readFileSync(join(dir, 'initramfs-linux.img')).equals(INITRD), `${tool}: initramfs`);
  }
});

test('sha256File matches node:crypto, for an empty file and one larger than a read chunk', async () => {
  for (const data of [Buffer.alloc(0), randomBytes(3 * (1 << 20) + 17)]) {
    const path = writeTemp(data);
    assert.equal(await sha256File(path), createHash('sha256').update(data).digest('hex'), `${data.length} bytes`);
  }
});

test('sha256File stops when aborted', async () => {
  const path = writeTemp(randomBytes(1 << 20));
  await assert.rejects(sha256File(path, AbortSignal.abort()), { name: 'AbortError' });
});

test('isoBootFiles: extracts once into the cache, and hashes a file again only when it changed', async () => {
  const cacheDir = join(TMP, 'cache');
  const ctx = createContext({ config: resolveConfig({ env: { VMS_CACHE_DIR: cacheDir } }), runner: new ExecaRunner() });
  const iso = join(TMP, 'memo.iso');
  writeFileSync(iso, readFileSync(BOOT_ISO));
  const sha = createHash('sha256').update(readFileSync(iso)).digest('hex');

  const first = await isoBootFiles(ctx, iso);
  assert.equal(first.sha256, sha);
  assert.deepEqual(readFileSync(first.kernel), KERNEL);
  assert.deepEqual(readFileSync(first.initrd), INITRD);
  const memos = readdirSync(join(cacheDir, 'iso', 'checksums'));
  assert.equal(memos.length, 1);

  // The remembered checksum is what a second call uses: planted, it is believed (the file did not change)…
  const planted = 'f'.repeat(64);
  writeFileSync(join(cacheDir, 'iso', 'checksums', memos[0]!), planted);
  assert.equal((await isoBootFiles(ctx, iso)).sha256, planted);
  // …and once the file changes (a new mtime), it is hashed again.
  utimesSync(iso, new Date(), new Date(Date.now() + 5000));
  assert.equal((await isoBootFiles(ctx, iso)).sha256, sha);
});

// ---- isoBootFiles with the extraction on the strict fake runner: what lands in the cache, and what never does ------

/**
 * A Context with its own cache dir whose xorriso is the fake runner: `extract` gets the temporary dir it was asked to
 * extract into (after the argv was checked) and writes there what it likes; its result is the run's.
 */
function fakeExtraction(t: { after: (fn: () => void) => void }, extract?: (tmp: string) => Partial<RunResult>) {
  const cacheDir = mkdtempSync(join(TMP, 'cache-'));
  const bin = mkdtempSync(join(TMP, 'bin-'));
  writeFileSync(join(bin, 'xorriso'), '#!/bin/sh\nexit 1\n');
  chmodSync(join(bin, 'xorriso'), 0o755);
  const tmps: string[] = [];
  const call: Expected = {
    cmd: 'xorriso',
    args: (a) => {
      const tmp = dirname(a[6] ?? '');
      const ok = JSON.stringify(a) === JSON.stringify(extractCommand('xorriso', BOOT_ISO, tmp).args);
      if (ok) {
        tmps.push(tmp);
        call.result = extract?.(tmp);
      }
      return ok;
    },
  };
  const runner = new FakeRunner(extract ? [call] : []);
  t.after(() => runner.done());
  const signal = new AbortController().signal;
  const signals: unknown[] = [];
  const run = runner.run.bind(runner);
  runner.run = (cmd, args, opts) => (signals.push(opts?.signal), run(cmd, args, opts));
  const base = createContext({ config: resolveConfig({ env: { VMS_CACHE_DIR: cacheDir } }), runner, signal });
  const ctx = { ...base, host: { ...base.host, env: { PATH: bin } } };
  const sha = createHash('sha256').update(readFileSync(BOOT_ISO)).digest('hex');
  return { ctx, cacheDir, entry: join(cacheDir, 'iso', sha), tmps, signals, signal, bin };
}
/** Writes the two boot files (mode 0600, as an ISO may bring them) into `tmp`: `only` one of them when given. */
const bootFiles = (tmp: string, only?: string) => {
  for (const [name, data] of [
    ['vmlinuz-linux', KERNEL],
    ['initramfs-linux.img', INITRD],
  ] as const) {
    if (!only || only === name) writeFileSync(join(tmp, name), data, { mode: 0o600 });
  }
};
const mode = (path: string) => statSync(path).mode & 0o7777;
/** The names in the ISO cache but the checksums' dir: no temporary dir may be left there. */
const cacheEntries = (cacheDir: string) => readdirSync(join(cacheDir, 'iso')).filter((n) => n !== 'checksums');

test('isoBootFiles: extracted into a temporary dir of the cache, readable by QEMU, renamed whole into place', async (t) => {
  const h = fakeExtraction(t, (tmp) => (bootFiles(tmp), {}));
  const old = process.umask(0o077); // a strict umask: the modes are set, not left to it
  let boot;
  try {
    boot = await isoBootFiles(h.ctx, BOOT_ISO);
  } finally {
    process.umask(old);
  }
  assert.match(h.tmps[0]!, new RegExp(`^${join(h.cacheDir, 'iso')}/\\.extract-[^/]+$`));
  assert.deepEqual(h.signals, [h.signal], 'Ctrl-C stops the extraction');
  assert.deepEqual(cacheEntries(h.cacheDir), [h.entry.split('/').pop()]);
  assert.equal(mode(join(h.cacheDir, 'iso')), 0o2775, 'the ISO cache is a shared dir');
  assert.equal(mode(h.entry), 0o755);
  for (const f of ['vmlinuz-linux', 'initramfs-linux.img', 'identity.json'])
    assert.equal(mode(join(h.entry, f)), 0o644, f);
  const id = await readIsoIdentity(BOOT_ISO);
  assert.equal(readFileSync(join(h.entry, 'identity.json'), 'utf8'), JSON.stringify({ iso: BOOT_ISO, ...id }) + '\n');
  assert.deepEqual(boot, {
    iso: BOOT_ISO,
    sha256: h.entry.split('/').pop(),
    identity: id,
    kernel: join(h.entry, 'vmlinuz-linux'),
    initrd: join(h.entry, 'initramfs-linux.img'),
    cmdline: archisoCmdline(id),
  });
});

test('isoBootFiles: a cache entry with only one boot file is extracted again', async (t) => {
  const h = fakeExtraction(t, (tmp) => (bootFiles(tmp), {}));
  mkdirSync(h.entry, { recursive: true });
  writeFileSync(join(h.entry, 'vmlinuz-linux'), 'a kernel left alone');
  const boot = await isoBootFiles(h.ctx, BOOT_ISO);
  assert.equal(h.tmps.length, 1);
  assert.deepEqual([readFileSync(boot.kernel), readFileSync(boot.initrd)], [KERNEL, INITRD], 'the whole entry anew');
  assert.deepEqual(cacheEntries(h.cacheDir), [h.entry.split('/').pop()], 'the damaged entry moved aside, then gone');
});

test('isoBootFiles: another create that filled the entry meanwhile wins; anything else in the way is an error', async (t) => {
  const theirs = fakeExtraction(t, (tmp) => {
    bootFiles(tmp);
    mkdirSync(theirs.entry);
    writeFileSync(join(theirs.entry, 'vmlinuz-linux'), 'theirs');
    writeFileSync(join(theirs.entry, 'initramfs-linux.img'), 'theirs');
    return {};
  });
  const boot = await isoBootFiles(theirs.ctx, BOOT_ISO);
  assert.equal(readFileSync(boot.kernel, 'utf8'), 'theirs');
  assert.deepEqual(cacheEntries(theirs.cacheDir), [theirs.entry.split('/').pop()], 'the temporary dir is gone');

  const file = fakeExtraction(t, (tmp) => (bootFiles(tmp), writeFileSync(file.entry, 'a file, not an entry'), {}));
  await assert.rejects(isoBootFiles(file.ctx, BOOT_ISO), { code: 'ENOTDIR' });
  assert.deepEqual(cacheEntries(file.cacheDir), [file.entry.split('/').pop()]);
});

test('isoBootFiles: an ISO without a boot file, or a tool that fails, leaves no cache entry and no temporary dir', async (t) => {
  const noInitrd = fakeExtraction(
    t,
    (tmp) => (bootFiles(tmp, 'vmlinuz-linux'), { exitCode: 1, stderr: 'xorriso : FAILURE : not found\n' }),
  );
  await assert.rejects(isoBootFiles(noInitrd.ctx, BOOT_ISO), (e: unknown) => {
    assert.ok(e instanceof VmsError);
    assert.deepEqual(
      [e.code, e.message, e.hint, e.details],
      [
        'failed',
        `${BOOT_ISO} has no initramfs-linux.img in arch/boot/x86_64/, where archiso keeps it`,
        'is this an Arch Linux ISO, and complete? `vms iso fetch` downloads and verifies the current one',
        'xorriso: xorriso : FAILURE : not found',
      ],
    );
    return true;
  });
  assert.deepEqual(cacheEntries(noInitrd.cacheDir), []);

  const noKernel = fakeExtraction(t, (tmp) => (bootFiles(tmp, 'initramfs-linux.img'), {}));
  await assert.rejects(isoBootFiles(noKernel.ctx, BOOT_ISO), {
    message: `${BOOT_ISO} has no vmlinuz-linux in arch/boot/x86_64/, where archiso keeps it`,
  });
  assert.deepEqual(cacheEntries(noKernel.cacheDir), []);

  const failed = fakeExtraction(t, (tmp) => (bootFiles(tmp), { exitCode: 3, stderr: 'error: cannot write\n' }));
  await assert.rejects(isoBootFiles(failed.ctx, BOOT_ISO), (e: unknown) => {
    assert.ok(e instanceof VmsError);
    assert.deepEqual([e.code, e.message], ['failed', `cannot read ${BOOT_ISO} with xorriso: cannot write`]);
    return true;
  });
  assert.deepEqual(cacheEntries(failed.cacheDir), []);
});

test('isoBootFiles: neither xorriso nor bsdtar: a missing tool, nothing made in the cache', async (t) => {
  const h = fakeExtraction(t);
  rmSync(join(h.bin, 'xorriso'));
  await assert.rejects(isoBootFiles(h.ctx, BOOT_ISO), (e: unknown) => {
    assert.ok(e instanceof VmsError);
    assert.deepEqual(
      [e.code, e.message, e.hint],
      [
        'missingTool',
        'neither xorriso nor bsdtar is installed: vms reads the kernel out of the ISO with one of them',
        '`vms bootstrap` installs them',
      ],
    );
    return true;
  });
  assert.deepEqual(cacheEntries(h.cacheDir), []);
});

test('isoBootFiles: a remembered checksum counts only when it is exactly one', async (t) => {
  const h = fakeExtraction(t);
  const sha = h.entry.split('/').pop()!;
  // the entry is there: no extraction, only the checksum is looked up
  mkdirSync(h.entry, { recursive: true });
  for (const f of ['vmlinuz-linux', 'initramfs-linux.img']) writeFileSync(join(h.entry, f), '');
  await isoBootFiles(h.ctx, BOOT_ISO);
  const memoDir = join(h.cacheDir, 'iso', 'checksums');
  const memo = join(memoDir, readdirSync(memoDir)[0]!);
  for (const garbled of [`${'e'.repeat(64)}x`, `x${'e'.repeat(64)}`]) {
    writeFileSync(memo, garbled);
    assert.equal((await isoBootFiles(h.ctx, BOOT_ISO)).sha256, sha, garbled);
    assert.equal(readFileSync(memo, 'utf8'), sha, 'hashed again and remembered');
  }
});

test('readIsoIdentity closes the file, also when it is not an ISO', async () => {
  const open = () => readdirSync('/proc/self/fd').length;
  const before = open();
  const notIso = writeTemp(Buffer.alloc(40 * 2048));
  for (let i = 0; i < 20; i++) {
    await readIsoIdentity(BOOT_ISO);
    await readIsoIdentity(notIso).catch(() => undefined);
  }
  assert.equal(open(), before);
});

test('parsePrimaryVolumeDescriptor: the exact error; 881 bytes are enough; a date of zeros with a zone is set', () => {
  assert.throws(
    () => parsePrimaryVolumeDescriptor(Buffer.alloc(2048)),
    (e: unknown) =>
      e instanceof VmsError &&
      e.message === 'not an ISO 9660 image (no primary volume descriptor)' &&
      e.hint === 'pass an ISO image' &&
      e.reason === 'iso.notIso',
  );
  const full = pvd('ARCH_1', '2024050110004300\0', '2025010203040506\x04');
  assert.deepEqual(parsePrimaryVolumeDescriptor(full.subarray(0, 881)), parsePrimaryVolumeDescriptor(full));
  // sixteen zeros but a zone byte: not "unset", so the modification date is taken, and it is no date
  assert.deepEqual(parsePrimaryVolumeDescriptor(pvd('Z', '2024050110004300\0', '0000000000000000\x04')), {
    label: 'Z',
    uuid: undefined,
  });
  // a year with leading zeros is a date all the same
  assert.equal(parsePrimaryVolumeDescriptor(pvd('Y', UNSET, '0999010203040506\0')).uuid, '0999-01-02-03-04-05-06');
});

test('checkIsoImage: a path it cannot resolve is a usage error; a read error that is not about the ISO is thrown', async () => {
  const file = writeTemp(Buffer.from('x'));
  await assert.rejects(checkIsoImage(join(file, 'x.iso'), 'h'), (e: unknown) => {
    assert.ok(e instanceof VmsError);
    assert.deepEqual(
      [e.code, e.message, e.hint],
      ['usage', `cannot read ${join(file, 'x.iso')}: ENOTDIR`, 'give an ISO image you can read'],
    );
    return true;
  });
  // /proc/self/mem is a regular file whose reads fail (EIO): not "not an ISO", not "permission denied"
  await assert.rejects(
    checkIsoImage('/proc/self/mem', 'h'),
    (e: unknown) => !(e instanceof VmsError) && (e as NodeJS.ErrnoException).code === 'EIO',
  );
});
