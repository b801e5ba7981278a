import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, test } from 'node:test';
import { installVm, resumeInstall, type InstallOptions } from '../../../src/core/guest/install.js';
import { renderMetadata } from '../../../src/libvirt/metadata.js';
import { VmsError } from '../../../src/errors.js';
import { journalsDir, type JournalRecord } from '../../../src/core/ops/journal.js';
import type { Expected } from '../../helpers/fake-runner.js';
import { GuestVm, type ScriptRun } from '../../helpers/guest-vm.js';
import { openFiles } from '../../helpers/open-files.js';
import { URI, contextOn, virshCall } from '../../helpers/virsh-fake.js';
import { listedLater, recordingProgress, virshFails, vmXml } from '../../helpers/vm-fake.js';

// `vms create NAME --profile P` in process: the strict fake runner plays libvirt and qemu-img, a fake guest on the
// VM's serial socket plays the live ISO and then the installed system (test/helpers/guest-vm.ts), and the ISO is a
// file with an ISO 9660 volume descriptor whose kernel is already in the cache. Asserted: the steps in order, every
// process with its argv, what each definition says, what is left on the host after a success, and for a failure at
// each step what is undone in which order, what is kept, and what the error says about it.

const VM = 'inst';
const GiB = 2 ** 30;
const CAPS = `<capabilities><guest><arch name='x86_64'><domain type='qemu'/></arch></guest></capabilities>`;
const VIRSH = (...args: string[]) => ['-c', URI, ...args].join(' ');

/** An ISO 9660 image as far as vms reads it: the primary volume descriptor at sector 16 (label, modification date). */
function writeIso(path: string): string {
  const pvd = Buffer.alloc(2048);
  pvd[0] = 1;
  pvd.write('CD001', 1, 'latin1');
  pvd.write('ARCH_202601'.padEnd(32), 40, 'latin1');
  pvd.write('2026010203040500', 830, 'latin1');
  const data = Buffer.concat([Buffer.alloc(16 * 2048), pvd]);
  writeFileSync(path, data);
  return createHash('sha256').update(data).digest('hex');
}

const guests: GuestVm[] = [];
afterEach(async () => {
  for (const g of guests.splice(0)) await g.stop();
});

/**
 * A host for one install: its dirs, the ISO (its kernel and initrd in the cache), a virtiofsd on the caller's PATH,
 * the fake guest, and the strict runner whose calls the test lists.
 */
function host(runs: Record<string, ScriptRun> = {}, env: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'vms-inst-'));
  const state = join(dir, 'state');
  const images = join(dir, 'images');
  const cache = join(dir, 'cache');
  const bin = join(dir, 'bin');
  for (const d of [images, bin, join(dir, 'home')]) mkdirSync(d);
  writeFileSync(join(bin, 'virtiofsd'), '#!/bin/sh\n');
  chmodSync(join(bin, 'virtiofsd'), 0o755);
  const iso = join(dir, 'arch.iso');
  const boot = join(cache, 'iso', writeIso(iso));
  mkdirSync(boot, { recursive: true });
  for (const f of ['vmlinuz-linux', 'initramfs-linux.img']) writeFileSync(join(boot, f), f);

  const later = listedLater();
  const { ctx } = contextOn(later.runner, {
    VMS_STATE_DIR: state,
    VMS_IMAGES_DIR: images,
    VMS_CACHE_DIR: cache,
    VMS_ISO_DIR: join(dir, 'iso'),
    VMS_GUEST_DIR: resolve('test/fixtures/guest'),
    VMS_PROFILE_PATH: resolve('test/fixtures/profiles'),
    VMS_BOOT_TIMEOUT: '10',
    ...env,
  });
  const root = join(dir, 'root'); // the host's system files: none (no /usr/lib/virtiofsd, no pacman cache)
  ctx.host = {
    ...ctx.host,
    user: 'tester',
    home: join(dir, 'home'),
    env: { PATH: bin, HOME: join(dir, 'home') },
    root,
  };
  const rec = recordingProgress();
  ctx.progress = rec.progress;
  const vmDir = join(state, VM);
  const guest = new GuestVm(join(vmDir, 'serial.sock'), runs);
  guests.push(guest);
  const defined: string[] = [];
  const w = {
    dir,
    root,
    ctx,
    runner: later,
    ...rec,
    guest,
    defined,
    iso,
    bootDir: boot,
    vmDir,
    disk: join(images, `${VM}.qcow2`),
    cacheRw: join(cache, 'pkg-vm', VM),
    sharedCache: join(cache, 'pkg'),
    failedLog: join(state, `${VM}.failed-install.log`),
    /** The calls the test expects, in order. */
    expect: later.expect,
    opts(extra: Partial<InstallOptions> = {}): InstallOptions {
      return {
        name: VM,
        profile: 'tchild',
        iso,
        memory: 256 * 2 ** 20,
        cpus: 1,
        disk: GiB,
        firmware: 'bios',
        network: { kind: 'none' },
        graphics: false,
        keepFailed: false,
        ...extra,
      };
    },
  };
  return w;
}

type Host = ReturnType<typeof host>;

// ---- the processes, as the test expects them ---------------------------------------------------------------------

const absent = () => virshFails(['domuuid', VM], `error: failed to get domain '${VM}'\n`);
const present = () => virshCall(['domuuid', VM], '00000000-0000-4000-8000-00000000000a\n');
const stateIs = (state: string) => virshCall(['domstate', VM], `${state}\n`);
const createDisk = (w: Host, fail = false): Expected => ({
  cmd: 'qemu-img',
  args: ['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', w.disk, String(GiB)],
  result: fail ? { exitCode: 1, stderr: 'qemu-img: No space left on device' } : {},
});
/** `virsh define FILE`, the XML kept (the next dumpxml answers with it). */
const define = (w: Host, fail = false): Expected => ({
  cmd: 'virsh',
  args: (a) => {
    if (a.slice(0, 3).join(' ') !== VIRSH('define')) return false;
    w.defined.push(readFileSync(a[3]!, 'utf8'));
    return true;
  },
  result: fail ? { exitCode: 1, stderr: 'error: internal error: refused' } : {},
});
const savedDefinition = (w: Host): Expected => {
  const call: Expected = {
    cmd: 'virsh',
    args: (a) => {
      call.result = { stdout: w.defined.at(-1) ?? '' };
      return a.join(' ') === VIRSH('dumpxml', VM, '--inactive', '--security-info');
    },
  };
  return call;
};
/** `virsh start`: the guest's console appears; from the second boot on, root has the generated password. */
const start = (w: Host, withPassword: boolean): Expected => ({
  cmd: 'virsh',
  args: (a) => {
    if (a.join(' ') !== VIRSH('start', VM)) return false;
    if (withPassword) w.guest.password = readFileSync(join(w.vmDir, 'root-password'), 'utf8').trim();
    void w.guest.boot();
    return true;
  },
});

const checks = () => [absent(), absent(), virshCall(['capabilities'], CAPS)];
const make = (w: Host) => [createDisk(w), define(w)];
const installStep = (w: Host) => [stateIs('shut off'), start(w, false)];
const afterInstall = (w: Host) => [stateIs('shut off'), savedDefinition(w), define(w)];
const profileStep = (w: Host) => [stateIs('shut off'), start(w, true)];
const afterProfiles = (w: Host) => [savedDefinition(w), define(w)];
const result = (w: Host) => [
  savedDefinition(w),
  stateIs('running'),
  { cmd: 'qemu-img', args: ['info', '-U', '--output=json', w.disk], result: { stdout: `{"virtual-size":${GiB}}` } },
];
/** The undo of the power-off (running: destroyed) and of the define, as runUndoAction does them. */
const powerOff = () => [present(), stateIs('running'), virshCall(['destroy', VM])];
const undefine = () => [
  present(),
  virshCall(['undefine', VM, '--nvram', '--managed-save', '--snapshots-metadata', '--checkpoints-metadata']),
];

const STEPS_TO_INSTALL = [
  'Checking input',
  'Reading arch.iso',
  `Creating ${'{vmDir}'}`,
  `Creating disk ${'{disk}'}`,
  `Defining domain ${VM}`,
  'Booting the live ISO',
  'Logging in on the serial console',
  'Copying the installer (install.sh)',
  'Installing (install.sh)',
];
const stepsToInstall = (w: Host) =>
  STEPS_TO_INSTALL.map((s) => s.replace('{vmDir}', w.vmDir).replace('{disk}', w.disk));

/** The profile step, from the boot from the disk to the reboot. */
const PROFILE_STEPS = [
  `Booting ${VM} from its disk`,
  'Logging in on the serial console',
  'Copying profile scripts (tbase → tchild)',
  'Applying profile tbase',
  'Applying profile tchild',
  `Rebooting ${VM}`,
];

const INSTALL_OK: Record<string, ScriptRun> = {
  'install.sh': { phases: [['partition', 60]], output: 'installed\r\n' },
};

/**
 * Everything under the test's dir, relative, sorted; but the operations' locks and journals and the ISO cache (the
 * ISO's checksum remembered), which stay by design.
 */
function tree(dir: string): string[] {
  const ops = /^(state(\/\.locks|\/\.operations|$)|cache\/iso\/checksums)/;
  return (readdirSync(dir, { recursive: true }) as string[]).filter((p) => !ops.test(p)).sort();
}

// ---- a whole install -------------------------------------------------------------------------------------------

/** What install.sh saw on the host while it ran: the operation's journal, the per-VM cache dir's mode. */
interface SeenDuringInstall {
  journals: JournalRecord[];
  /** Its permission bits; undefined when there is none. */
  cacheRwMode?: number;
}

/**
 * A whole install whose install.sh "downloads" `downloaded` into the per-VM cache (as the guest does over virtiofs),
 * each file with set-id bits, its inode noted (a rename keeps it, a copy does not); `before` runs when the host is
 * ready. The umask is 0 meanwhile, so a directory made without its mode shows it.
 */
async function wholeInstall(downloaded: Record<string, string>, before: (w: Host) => void = () => {}) {
  const inodes = new Map<string, number>();
  const seen: SeenDuringInstall = { journals: [] };
  const download = () => {
    seen.journals = readJournals(w.ctx.config.stateDir.value);
    if (existsSync(w.cacheRw)) seen.cacheRwMode = statSync(w.cacheRw).mode & 0o777;
    for (const [f, text] of Object.entries(downloaded)) {
      writeFileSync(join(w.cacheRw, f), text);
      chmodSync(join(w.cacheRw, f), 0o6775);
      inodes.set(f, statSync(join(w.cacheRw, f)).ino);
    }
  };
  const w = host({
    'install.sh': { ...INSTALL_OK['install.sh'], does: download },
    'tbase.sh': { phases: [['tbase', 30]] },
    'tchild.sh': { output: 'child\r\n' },
  });
  before(w);
  w.expect(checks(), make(w), installStep(w), afterInstall(w), profileStep(w), afterProfiles(w), result(w));
  const umask = process.umask(0);
  try {
    const r = await installVm(w.ctx, w.opts());
    w.runner.done();
    return { w, r, inodes, seen };
  } finally {
    process.umask(umask);
  }
}

/** The operations' journals in `stateDir`, as they are now. */
function readJournals(stateDir: string): JournalRecord[] {
  const dir = journalsDir(stateDir);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as JournalRecord);
}

test('install: the steps in order, each process and argv, the definitions made, what is left', async () => {
  // A package, its signature, and a file that is neither.
  const downloaded = { 'a-1-x86_64.pkg.tar.zst': 'pkg a', 'a-1-x86_64.pkg.tar.zst.sig': 'sig a', 'notes.txt': 'no' };
  const { w, r, inodes, seen } = await wholeInstall(downloaded);

  assert.deepEqual(w.steps, [
    ...stepsToInstall(w),
    `Powering off ${VM}`,
    `Switching ${VM} to boot from its disk`,
    ...PROFILE_STEPS,
  ]);
  assert.deepEqual(w.failed, []);
  assert.deepEqual(w.guest.scripts, ['install.sh', 'tbase.sh', 'tchild.sh']);
  assert.deepEqual(
    w.guest.typed.filter((l) => !l.startsWith('command -v bash')),
    ['poweroff', 'reboot'],
    'powered off from inside after the install, rebooted after the profiles',
  );
  assert.deepEqual(w.notes, [
    'install phase partition (up to 60s)',
    `2 downloaded packages added to the shared cache ${w.sharedCache}`,
  ]);

  // The definitions: the live ISO's kernel and the cache shares, then the disk alone with pending "profile", then done.
  assert.equal(w.defined.length, 3);
  const [live, disk, done] = w.defined as [string, string, string];
  assert.match(live, new RegExp(`<kernel>${w.bootDir}/vmlinuz-linux</kernel>`));
  assert.match(
    live.replaceAll('&#x3D;', '='),
    /<cmdline>archisobasedir=arch archisosearchuuid=2026-01-02-03-04-05-00 console=ttyS0,115200</,
  );
  assert.match(live, /<vms:pending>install<\/vms:pending>/);
  assert.match(live, new RegExp(`<vms:created-from>${w.iso}</vms:created-from>`));
  assert.match(live, new RegExp(`<source dir=['"]${w.cacheRw}['"]/>`));
  assert.match(live, new RegExp(`<source dir=['"]${w.sharedCache}['"]/>`));
  assert.equal(
    live.match(/<filesystem/g)?.length,
    2,
    'the shared cache and the per-VM one (no host pacman cache here)',
  );
  assert.ok(!/<kernel>|<filesystem|device=['"]cdrom/.test(disk), disk);
  assert.match(disk, /<vms:pending>profile<\/vms:pending>/);
  assert.ok(!done.includes('<vms:pending>'), 'complete: nothing to resume');
  assert.equal(done.replace(/\s+/g, ''), disk.replace(/<vms:pending>profile<\/vms:pending>/, '').replace(/\s+/g, ''));

  // In the guest: the installer and settings, then the profiles with the shared helpers; every file 0600.
  const pushed = [...w.guest.files.keys()].sort();
  assert.ok(pushed.includes('/root/vms/install.sh') && pushed.includes('/root/vms/settings.sh'), pushed.join(' '));
  for (const p of ['settings.sh', 'tbase.sh', 'tchild.sh', '_lib.sh'])
    assert.ok(pushed.includes(`/root/vms/profiles/${p}`), p);
  const settings = w.guest.files.get('/root/vms/settings.sh')!.toString();
  assert.equal(w.guest.files.get('/root/vms/profiles/settings.sh')!.toString(), settings);
  assert.match(settings, /^VMS_HOSTNAME='?inst'?$/m);
  assert.match(settings, /^VMS_USER='?tester'?$/m);
  assert.match(settings, /^VMS_DISK='?\/dev\/vda'?$/m);
  assert.match(settings, /^VMS_CACHE_RW='?vms-pkg-vm'?$/m);
  assert.match(settings, /^VMS_CACHE_RO='vms-pkg-shared'$/m);

  // While install.sh ran: the per-VM cache 0755 (made with its mode, umask 0 here), each undo step journaled in order.
  assert.equal(seen.cacheRwMode, 0o755);
  assert.deepEqual(
    seen.journals.map((j) => [j.command, j.vms, j.steps.map((s) => s.what)]),
    [
      [
        'create',
        [VM],
        [
          `remove ${w.vmDir}`,
          `remove ${w.disk} if still empty`,
          `remove ${w.disk}`,
          `undefine ${VM}`,
          'keep the transcript',
          `remove ${w.cacheRw}`,
          `stop ${VM}`,
        ],
      ],
    ],
  );

  // On the host: the VM's secrets 0600, the transcript, the download in the shared cache 0644; the per-VM cache gone.
  const password = readFileSync(join(w.vmDir, 'root-password'), 'utf8');
  assert.match(password, /^\S{12,}\n$/);
  assert.equal(w.guest.password, password.trim(), 'the second login used the password kept');
  for (const f of ['root-password', 'settings.sh']) assert.equal(statSync(join(w.vmDir, f)).mode & 0o777, 0o600, f);
  assert.equal(readFileSync(join(w.vmDir, 'settings.sh'), 'utf8'), settings);
  assert.match(readFileSync(join(w.vmDir, 'install.log'), 'utf8'), /----- vms create inst --profile tchild, /);
  assert.equal(readFileSync(join(w.sharedCache, 'a-1-x86_64.pkg.tar.zst'), 'utf8'), 'pkg a');
  for (const f of ['a-1-x86_64.pkg.tar.zst', 'a-1-x86_64.pkg.tar.zst.sig']) {
    assert.equal(statSync(join(w.sharedCache, f)).mode & 0o7777, 0o644, `${f}: plain 0644, no set-id bits`);
    assert.equal(statSync(join(w.sharedCache, f)).ino, inodes.get(f), `${f}: ours, so moved in place, not copied`);
  }
  assert.ok(!existsSync(w.cacheRw), 'the per-VM cache is removed, with what was not a package');
  assert.deepEqual(readdirSync(w.sharedCache).sort(), ['a-1-x86_64.pkg.tar.zst', 'a-1-x86_64.pkg.tar.zst.sig']);
  assert.ok(!existsSync(w.failedLog));
  assert.ok(!openFiles().includes(join(w.vmDir, 'install.log')), 'the transcript is closed');
  await w.guest.allClosed();

  assert.deepEqual(
    [r.name, r.state, r.passwordFile, r.user, r.transcript],
    [VM, 'running', join(w.vmDir, 'root-password'), 'tester', join(w.vmDir, 'install.log')],
  );
});

test("another owner's downloads (vms run as a user) are copied 0644, originals gone; a cached one stays", async () => {
  const downloaded = { 'b-1-any.pkg.tar.xz': 'new b', 'c-1-any.pkg.tar.zst': 'c from the guest', 'd.pkg.tar.zst': 'd' };
  const { w, inodes } = await wholeInstall(downloaded, (w) => {
    w.ctx.host = { ...w.ctx.host, uid: w.ctx.host.uid + 4242 }; // the files are not "ours": no chmod in place
    mkdirSync(w.sharedCache, { recursive: true });
    writeFileSync(join(w.sharedCache, 'c-1-any.pkg.tar.zst'), 'c already cached');
  });
  assert.deepEqual(readdirSync(w.sharedCache).sort(), ['b-1-any.pkg.tar.xz', 'c-1-any.pkg.tar.zst', 'd.pkg.tar.zst']);
  assert.equal(readFileSync(join(w.sharedCache, 'b-1-any.pkg.tar.xz'), 'utf8'), 'new b');
  assert.equal(statSync(join(w.sharedCache, 'b-1-any.pkg.tar.xz')).mode & 0o7777, 0o644);
  assert.notEqual(statSync(join(w.sharedCache, 'b-1-any.pkg.tar.xz')).ino, inodes.get('b-1-any.pkg.tar.xz'), 'a copy');
  assert.equal(readFileSync(join(w.sharedCache, 'c-1-any.pkg.tar.zst'), 'utf8'), 'c already cached');
  assert.ok(!existsSync(w.cacheRw), 'the originals and the per-VM cache are gone');
  assert.deepEqual(w.notes.at(-1), `2 downloaded packages added to the shared cache ${w.sharedCache}`);
});

/** The settings the guest was given, as vms wrote them into the VM's dir. */
const settingsOf = (w: Host) => readFileSync(join(w.vmDir, 'settings.sh'), 'utf8');

test('no virtiofsd: no cache shares, the guest told none, no cache dir made or journaled; a note says why', async () => {
  const { w, seen } = await wholeInstall({}, (w) => rmSync(join(w.dir, 'bin', 'virtiofsd')));
  assert.deepEqual(w.notes, [
    'virtiofsd is not installed: no shared package cache, every package is downloaded',
    'install phase partition (up to 60s)',
  ]);
  assert.ok(!w.defined[0]!.includes('<filesystem'), w.defined[0]);
  assert.match(settingsOf(w), /^VMS_CACHE_RO=''$/m);
  assert.match(settingsOf(w), /^VMS_CACHE_RW=''$/m);
  assert.equal(seen.cacheRwMode, undefined);
  assert.ok(!existsSync(join(w.dir, 'cache', 'pkg-vm')) && !existsSync(w.sharedCache));
  assert.ok(!seen.journals[0]!.steps.some((s) => s.what.includes('pkg')), 'no cache dir to undo');
});

test("the host's pacman cache is shared read-only first; downloads that are no packages join nothing", async () => {
  const hostCache = (w: Host) => join(w.root, 'var/cache/pacman/pkg');
  const { w } = await wholeInstall({ 'notes.txt': 'no package' }, (w) => mkdirSync(hostCache(w), { recursive: true }));
  const live = w.defined[0]!;
  assert.equal(live.match(/<filesystem/g)?.length, 3);
  assert.match(live, new RegExp(`<source dir=['"]${hostCache(w)}['"]/>\\s*<target dir=['"]vms-pkg-host['"]/>`));
  assert.match(settingsOf(w), /^VMS_CACHE_RO='vms-pkg-host vms-pkg-shared'$/m);
  assert.deepEqual(w.notes, ['install phase partition (up to 60s)'], 'no "0 downloaded packages" note');
  assert.deepEqual(readdirSync(w.sharedCache), []);
  assert.ok(!existsSync(w.cacheRw), 'the per-VM cache is removed all the same');
  assert.deepEqual(readdirSync(hostCache(w)), [], "the host's cache is only read");
});

test('a per-VM cache left by an install that died is used again; what it held joins the shared cache', async () => {
  const { w } = await wholeInstall({ 'new-1-any.pkg.tar.zst': 'new' }, (w) => {
    mkdirSync(w.cacheRw, { recursive: true });
    writeFileSync(join(w.cacheRw, 'old-1-any.pkg.tar.zst'), 'old');
  });
  assert.deepEqual(readdirSync(w.sharedCache).sort(), ['new-1-any.pkg.tar.zst', 'old-1-any.pkg.tar.zst']);
  assert.ok(!existsSync(w.cacheRw));
});

test('a download that cannot be copied into the shared cache: no part file left, it stays where it was, a note', async () => {
  const pkg = 'e-1-any.pkg.tar.zst';
  const part = (w: Host) => join(w.sharedCache, `${pkg}.${process.pid}.vms-part`);
  const { w } = await wholeInstall({ [pkg]: 'e' }, (w) => {
    w.ctx.host = { ...w.ctx.host, uid: w.ctx.host.uid + 4242 }; // not ours: copied
    mkdirSync(w.sharedCache, { recursive: true });
    writeFileSync(part(w), 'in the way'); // the copy (exclusive) fails on it
  });
  assert.ok(!existsSync(part(w)), 'the part file is removed after the failed copy');
  assert.deepEqual(readdirSync(w.sharedCache), []);
  assert.equal(readFileSync(join(w.cacheRw, pkg), 'utf8'), 'e', 'the download is left where it was');
  assert.equal(w.notes.length, 2, w.notes.join('\n'));
  const note = w.notes[1]!;
  const prefix = "the install's downloads could not all join the shared cache (EEXIST: ";
  assert.ok(note.startsWith(prefix) && note.endsWith(`); ${w.cacheRw} is left`), note);
});

// ---- refused before anything is made ----------------------------------------------------------------------------

test('refused: a taken name, an unknown profile, a missing ISO, no images dir; nothing made or locked', async () => {
  const cases: [string, (w: Host) => [Partial<InstallOptions>, Expected[]], (e: VmsError) => boolean][] = [
    [
      'taken',
      () => [{}, [present()]],
      (e) => e.code === 'conflict' && e.message === "a VM named 'inst' already exists",
    ],
    [
      'profile',
      () => [{ profile: 'nope' }, [absent()]],
      (e) => e.code === 'notFound' && e.message === "unknown profile 'nope'",
    ],
    [
      'iso',
      (w) => [{ iso: join(w.dir, 'none.iso') }, [absent()]],
      (e) =>
        e.code === 'notFound' &&
        /^ISO not found/.test(e.message) &&
        e.hint === '`vms iso fetch` downloads the current Arch ISO',
    ],
  ];
  for (const [what, setup, check] of cases) {
    const w = host();
    const [opts, calls] = setup(w);
    w.expect(calls);
    const before = tree(w.dir);
    await assert.rejects(installVm(w.ctx, w.opts(opts)), (e: unknown) => e instanceof VmsError && check(e), what);
    w.runner.done();
    assert.deepEqual(tree(w.dir), before, `${what}: nothing made`);
    assert.ok(!existsSync(join(w.dir, 'state')), `${what}: refused before any lock or journal`);
    assert.deepEqual(w.steps, ['Checking input'], what);
  }
});

test('refused: no install.sh in VMS_GUEST_DIR, no images dir, an invalid user; each error exact, nothing made', async () => {
  const emptyDir = mkdtempSync(join(tmpdir(), 'vms-guest-'));
  const cases: [string, Record<string, string>, Partial<InstallOptions>, string[]][] = [
    [
      'installer',
      { VMS_GUEST_DIR: emptyDir },
      {},
      ['notFound', `no install.sh in ${emptyDir}`, 'VMS_GUEST_DIR must name a directory holding install.sh'],
    ],
    [
      'images',
      { VMS_IMAGES_DIR: join(emptyDir, 'none') },
      {},
      [
        'notFound',
        `images directory ${join(emptyDir, 'none')} does not exist`,
        'run `vms bootstrap`, or set VMS_IMAGES_DIR',
      ],
    ],
    [
      'user',
      {},
      { user: 'Root' },
      ['usage', "invalid user name 'Root'", 'use a lowercase Linux user name other than root, for example alice'],
    ],
  ];
  for (const [what, env, opts, [code, message, hint]] of cases) {
    const w = host({}, env);
    w.expect([absent()]);
    const before = tree(w.dir);
    await assert.rejects(installVm(w.ctx, w.opts(opts)), (e: unknown) => {
      assert.ok(e instanceof VmsError, String(e));
      assert.deepEqual([e.code, e.message, e.hint], [code, message, hint], what);
      return true;
    });
    w.runner.done();
    assert.deepEqual(tree(w.dir), before, `${what}: nothing made`);
    assert.deepEqual(w.steps, ['Checking input'], what);
  }
});

test('a user given is the guest user', async () => {
  const w = host(FAILING_INSTALL_EARLY);
  w.expect(checks(), make(w), installStep(w));
  await assert.rejects(installVm(w.ctx, w.opts({ user: 'alice', keepFailed: true })));
  w.runner.done();
  assert.match(settingsOf(w), /^VMS_USER='alice'$/m);
});

// ---- a failure at each step: what is undone, in which order, and what is kept ------------------------------------

/** The error's hint and its data for the CLI: the transcript kept, and whether the rest went. */
const removedHint = (w: Host, cleaned: boolean) =>
  `the whole transcript is in ${w.failedLog}${cleaned ? '; nothing else is left' : ''}`;

test('the disk cannot be made: its claim and the VM dir removed; no transcript yet, the error as it was', async () => {
  const w = host();
  w.expect(checks(), [createDisk(w, true)]);
  const before = tree(w.dir);
  await assert.rejects(
    installVm(w.ctx, w.opts({ keepFailed: true })),
    (e: unknown) =>
      e instanceof VmsError &&
      /^cannot create disk /.test(e.message) &&
      e.data?.kept === undefined &&
      e.data?.removed === undefined,
  );
  w.runner.done();
  assert.deepEqual(tree(w.dir), before, '--keep-failed keeps nothing before the VM is defined');
  assert.deepEqual(w.failed, [`Creating disk ${w.disk}`]);
});

test('the define fails: the undefine (not defined: nothing to do), the disk and the dir are undone', async () => {
  const w = host();
  w.expect(checks(), [createDisk(w), define(w, true)], [absent()]);
  const before = tree(w.dir);
  await assert.rejects(installVm(w.ctx, w.opts()), (e: unknown) => e instanceof VmsError && /refused/.test(e.message));
  w.runner.done();
  assert.deepEqual(tree(w.dir), before);
});

test('install.sh fails: powered off, cache dir and VM undone newest first; the transcript kept and said', async () => {
  const w = host({
    'install.sh': { phases: [['prepare', 30]], output: 'preparing\r\ntest install failed on purpose\r\n', status: 3 },
  });
  // The strict runner holds the order: the power-off first (the VM runs on the disk about to go), the undefine after.
  w.expect(checks(), make(w), installStep(w), powerOff(), undefine());
  await assert.rejects(installVm(w.ctx, w.opts()), (e: unknown) => {
    assert.ok(e instanceof VmsError, String(e));
    assert.equal(e.code, 'failed');
    assert.equal(e.message, "the install (install.sh) failed with exit status 3 in phase 'prepare'");
    assert.equal(e.hint, removedHint(w, true));
    assert.deepEqual(e.data, { removed: { transcript: w.failedLog, cleaned: true } });
    assert.match(e.details ?? '', /test install failed on purpose$/);
    return true;
  });
  w.runner.done();
  await w.guest.allClosed();
  assert.deepEqual(w.failed, ['Installing (install.sh)']);
  assert.match(
    readFileSync(w.failedLog, 'utf8'),
    /test install failed on purpose/,
    'the transcript, copied before its dir went',
  );
  assert.ok(!existsSync(w.vmDir) && !existsSync(w.disk) && !existsSync(w.cacheRw));
  assert.ok(existsSync(w.sharedCache), 'the shared cache is not the install’s to remove');
});

/** install.sh fails at once (a run kept with --keep-failed: only what is made before it matters). */
const FAILING_INSTALL_EARLY: Record<string, ScriptRun> = { 'install.sh': { status: 1 } };

const FAILING_INSTALL: Record<string, ScriptRun> = {
  'install.sh': { phases: [['prepare', 30]], output: 'test install failed on purpose\r\n', status: 3 },
};

test('install.sh overruns its phase: a timeout that names install.sh and the phase; all undone', async () => {
  const w = host({ 'install.sh': { phases: [['partition', 1]], hangs: true } });
  w.expect(checks(), make(w), installStep(w), powerOff(), undefine());
  await assert.rejects(installVm(w.ctx, w.opts()), (e: unknown) => {
    assert.ok(e instanceof VmsError, String(e));
    assert.deepEqual(
      [e.code, e.message, e.hint],
      ['timeout', "install.sh did not finish phase 'partition' within 1s", removedHint(w, true)],
    );
    return true;
  });
  w.runner.done();
  assert.ok(!existsSync(w.vmDir) && !existsSync(w.disk) && !existsSync(w.cacheRw));
});

test('install.sh fails with --keep-failed: nothing undone (VM, disk, secrets, cache dir), how to go on', async () => {
  const w = host(FAILING_INSTALL);
  w.expect(checks(), make(w), installStep(w));
  await assert.rejects(installVm(w.ctx, w.opts({ keepFailed: true })), (e: unknown) => {
    assert.ok(e instanceof VmsError, String(e));
    assert.equal(e.message, "the install (install.sh) failed with exit status 3 in phase 'prepare'");
    const password = join(w.vmDir, 'root-password');
    assert.equal(
      e.hint,
      `kept for inspection: \`vms console inst\` (root password in ${password}); ` +
        'resume the create, or remove it with `vms destroy inst`',
    );
    assert.deepEqual(e.data, { kept: { name: VM, password } });
    return true;
  });
  w.runner.done();
  for (const kept of [w.disk, w.cacheRw, join(w.vmDir, 'root-password'), join(w.vmDir, 'settings.sh')])
    assert.ok(existsSync(kept), kept);
  assert.match(readFileSync(join(w.vmDir, 'install.log'), 'utf8'), /test install failed on purpose/);
  assert.ok(!existsSync(w.failedLog), 'the transcript stays in the VM dir: no copy');
  assert.match(w.defined[0]!, /<vms:pending>install<\/vms:pending>/, '--resume goes on with the install step');
});

test('a profile fails: the whole VM undone after the install had finished; the transcript kept', async () => {
  const w = host({ ...INSTALL_OK, 'tchild.sh': { output: 'tchild fails on purpose\r\n', status: 4 } });
  w.expect(checks(), make(w), installStep(w), afterInstall(w), profileStep(w), powerOff(), undefine());
  await assert.rejects(installVm(w.ctx, w.opts()), (e: unknown) => {
    assert.ok(e instanceof VmsError, String(e));
    assert.equal(e.message, 'profile tchild failed with exit status 4');
    assert.equal(e.hint, removedHint(w, true));
    assert.equal(e.details, 'tchild fails on purpose');
    return true;
  });
  w.runner.done();
  assert.deepEqual(w.guest.scripts, ['install.sh', 'tbase.sh', 'tchild.sh']);
  assert.deepEqual(w.failed, ['Applying profile tchild']);
  assert.ok(!existsSync(w.vmDir) && !existsSync(w.disk) && !existsSync(w.cacheRw));
  assert.match(readFileSync(w.failedLog, 'utf8'), /tchild fails on purpose/);
});

test('a clean-up step that fails: the hint no longer says nothing else is left, the error names what is', async () => {
  const w = host(FAILING_INSTALL);
  const undefineFails = virshFails(
    ['undefine', VM, '--nvram', '--managed-save', '--snapshots-metadata', '--checkpoints-metadata'],
    'error: Failed to undefine domain inst\nerror: internal error: busy\n',
  );
  w.expect(checks(), make(w), installStep(w), powerOff(), [present(), undefineFails]);
  await assert.rejects(installVm(w.ctx, w.opts()), (e: unknown) => {
    assert.ok(e instanceof VmsError, String(e));
    assert.match(e.message, /^the install \(install\.sh\) failed .* \(and clean-up failed: undefine inst: .*busy\)$/);
    assert.equal(e.hint, removedHint(w, false));
    assert.deepEqual(e.data, { removed: { transcript: w.failedLog, cleaned: false } });
    return true;
  });
  w.runner.done();
  assert.ok(!existsSync(w.vmDir) && !existsSync(w.disk), 'the steps after the failed one still ran');
});

test('interrupted while install.sh runs: all undone, the error is the interrupt (no transcript hint)', async () => {
  const controller = new AbortController();
  const abort = () => setTimeout(() => controller.abort(), 50);
  const w = host({ 'install.sh': { phases: [['prepare', 30]], hangs: true, does: abort } });
  w.ctx.signal = controller.signal;
  w.expect(checks(), make(w), installStep(w), powerOff(), undefine());
  await assert.rejects(installVm(w.ctx, w.opts()), (e: unknown) => {
    assert.ok(e instanceof VmsError, String(e));
    assert.deepEqual(
      [e.code, e.message, e.hint, e.data],
      ['interrupted', 'interrupted', 'everything this command had made so far was removed', undefined],
    );
    return true;
  });
  w.runner.done();
  assert.ok(!existsSync(w.vmDir) && !existsSync(w.disk) && !existsSync(w.cacheRw));
  assert.ok(existsSync(w.failedLog), 'the transcript is kept all the same');
});

// ---- vms create NAME --resume ------------------------------------------------------------------------------------

/** A VM a --keep-failed create left: its secrets in its dir, its definition with the step still to do. */
function keptVm(
  pending: 'install' | 'profile' | undefined,
  runs: Record<string, ScriptRun> = INSTALL_OK,
  {
    env = {},
    settings = "VMS_USER='kept'\n",
    profile = 'tchild',
  }: { env?: Record<string, string>; settings?: string; profile?: string } = {},
) {
  const w = host(runs, env);
  mkdirSync(w.vmDir, { recursive: true });
  writeFileSync(join(w.vmDir, 'root-password'), 'pw-kept\n', { mode: 0o600 });
  writeFileSync(join(w.vmDir, 'settings.sh'), settings, { mode: 0o600 });
  const metadata = renderMetadata({ profile, pending, bases: [], made: [] });
  w.defined.push(vmXml(VM, { graphics: false }).replace('<devices>', `<metadata>${metadata}</metadata><devices>`));
  return w;
}

test('resume of the profile step: boots from the disk, runs the profiles, marks it complete; no install', async () => {
  const w = keptVm('profile');
  w.expect([savedDefinition(w), stateIs('shut off')], profileStep(w), afterProfiles(w), [
    savedDefinition(w),
    stateIs('running'),
  ]);
  const r = await resumeInstall(w.ctx, VM);
  w.runner.done();
  assert.equal(w.guest.password, 'pw-kept', 'logged in with the kept password');
  assert.deepEqual(w.guest.scripts, ['tbase.sh', 'tchild.sh']);
  assert.deepEqual(w.steps, PROFILE_STEPS);
  assert.ok(!w.defined.at(-1)!.includes('<vms:pending>'));
  assert.deepEqual([r.user, r.state, r.transcript], ['kept', 'running', join(w.vmDir, 'install.log')]);
  assert.match(readFileSync(r.transcript, 'utf8'), /----- vms create inst --resume \(profile\), /);
});

test('resume of the install step on a VM left running: powered off first, then the live ISO again', async () => {
  const w = keptVm('install', { 'install.sh': { status: 2 } });
  w.expect([savedDefinition(w), stateIs('running')], [stateIs('running'), virshCall(['destroy', VM]), start(w, false)]);
  await assert.rejects(resumeInstall(w.ctx, VM), (e: unknown) => {
    assert.ok(e instanceof VmsError, String(e));
    assert.equal(e.message, 'the install (install.sh) failed with exit status 2');
    assert.deepEqual(e.data, { kept: { name: VM, password: join(w.vmDir, 'root-password') } }, 'a resume never undoes');
    return true;
  });
  w.runner.done();
  assert.deepEqual(w.steps.slice(0, 2), [`Powering off ${VM} to start the install again`, 'Booting the live ISO']);
  assert.ok(existsSync(w.vmDir));
});

test('resume of a complete VM is refused before anything runs', async () => {
  const w = keptVm(undefined);
  w.expect([savedDefinition(w), stateIs('shut off')]);
  await assert.rejects(
    resumeInstall(w.ctx, VM),
    (e: unknown) =>
      e instanceof VmsError && e.code === 'conflict' && e.message === 'inst is complete: there is nothing to resume',
  );
  w.runner.done();
  assert.deepEqual(w.steps, []);
});

test('resume of a VM whose metadata names no profile is refused: it was not made by vms create', async () => {
  const w = keptVm('profile', INSTALL_OK, { profile: '' });
  w.expect([savedDefinition(w), stateIs('shut off')]);
  await assert.rejects(resumeInstall(w.ctx, VM), (e: unknown) => {
    assert.ok(e instanceof VmsError, String(e));
    assert.deepEqual(
      [e.code, e.message],
      ['usage', 'inst has no profile in its metadata: it was not made by `vms create`'],
    );
    return true;
  });
  w.runner.done();
  assert.deepEqual(w.steps, []);
  assert.ok(!existsSync(join(w.vmDir, 'install.log')), 'refused before the transcript is opened');
});

test('resume of a complete VM: the hint names vms apply', async () => {
  const w = keptVm(undefined);
  w.expect([savedDefinition(w), stateIs('shut off')]);
  await assert.rejects(resumeInstall(w.ctx, VM), (e: unknown) => {
    assert.ok(e instanceof VmsError, String(e));
    assert.equal(e.hint, '`vms apply inst PROFILE` runs a profile on it');
    return true;
  });
  w.runner.done();
});

test('resume with settings that name no user: the result says no user; the transcript is closed', async () => {
  const w = keptVm('profile', INSTALL_OK, { settings: "VMS_HOSTNAME='inst'\n" });
  w.expect([savedDefinition(w), stateIs('shut off')], profileStep(w), afterProfiles(w), [
    savedDefinition(w),
    stateIs('running'),
  ]);
  const r = await resumeInstall(w.ctx, VM);
  w.runner.done();
  assert.equal(r.user, '');
  assert.ok(!openFiles().includes(r.transcript), 'the transcript is closed');
  await w.guest.allClosed();
});

/** A resume of the install step whose install.sh fails: how far it got shows what the installer files were. */
async function resumeFailingInstall(env: Record<string, string>) {
  const w = keptVm('install', { 'install.sh': { status: 2 } }, { env });
  w.expect([savedDefinition(w), stateIs('shut off')], [stateIs('shut off'), start(w, false)]);
  await assert.rejects(resumeInstall(w.ctx, VM), (e: unknown) => {
    assert.ok(e instanceof VmsError, String(e));
    assert.equal(e.message, 'the install (install.sh) failed with exit status 2');
    return true;
  });
  w.runner.done();
  await w.guest.allClosed(); // the session is closed after a failure too
  return w;
}

/** The files pushed into the guest's /root/vms, by name, with their text. */
const pushedInstaller = (w: Host) =>
  Object.fromEntries(
    [...w.guest.files]
      .filter(([path]) => /^\/root\/vms\/[^/]+$/.test(path) && path !== '/root/vms/settings.sh')
      .map(([path, data]) => [path.slice('/root/vms/'.length), data.toString()])
      .sort(),
  );

test('without VMS_GUEST_DIR the installer is the built-in guest/ files, each copied, all named in the step', async () => {
  const w = await resumeFailingInstall({ VMS_GUEST_DIR: '' });
  const builtIn = Object.fromEntries(
    readdirSync('guest')
      .filter((f) => f !== 'README.md')
      .sort()
      .map((f) => [f, readFileSync(join('guest', f), 'utf8')]),
  );
  assert.ok(Object.keys(builtIn).length >= 2 && 'install.sh' in builtIn, Object.keys(builtIn).join(' '));
  assert.ok(w.steps.includes(`Copying the installer (${Object.keys(builtIn).join(', ')})`), w.steps.join('\n'));
  assert.deepEqual(pushedInstaller(w), builtIn);
});

test('VMS_GUEST_DIR: every file but the READMEs is copied, with its text', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-guest-'));
  const files = { 'install.sh': 'echo install\n', 'lib.sh': 'echo lib\n', 'see-README.sh': 'echo see\n' };
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  writeFileSync(join(dir, 'README.md'), '# for people\n');
  const w = await resumeFailingInstall({ VMS_GUEST_DIR: dir });
  assert.deepEqual(pushedInstaller(w), files);
  const listed = readdirSync(dir).filter((f) => f !== 'README.md'); // in the order the directory lists them
  assert.ok(w.steps.includes(`Copying the installer (${listed.join(', ')})`), w.steps.join('\n'));
});

test('resume: an error that is not a VmsError (an unreadable installer file) goes through unchanged', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-guest-'));
  writeFileSync(join(dir, 'install.sh'), 'echo install\n');
  mkdirSync(join(dir, 'sub.d')); // readFile of a directory: EISDIR
  const w = keptVm('install', INSTALL_OK, { env: { VMS_GUEST_DIR: dir } });
  w.expect([savedDefinition(w), stateIs('shut off')]);
  await assert.rejects(resumeInstall(w.ctx, VM), (e: unknown) => {
    assert.ok(!(e instanceof VmsError), 'not made a VmsError with a hint');
    assert.equal((e as NodeJS.ErrnoException).code, 'EISDIR');
    return true;
  });
  w.runner.done();
});
