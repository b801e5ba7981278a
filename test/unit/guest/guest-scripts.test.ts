import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

// The guest scripts run for real under bash, against stub commands that record their name and arguments. PATH holds
// only the stubs and a few harmless tools (links to the real ones), so a command the stubs forget fails the script
// instead of running on this machine (a real mount, wipefs or pacman).

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const GUEST = join(REPO, 'guest');
const PROFILES = join(REPO, 'profiles');
const SAFE_TOOLS = [
  'awk',
  'cat',
  'chmod',
  'cmp',
  'dirname',
  'install',
  'ln',
  'mkdir',
  'mktemp',
  'mv',
  'od',
  'rm',
  'sed',
  'tail',
  'tee',
];

function which(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not in this directory
    }
  }
  throw new Error(`${name} is not installed`);
}
const BASH = which('bash');

const tempDirs: string[] = [];
process.on('exit', () => tempDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vms-guest-'));
  tempDirs.push(dir);
  return dir;
}

type Call = string[];

interface Bed {
  dir: string;
  run(
    script: string,
    args: string[],
    env?: Record<string, string>,
  ): { status: number | null; stdout: string; stderr: string };
  /** Every stub call since the last takeCalls(), in order. */
  takeCalls(): Call[];
}

/** A directory with a bin/ of stubs: name → extra shell run after the call is recorded. */
function bed(stubs: Record<string, string>): Bed {
  const dir = tempDir();
  const bin = join(dir, 'bin');
  const log = join(dir, 'calls.log');
  mkdirSync(bin);
  for (const tool of SAFE_TOOLS) symlinkSync(which(tool), join(bin, tool));
  for (const [name, body] of Object.entries(stubs)) {
    const record = `{ printf %s "\${0##*/}"; printf '\\t%s' "$@"; echo; } >> "$STUB_LOG"`;
    writeFileSync(join(bin, name), `#!${BASH}\n${record}\n${body}\n`, { mode: 0o755 });
  }
  return {
    dir,
    run(script, args, env = {}) {
      const r = spawnSync(BASH, [script, ...args], { env: { PATH: bin, STUB_LOG: log, ...env }, encoding: 'utf8' });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    },
    takeCalls() {
      const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
      rmSync(log, { force: true });
      return text
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split('\t'));
    },
  };
}

function writeSettings(dir: string, values: Record<string, string>): string {
  const path = join(dir, 'settings.sh');
  const quote = (v: string) => `'${v.replaceAll("'", `'\\''`)}'`;
  writeFileSync(
    path,
    Object.entries(values)
      .map(([k, v]) => `${k}=${quote(v)}\n`)
      .join(''),
  );
  return path;
}

const phases = (stdout: string) => [...stdout.matchAll(/^::vms-phase (\S+) (\d+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
const read = (path: string) => readFileSync(path, 'utf8');

test('shellcheck passes on every guest script and profile', () => {
  const scripts = [
    join(GUEST, 'install.sh'),
    join(GUEST, 'vms-identity'),
    ...readdirSync(PROFILES)
      .filter((f) => f.endsWith('.sh'))
      .map((f) => join(PROFILES, f)),
  ];
  assert.ok(scripts.length >= 8, scripts.join(' '));
  const r = spawnSync('shellcheck', ['-x', ...scripts], { encoding: 'utf8' });
  assert.equal(
    r.error,
    undefined,
    `shellcheck could not run (${r.error?.message}); install it: apt-get install shellcheck`,
  );
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

// ---- install.sh

const HASH = '$6$salt$0123456789abcdef';
const SSH_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGbw alice@host';
const ROOT_UUID = '3f1c9a2e-5b7d-4e0a-9c61-2d8f4b7a1e55';
const FSTAB_LINE = `UUID=${ROOT_UUID}\t/\text4\trw,relatime\t0 1`;
const PACMAN_CONF =
  '[options]\nHoldPkg = pacman glibc\nArchitecture = auto\n\n[core]\nInclude = /etc/pacman.d/mirrorlist\n';
const CONSOLES = 'console=tty0 console=ttyS0,115200';

const INSTALL_STUBS: Record<string, string> = {
  lsblk: 'echo disk',
  wipefs: '',
  sgdisk: '',
  partprobe: '',
  udevadm: '',
  'mkfs.ext4': '',
  'mkfs.fat': '',
  mount: '',
  umount: '',
  systemctl: '',
  pacman: '',
  // What install.sh reads from the packages pacstrap installs: tzdata, glibc's locale list, grub's defaults.
  pacstrap: [
    'mkdir -p "$VMS_TARGET/usr/share/zoneinfo/Europe" "$VMS_TARGET/usr/share/i18n" "$VMS_TARGET/etc/default"',
    'echo TZif2 > "$VMS_TARGET/usr/share/zoneinfo/Europe/Berlin"',
    `printf 'de_DE.UTF-8 UTF-8\\nen_US.UTF-8 UTF-8\\nen_US ISO-8859-1\\n' > "$VMS_TARGET/usr/share/i18n/SUPPORTED"`,
    `printf '#en_US.UTF-8 UTF-8\\n' > "$VMS_TARGET/etc/locale.gen"`,
    `printf 'GRUB_TIMEOUT=5\\nGRUB_CMDLINE_LINUX=""\\n' > "$VMS_TARGET/etc/default/grub"`,
  ].join('\n'),
  genfstab: `printf '%s\\n' '${FSTAB_LINE}'`,
  blkid: `echo ${ROOT_UUID}`,
  'arch-chroot': '',
};

function runInstall(settings: Record<string, string>, stubs: Record<string, string> = {}) {
  const b = bed({ ...INSTALL_STUBS, ...stubs });
  const target = join(b.dir, 'mnt');
  const pacmanConf = join(b.dir, 'pacman.conf');
  const cacheMnt = join(b.dir, 'vms-cache');
  mkdirSync(target);
  writeFileSync(pacmanConf, PACMAN_CONF);
  const settingsPath = writeSettings(b.dir, {
    VMS_NAME: 'work_1',
    VMS_HOSTNAME: 'work-1',
    VMS_USER: 'alice',
    VMS_PASSWORD_HASH: HASH,
    VMS_SSH_KEY: SSH_KEY,
    VMS_TIMEZONE: 'Europe/Berlin',
    VMS_LOCALE: 'en_US.UTF-8',
    VMS_KEYMAP: 'de-latin1',
    VMS_DISK: '/dev/vda',
    VMS_FIRMWARE: 'bios',
    VMS_CACHE_RO: '',
    VMS_CACHE_RW: '',
    ...settings,
  });
  const r = b.run(join(GUEST, 'install.sh'), [settingsPath], {
    VMS_TARGET: target,
    VMS_PACMAN_CONF: pacmanConf,
    VMS_CACHE_MNT: cacheMnt,
  });
  return { ...r, calls: b.takeCalls(), target, pacmanConf, cacheMnt, file: (p: string) => read(join(target, p)) };
}

const INSTALL_PHASES = [
  'check 30',
  'partition 120',
  'mount 60',
  'cache 60',
  'keyring 600',
  'pacstrap 3600',
  'configure 600',
  'bootloader 300',
  'unmount 120',
];
const BASE_PACKAGES = ['base', 'linux', 'mkinitcpio', 'e2fsprogs', 'sudo', 'openssh', 'qemu-guest-agent'];
const UNITS = [
  'sshd.service',
  'systemd-networkd.service',
  'systemd-resolved.service',
  'fstrim.timer',
  'serial-getty@ttyS0.service',
  'vms-identity.service',
];

test('install.sh, BIOS with package caches: GPT + BIOS boot partition, caches as CacheDirs, GRUB on the serial console', () => {
  const r = runInstall({
    VMS_FIRMWARE: 'bios',
    VMS_CACHE_RW: 'vms-pkg-vm',
    VMS_CACHE_RO: 'vms-pkg-host vms-pkg-shared',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(phases(r.stdout), INSTALL_PHASES);
  const T = r.target;
  const cache = (tag: string) => join(r.cacheMnt, tag);
  const chroot = (...args: string[]) => ['arch-chroot', T, ...args];
  assert.deepEqual(r.calls, [
    ['lsblk', '-dno', 'TYPE', '/dev/vda'],
    ['wipefs', '-a', '/dev/vda'],
    ['sgdisk', '--zap-all', '/dev/vda'],
    [
      'sgdisk',
      '-n',
      '1:0:+1M',
      '-t',
      '1:ef02',
      '-c',
      '1:bios',
      '-n',
      '2:0:0',
      '-t',
      '2:8304',
      '-c',
      '2:root',
      '/dev/vda',
    ],
    ['partprobe', '/dev/vda'],
    ['udevadm', 'settle'],
    ['mkfs.ext4', '-F', '-q', '-L', 'root', '/dev/vda2'],
    ['mount', '/dev/vda2', T],
    ['mount', '-t', 'virtiofs', 'vms-pkg-vm', cache('vms-pkg-vm')],
    ['mount', '-t', 'virtiofs', '-o', 'ro', 'vms-pkg-host', cache('vms-pkg-host')],
    ['mount', '-t', 'virtiofs', '-o', 'ro', 'vms-pkg-shared', cache('vms-pkg-shared')],
    ['systemctl', 'is-system-running', '--wait'],
    ['pacman', '--config', r.pacmanConf, '-Sy', '--needed', '--noconfirm', 'archlinux-keyring'],
    ['pacstrap', '-C', r.pacmanConf, '-K', '-c', T, ...BASE_PACKAGES, 'grub'],
    ['genfstab', '-U', T],
    chroot('hwclock', '--systohc'),
    chroot('locale-gen'),
    chroot('useradd', '-m', '-G', 'wheel', 'alice'),
    chroot('usermod', '-p', HASH, 'root'),
    chroot('usermod', '-p', HASH, 'alice'),
    chroot('chown', '-R', 'alice:', '/home/alice/.ssh'),
    chroot('systemctl', 'enable', ...UNITS),
    chroot('grub-install', '--target=i386-pc', '/dev/vda'),
    chroot('grub-mkconfig', '-o', '/boot/grub/grub.cfg'),
    ['umount', '-R', T],
    ['umount', cache('vms-pkg-vm')],
    ['umount', cache('vms-pkg-host')],
    ['umount', cache('vms-pkg-shared')],
  ]);
  // the writable cache first, the target's own cache last (where downloads go when no cache is writable)
  assert.equal(
    read(r.pacmanConf),
    PACMAN_CONF.replace(
      '[options]\n',
      [
        '[options]',
        `CacheDir = ${cache('vms-pkg-vm')}/`,
        `CacheDir = ${cache('vms-pkg-host')}/`,
        `CacheDir = ${cache('vms-pkg-shared')}/`,
        `CacheDir = ${T}/var/cache/pacman/pkg/`,
        '',
      ].join('\n'),
    ),
  );

  const grub = r.file('etc/default/grub');
  assert.match(grub, /^GRUB_TIMEOUT=5\n/, 'the packaged defaults stay; ours come after them and win');
  assert.match(grub, new RegExp(`\nGRUB_CMDLINE_LINUX="${CONSOLES}"\n`));
  assert.match(grub, /\nGRUB_TERMINAL="console serial"\n/);
  assert.match(grub, /\nGRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"\n/);
  assert.ok(!existsSync(join(T, 'boot/loader')), 'no systemd-boot files on a BIOS install');
});

test('install.sh writes the system configuration into the target', () => {
  const r = runInstall({ VMS_FIRMWARE: 'bios' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.file('etc/hostname'), 'work-1\n');
  assert.match(r.file('etc/hosts'), /^127\.0\.0\.1 localhost\n(.*\n)*127\.0\.1\.1 work-1\n$/);
  assert.equal(r.file('etc/locale.gen'), '#en_US.UTF-8 UTF-8\nen_US.UTF-8 UTF-8\n');
  assert.equal(r.file('etc/locale.conf'), 'LANG=en_US.UTF-8\n');
  assert.equal(r.file('etc/vconsole.conf'), 'KEYMAP=de-latin1\n');
  assert.equal(r.file('etc/fstab'), `${FSTAB_LINE}\n`);
  assert.equal(readlinkSync(join(r.target, 'etc/localtime')), '/usr/share/zoneinfo/Europe/Berlin');
  assert.equal(readlinkSync(join(r.target, 'etc/resolv.conf')), '../run/systemd/resolve/stub-resolv.conf');
  assert.match(r.file('etc/systemd/network/20-wired.network'), /\[Match\]\nType=ether\n[^]*\[Network\]\nDHCP=yes\n/);
  assert.equal(r.file('etc/sudoers.d/10-wheel'), '%wheel ALL=(ALL:ALL) ALL\n');
  assert.equal(statSync(join(r.target, 'etc/sudoers.d/10-wheel')).mode & 0o777, 0o440);
  for (const home of ['root', 'home/alice']) {
    assert.equal(r.file(`${home}/.ssh/authorized_keys`), `${SSH_KEY}\n`);
    assert.equal(statSync(join(r.target, home, '.ssh/authorized_keys')).mode & 0o777, 0o600);
  }
  // the identity check, starting from this VM's name
  assert.equal(r.file('usr/local/bin/vms-identity'), read(join(GUEST, 'vms-identity')));
  assert.equal(statSync(join(r.target, 'usr/local/bin/vms-identity')).mode & 0o777, 0o755);
  assert.equal(r.file('etc/systemd/system/vms-identity.service'), read(join(GUEST, 'vms-identity.service')));
  assert.equal(r.file('var/lib/vms-identity/name'), 'work_1\n');
});

test('install.sh, UEFI without caches: ESP + systemd-boot with the serial console, pacman.conf untouched', () => {
  const r = runInstall({ VMS_FIRMWARE: 'efi', VMS_SSH_KEY: '' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(phases(r.stdout), INSTALL_PHASES);
  const T = r.target;
  const has = (call: Call) => r.calls.some((c) => c.join('\t') === call.join('\t'));
  const index = (call: Call) => r.calls.findIndex((c) => c.join('\t') === call.join('\t'));
  const inOrder: Call[] = [
    [
      'sgdisk',
      '-n',
      '1:0:+512M',
      '-t',
      '1:ef00',
      '-c',
      '1:ESP',
      '-n',
      '2:0:0',
      '-t',
      '2:8304',
      '-c',
      '2:root',
      '/dev/vda',
    ],
    ['mkfs.ext4', '-F', '-q', '-L', 'root', '/dev/vda2'],
    ['mkfs.fat', '-F', '32', '-n', 'ESP', '/dev/vda1'],
    ['mount', '/dev/vda2', T],
    ['mount', '-o', 'fmask=0077,dmask=0077', '/dev/vda1', join(T, 'boot')],
    ['pacstrap', '-C', r.pacmanConf, '-K', T, ...BASE_PACKAGES, 'dosfstools'],
    ['arch-chroot', T, 'systemctl', 'enable', ...UNITS],
    ['arch-chroot', T, 'bootctl', 'install'],
    ['blkid', '-s', 'UUID', '-o', 'value', '/dev/vda2'],
    ['umount', '-R', T],
  ];
  const positions = inOrder.map(index);
  assert.ok(
    positions.every((p) => p >= 0),
    `missing: ${JSON.stringify(inOrder.filter((_, i) => positions[i]! < 0))}`,
  );
  assert.deepEqual(
    [...positions].sort((a, b) => a - b),
    positions,
    'out of order',
  );
  assert.ok(!r.calls.some((c) => c.includes('grub-install') || c.includes('grub-mkconfig')), 'no GRUB on UEFI');
  assert.ok(!r.calls.some((c) => c.includes('virtiofs') || (c[0] === 'umount' && c[1] !== '-R')), 'no cache mounts');
  assert.ok(
    !has(['arch-chroot', T, 'chown', '-R', 'alice:', '/home/alice/.ssh']) && !existsSync(join(T, 'root/.ssh')),
    'no key, no authorized_keys',
  );
  assert.equal(read(r.pacmanConf), PACMAN_CONF);

  assert.equal(r.file('boot/loader/loader.conf'), 'default arch.conf\ntimeout 1\neditor no\n');
  const entry = r.file('boot/loader/entries/arch.conf');
  assert.match(entry, /^linux +\/vmlinuz-linux$/m);
  assert.match(entry, /^initrd +\/initramfs-linux\.img$/m);
  assert.match(entry, new RegExp(`^options root=UUID=${ROOT_UUID} rw ${CONSOLES}$`, 'm'));
});

test('install.sh stops at a failing pacstrap: non-zero exit, the phase named, no later phase, target unmounted', () => {
  const r = runInstall({}, { pacstrap: 'echo "error: failed to retrieve some files" >&2; exit 1' });
  assert.notEqual(r.status, 0);
  assert.deepEqual(phases(r.stdout), INSTALL_PHASES.slice(0, INSTALL_PHASES.indexOf('pacstrap 3600') + 1));
  assert.match(r.stderr, /failed to retrieve some files/);
  assert.match(r.stderr, /install\.sh: `pacstrap .*` failed with status 1/);
  assert.match(r.stderr, /install\.sh: failed in phase pacstrap/);
  const names = r.calls.map((c) => c[0]);
  assert.ok(!names.includes('genfstab') && !names.includes('arch-chroot'), names.join(' '));
  assert.deepEqual(r.calls.at(-1), ['umount', '-R', r.target]);
});

test('install.sh checks the settings and the disk before it erases anything', () => {
  const cases: [Record<string, string>, Record<string, string>, RegExp][] = [
    [{ VMS_FIRMWARE: 'uefi' }, {}, /VMS_FIRMWARE must be bios or efi, not 'uefi'/],
    [{ VMS_USER: '' }, {}, /VMS_USER is not set/],
    [{ VMS_DISK: '/dev/vda1' }, { lsblk: 'echo part' }, /\/dev\/vda1 is not a whole disk/],
  ];
  for (const [settings, stubs, message] of cases) {
    const r = runInstall(settings, stubs);
    assert.equal(r.status, 1, JSON.stringify(settings));
    assert.match(r.stderr, message);
    assert.deepEqual(phases(r.stdout), ['check 30']);
    assert.ok(!r.calls.some((c) => c[0] === 'wipefs' || c[0] === 'sgdisk'), JSON.stringify(r.calls));
  }
});

test('install.sh refuses an unknown timezone or locale (after pacstrap, from the installed lists)', () => {
  for (const [settings, message] of [
    [{ VMS_TIMEZONE: 'Mars/Olympus' }, /unknown timezone 'Mars\/Olympus'/],
    [{ VMS_LOCALE: 'en_US.UTF' }, /unknown locale 'en_US.UTF'/],
  ] as const) {
    const r = runInstall(settings);
    assert.equal(r.status, 1);
    assert.match(r.stderr, message);
    assert.equal(phases(r.stdout).at(-1), 'configure 600');
  }
});

// ---- profiles

const PROFILE_STUBS: Record<string, string> = {
  pacman: '',
  systemctl: '',
  usermod: '',
  runuser: 'shift 3; exec "$@"', // runuser -u alice -- CMD...: here CMD runs as whoever runs the test
};

function header(name: string, key: string): string | undefined {
  const head = read(join(PROFILES, `${name}.sh`))
    .split('\n')
    .slice(0, 10);
  return head.map((l) => new RegExp(`^# vms-${key}: (.+)$`).exec(l)?.[1]).find(Boolean);
}

function chain(name: string): string[] {
  const parent = header(name, 'parent');
  return parent ? [...chain(parent), name] : [name];
}

/** path → content of every file below dir */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else files[relative(dir, join(d, e.name))] = read(join(d, e.name));
    }
  };
  if (existsSync(dir)) walk(dir);
  return files;
}

function runProfiles(leaf: string) {
  const b = bed(PROFILE_STUBS);
  const root = join(b.dir, 'root');
  mkdirSync(join(root, 'home/alice'), { recursive: true });
  const settings = writeSettings(b.dir, { VMS_NAME: 'work', VMS_USER: 'alice', VMS_HOSTNAME: 'work' });
  const pass = () => {
    let stdout = '';
    for (const name of chain(leaf)) {
      const r = b.run(join(PROFILES, `${name}.sh`), [settings], { VMS_ROOT: root });
      assert.equal(r.status, 0, `${name}: ${r.stderr}`);
      stdout += r.stdout;
    }
    return { stdout, calls: b.takeCalls(), files: snapshot(root) };
  };
  return { root, first: pass(), second: pass() };
}

const pacmanInstalls = (calls: Call[]) =>
  calls.filter((c) => c[0] === 'pacman' && c[1] === '-S').flatMap((c) => c.slice(4));
const writes = (calls: Call[]) => calls.filter((c) => c[0] === 'runuser' && c.includes('tee')).map((c) => c.at(-1));

test('profiles name their parents and describe themselves', () => {
  const names = readdirSync(PROFILES)
    .filter((f) => f.endsWith('.sh') && !f.startsWith('_'))
    .map((f) => f.slice(0, -3))
    .sort();
  assert.deepEqual(names, ['browser', 'dev', 'gui', 'minimal', 'telegram']);
  const parents = Object.fromEntries(names.map((n) => [n, header(n, 'parent')]));
  assert.deepEqual(parents, { browser: 'gui', dev: 'gui', gui: 'minimal', minimal: undefined, telegram: 'gui' });
  for (const n of names) assert.ok(header(n, 'description'), `${n} has no description`);
});

test('minimal → gui → browser: X + i3 with autologin, Firefox autostarts; a second run changes nothing', () => {
  const { root, first, second } = runProfiles('browser');
  assert.deepEqual(phases(first.stdout), ['minimal 1800', 'gui 1800', 'browser 1800']);
  assert.deepEqual(first.calls.filter((c) => c[0] === 'pacman').slice(0, 2), [
    ['pacman', '-Sy', '--needed', '--noconfirm', 'archlinux-keyring'],
    ['pacman', '-Su', '--noconfirm'],
  ]);
  const installed = pacmanInstalls(first.calls);
  for (const p of [
    'xorg-server',
    'xorg-xinit',
    'i3-wm',
    'i3status',
    'dmenu',
    'xterm',
    'spice-vdagent',
    'noto-fonts',
    'firefox',
    'chromium',
  ]) {
    assert.ok(installed.includes(p), `${p} not installed`);
  }
  assert.ok(
    first.calls.every((c) => c[0] !== 'pacman' || c.includes('--noconfirm')),
    'pacman never asks',
  );

  const home = join(root, 'home/alice');
  assert.match(
    read(join(root, 'etc/systemd/system/getty@tty1.service.d/autologin.conf')),
    /^\[Service\]\nExecStart=\nExecStart=-\/sbin\/agetty -o '-p -f -- \\\\u' --noclear --autologin alice %I \$TERM\n$/,
  );
  assert.match(read(join(home, '.bash_profile')), /XDG_VTNR:-} == 1 ]]; then\n\s+startx\n/);
  assert.match(read(join(home, '.xinitrc')), /^spice-vdagent\nexec i3\n/m);
  const i3 = read(join(home, '.config/i3/config'));
  assert.match(i3, /^include ~\/\.config\/i3\/config\.d\/\*\.conf$/m);
  assert.match(i3, /^bar \{\n\s+status_command i3status\n\}$/m);
  assert.equal(read(join(home, '.config/i3/config.d/browser.conf')), 'exec --no-startup-id firefox\n');
  // the user's files are written by the user (runuser), so they own them and their directories
  assert.deepEqual(
    writes(first.calls).sort(),
    ['.bash_profile', '.config/i3/config', '.config/i3/config.d/browser.conf', '.xinitrc'].map((f) => join(home, f)),
  );

  assert.deepEqual(second.files, first.files);
  assert.deepEqual(writes(second.calls), [], 'the second run rewrites nothing');
  for (const [path, text] of Object.entries(second.files).filter(([p]) => p.includes('i3/'))) {
    const lines = text.split('\n').filter((l) => l.trim() && !/^\s*[#}]/.test(l));
    assert.equal(new Set(lines).size, lines.length, `duplicate lines in ${path}`);
  }
});

test('gui → telegram: Telegram Desktop installed and started with i3', () => {
  const { root, first, second } = runProfiles('telegram');
  assert.ok(pacmanInstalls(first.calls).includes('telegram-desktop'));
  assert.equal(
    read(join(root, 'home/alice/.config/i3/config.d/telegram.conf')),
    'exec --no-startup-id telegram-desktop\n',
  );
  assert.deepEqual(second.files, first.files);
  assert.deepEqual(writes(second.calls), []);
});

test('gui → dev: the tools, Docker enabled and the user in its group, the same on a second run', () => {
  const { first, second } = runProfiles('dev');
  assert.deepEqual(phases(first.stdout), ['minimal 1800', 'gui 1800', 'dev 1800']);
  const installed = pacmanInstalls(first.calls);
  for (const p of ['git', 'neovim', 'tmux', 'ripgrep', 'base-devel', 'docker'])
    assert.ok(installed.includes(p), `${p} not installed`);
  for (const pass of [first, second]) {
    assert.ok(pass.calls.some((c) => c.join(' ') === 'systemctl enable docker.service'));
    assert.ok(pass.calls.some((c) => c.join(' ') === 'usermod -aG docker alice'));
  }
  assert.deepEqual(second.files, first.files);
});

// ---- vms-identity

/** An SMBIOS type 11 entry as the kernel shows it in /sys/firmware/dmi/entries/11-N/raw. */
function oemEntry(...strings: string[]): Buffer {
  const formatted = Buffer.from([11, 5, 0x2a, 0x00, strings.length]);
  return Buffer.concat([formatted, Buffer.from(strings.map((s) => `${s}\0`).join('') + '\0')]);
}

const IDENTITY_STUBS: Record<string, string> = {
  // both keep what exists, as the real ones do: vms-identity must remove the old id and keys first
  'systemd-machine-id-setup':
    'f=${1#--root=}/etc/machine-id; [[ -s $f ]] || echo 5e0f8a1b2c3d4e5f60718293a4b5c6d7 > "$f"',
  'ssh-keygen': 'for t in rsa ecdsa ed25519; do f=${3}etc/ssh/ssh_host_${t}_key; [[ -e $f ]] || echo new > "$f"; done',
};

function identityRoot(oem?: Buffer) {
  const b = bed(IDENTITY_STUBS);
  const root = join(b.dir, 'root');
  const files: Record<string, string> = {
    'etc/machine-id': '0123456789abcdef0123456789abcdef\n',
    'etc/hostname': 'work\n',
    'etc/hosts': '127.0.0.1 localhost\n::1 localhost\n127.0.1.1 work\n',
    'etc/ssh/ssh_host_ed25519_key': 'old\n',
    'etc/ssh/ssh_host_ed25519_key.pub': 'old\n',
    'proc/sys/kernel/hostname': 'work\n',
    'var/lib/vms-identity/name': 'work\n',
  };
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  if (oem) {
    mkdirSync(join(root, 'sys/firmware/dmi/entries/11-0'), { recursive: true });
    writeFileSync(join(root, 'sys/firmware/dmi/entries/11-0/raw'), oem);
  }
  const run = () => {
    const r = b.run(join(GUEST, 'vms-identity'), [], { VMS_ROOT: root });
    assert.equal(r.status, 0, r.stderr);
    return { ...r, calls: b.takeCalls() };
  };
  return { root, before: snapshot(root), run };
}

test('vms-identity: the same name, or no name in SMBIOS, changes nothing', () => {
  for (const oem of [oemEntry('vendor=acme', 'vms.name=work'), oemEntry('vendor=acme'), undefined]) {
    const { root, before, run } = identityRoot(oem);
    assert.deepEqual(run().calls, []);
    assert.deepEqual(snapshot(root), before);
  }
});

test('vms-identity: a new name brings a new machine-id, new SSH host keys and the hostname', () => {
  const { root, run } = identityRoot(oemEntry('vms.name=work_2', 'vendor=acme'));
  const r = run();
  assert.match(r.stdout, /this VM is now 'work_2' \(was 'work'\)/);
  assert.deepEqual(r.calls, [
    ['systemd-machine-id-setup', `--root=${root}`],
    ['ssh-keygen', '-A', '-f', `${root}/`],
  ]);
  const file = (p: string) => read(join(root, p));
  assert.equal(file('etc/machine-id'), '5e0f8a1b2c3d4e5f60718293a4b5c6d7\n');
  assert.deepEqual(readdirSync(join(root, 'etc/ssh')).sort(), [
    'ssh_host_ecdsa_key',
    'ssh_host_ed25519_key',
    'ssh_host_rsa_key',
  ]);
  assert.equal(file('etc/ssh/ssh_host_ed25519_key'), 'new\n');
  assert.equal(file('etc/hostname'), 'work-2\n');
  assert.equal(file('proc/sys/kernel/hostname'), 'work-2\n');
  assert.equal(file('etc/hosts'), '127.0.0.1 localhost\n::1 localhost\n127.0.1.1 work-2\n');
  assert.equal(file('var/lib/vms-identity/name'), 'work_2\n');
  // the next boot finds the name it recorded
  assert.deepEqual(run().calls, []);
});
