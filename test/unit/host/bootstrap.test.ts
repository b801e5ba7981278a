import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  defaultNetworkXmlPath,
  planBootstrap,
  planHost,
  readHostState,
  thisMachine,
  type BootstrapStep,
  type HostFacts,
  type HostState,
} from '../../../src/core/host/bootstrap.js';
import { createContext, processHost, type Context } from '../../../src/core/context.js';
import { recordingProgress } from '../../helpers/vm-fake.js';
import { ARCH_ISO } from '../../../src/core/storage/iso.js';
import { PACKAGES, type Distro } from '../../../src/core/host/host-packages.js';
import { resolveConfig } from '../../../src/config.js';
import { VmsError } from '../../../src/errors.js';
import type { RunResult, Runner } from '../../../src/runner.js';
import { FakeRunner, type Expected } from '../../helpers/fake-runner.js';
import { RecordingRunner } from '../../helpers/recording-runner.js';

// ---- recorded host files -----------------------------------------------------------------------------------------

const OS_RELEASE = {
  arch: [
    'NAME="Arch Linux"',
    'PRETTY_NAME="Arch Linux"',
    'ID=arch',
    'BUILD_ID=rolling',
    'ANSI_COLOR="38;2;23;147;209"',
    'HOME_URL="https://archlinux.org/"',
    'DOCUMENTATION_URL="https://wiki.archlinux.org/"',
    'SUPPORT_URL="https://bbs.archlinux.org/"',
    'BUG_REPORT_URL="https://gitlab.archlinux.org/groups/archlinux/-/issues"',
    'PRIVACY_POLICY_URL="https://terms.archlinux.org/docs/privacy-policy/"',
    'LOGO=archlinux-logo',
  ],
  debian12: [
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"',
    'NAME="Debian GNU/Linux"',
    'VERSION_ID="12"',
    'VERSION="12 (bookworm)"',
    'VERSION_CODENAME=bookworm',
    'ID=debian',
    'HOME_URL="https://www.debian.org/"',
    'SUPPORT_URL="https://www.debian.org/support"',
    'BUG_REPORT_URL="https://bugs.debian.org/"',
  ],
  ubuntu2404: [
    'PRETTY_NAME="Ubuntu 24.04.1 LTS"',
    'NAME="Ubuntu"',
    'VERSION_ID="24.04"',
    'VERSION="24.04.1 LTS (Noble Numbat)"',
    'VERSION_CODENAME=noble',
    'ID=ubuntu',
    'ID_LIKE=debian',
    'HOME_URL="https://www.ubuntu.com/"',
    'SUPPORT_URL="https://help.ubuntu.com/"',
    'BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"',
    'PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"',
    'UBUNTU_CODENAME=noble',
    'LOGO=ubuntu-logo',
  ],
  fedora40: [
    'NAME="Fedora Linux"',
    'VERSION="40 (Workstation Edition)"',
    'ID=fedora',
    'VERSION_ID=40',
    'VERSION_CODENAME=""',
    'PLATFORM_ID="platform:f40"',
    'PRETTY_NAME="Fedora Linux 40 (Workstation Edition)"',
    'ANSI_COLOR="0;38;2;60;110;180"',
    'LOGO=fedora-logo-icon',
    'CPE_NAME="cpe:/o:fedoraproject:fedora:40"',
    'DEFAULT_HOSTNAME="fedora"',
    'HOME_URL="https://fedoraproject.org/"',
    'SUPPORT_URL="https://ask.fedoraproject.org/"',
    'BUG_REPORT_URL="https://bugzilla.redhat.com/"',
    'REDHAT_SUPPORT_PRODUCT="Fedora"',
    'REDHAT_SUPPORT_PRODUCT_VERSION=40',
    'SUPPORT_END=2025-05-13',
    'VARIANT="Workstation Edition"',
    'VARIANT_ID=workstation',
  ],
};

/** The fake libvirt group's gid: our own, so the directories this test creates belong to it without chgrp. */
const GID = process.getgid!();

const groupFile = (...extra: string[]) =>
  ['root:x:0:', 'sudo:x:27:alice', 'kvm:x:993:', ...extra, 'alice:x:1000:', 'bob:x:1001:', 'carol:x:1002:', ''].join(
    '\n',
  );

// ---- recorded tool answers ---------------------------------------------------------------------------------------

const result = (stdout: string, exitCode = 0, stderr = ''): RunResult => ({ stdout, stderr, exitCode });

const VIRSH = ['-c', 'qemu:///system'];
const VERSION_OK = result(
  'Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\nUsing API: QEMU 9.0.0\nRunning hypervisor: QEMU 7.2.22\n\n',
);
const NO_DAEMON = result(
  '',
  1,
  "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory\n",
);
const netInfo = (active: 'yes' | 'no', autostart: 'yes' | 'no') =>
  result(
    `Name:           default\nUUID:           e16f7db7-5806-43ef-acf9-cfe2c8a99c93\nActive:         ${active}\nPersistent:     yes\nAutostart:      ${autostart}\nBridge:         virbr0\n\n`,
  );
const NO_NETWORK = result(
  '',
  1,
  "error: failed to get network 'default'\nerror: Network not found: no network with matching name 'default'\n",
);

const dpkgQuery = (lines: string[], notFound: string[]) =>
  result(
    lines.map((l) => `${l} \n`).join(''),
    notFound.length ? 1 : 0,
    notFound.map((p) => `dpkg-query: no packages found matching ${p}\n`).join(''),
  );
const rpmQuery = (lines: string[]) =>
  result(lines.map((l) => `${l}\n`).join(''), lines.filter((l) => l.startsWith('package ')).length);
const notInstalled = (p: string) => `package ${p} is not installed`;

/** The calls readHostState makes, in order; apt-cache only on Debian and only when the host lacks a virtiofsd. */
function hostCalls(
  distro: Distro,
  packages: RunResult,
  version: RunResult,
  net?: RunResult,
  aptPolicy = result(''),
  virtiofsd = false,
): Expected[] {
  const pkgs = PACKAGES[distro];
  const query: Record<Distro, string[]> = {
    arch: ['pacman', '-T', ...pkgs],
    debian: ['dpkg-query', '-W', '-f=${Package} ${db:Status-Abbrev}\\n', ...pkgs],
    fedora: ['rpm', '-q', ...pkgs],
  };
  return [
    { cmd: query[distro][0]!, args: query[distro].slice(1), result: packages },
    { cmd: 'virsh', args: [...VIRSH, 'version'], result: version },
    ...(net ? [{ cmd: 'virsh', args: [...VIRSH, 'net-info', 'default'], result: net }] : []),
    ...(distro === 'debian' && !virtiofsd
      ? [{ cmd: 'apt-cache', args: ['policy', 'virtiofsd'], result: aptPolicy }]
      : []),
  ];
}

// ---- a host to read ----------------------------------------------------------------------------------------------

const tmp = mkdtempSync(join(tmpdir(), 'vms-bootstrap-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let hosts = 0;

interface Host {
  osRelease: string[];
  group: string;
  comm: string;
  env: NodeJS.ProcessEnv;
  uid: number;
  calls: Expected[];
  /** Wraps the fake runner (a host without virsh at all). */
  runner?: (fake: FakeRunner) => Runner;
  /** Prepares the four directories (images, iso, state, cache) before the read. */
  prepare?: (dirs: string[]) => void;
  /** A virtiofsd binary is installed (default: none). */
  virtiofsd?: boolean;
  /** /run/virtlogd.pid names this pid, alive or not (default: no pid file). */
  virtlogd?: { pid: number; alive: boolean };
}

/** The directory vms can use: our group (the fake libvirt gid), setgid and group-writable. */
function readyDir(path: string, mode = 0o2775): void {
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
}

/** Reads the recorded host (by default with readHostState alone; `how` may read it another way, e.g. planHost). */
async function read(
  host: Host,
  how: (ctx: Context, facts: HostFacts) => Promise<HostState> = readHostState,
): Promise<{ state: HostState; dirs: string[] }> {
  const base = join(tmp, `host${++hosts}`);
  const dirs = ['images', 'iso', 'state', 'cache'].map((d) => join(base, d));
  mkdirSync(base);
  host.prepare?.(dirs);
  const config = resolveConfig({
    env: { VMS_IMAGES_DIR: dirs[0], VMS_ISO_DIR: dirs[1], VMS_STATE_DIR: dirs[2], VMS_CACHE_DIR: dirs[3] },
  });
  const fake = new RecordingRunner(host.calls);
  const { signal } = new AbortController();
  // Who runs it: the recorded host's user and environment (the rest of this process's facts do not matter here).
  const caller = { ...processHost(), uid: host.uid, env: host.env };
  const ctx = createContext({ config, runner: host.runner ? host.runner(fake) : fake, host: caller, signal });
  const files: Record<string, string> = {
    '/etc/os-release': host.osRelease.join('\n') + '\n',
    '/etc/group': host.group,
    '/proc/1/comm': host.comm,
  };
  if (host.virtlogd) files['/run/virtlogd.pid'] = `${host.virtlogd.pid}\n`;
  const facts = {
    read: (path: string) => {
      if (path === '/run/virtlogd.pid' && !host.virtlogd) throw new Error('ENOENT: no pid file');
      assert.ok(path in files, `unexpected read of ${path}`);
      return files[path]!;
    },
    alive: (pid: number) => {
      assert.equal(pid, host.virtlogd?.pid, 'only the pid of the pid file is asked about');
      return host.virtlogd!.alive;
    },
    virtiofsd: (path: string | undefined) => {
      assert.equal(path, host.env.PATH, "virtiofsd is looked for on the caller's PATH");
      return host.virtiofsd ?? false;
    },
  };
  const state = await how(ctx, facts);
  fake.done();
  for (const call of fake.log) assert.equal(call.opts?.signal, signal, `${call.cmd} is interruptible`);
  return { state, dirs };
}

describe('readHostState on recorded hosts', () => {
  test('Arch, fresh, as a user: pacman -T names the missing, no libvirt group, libvirtd not answering', async () => {
    const { state, dirs } = await read({
      osRelease: OS_RELEASE.arch,
      // libvirt-qemu is another group: its members are not in libvirt
      group: groupFile('libvirt-qemu:x:64055:libvirt-qemu,alice'),
      comm: 'systemd\n',
      env: { USER: 'alice', HOME: '/home/alice' },
      uid: 1000,
      calls: hostCalls(
        'arch',
        result('qemu-desktop\nlibvirt\nvirt-install\nvirt-viewer\ndnsmasq\nedk2-ovmf\nvirtiofsd\n', 127),
        NO_DAEMON,
      ),
      // ready in every way but the group: there is no libvirt group yet
      prepare: (d) => readyDir(d[0]!),
    });
    assert.deepEqual(state, {
      distro: 'arch',
      root: false,
      user: 'alice',
      userInGroup: false,
      missing: ['qemu-desktop', 'libvirt', 'virt-install', 'virt-viewer', 'dnsmasq', 'edk2-ovmf', 'virtiofsd'],
      unavailable: [],
      virtiofsd: false,
      systemd: true,
      libvirtdRunning: false,
      virtlogdRunning: false,
      dirs: dirs.map((path) => ({ path, ok: false })),
      network: 'unknown',
      networkAutostart: false,
      isoPresent: false,
    });
  });

  test('Debian 12 under sudo, ready: SUDO_USER is the user, in the group; dirs, network and ISO ready', async () => {
    const { state, dirs } = await read({
      osRelease: OS_RELEASE.debian12,
      group: groupFile('libvirt-qemu:x:64055:libvirt-qemu', `libvirt:x:${GID}:bob,alice`),
      comm: 'systemd\n',
      env: { SUDO_USER: 'alice', USER: 'root', HOME: '/root' },
      uid: 0,
      calls: hostCalls(
        'debian',
        // Debian 12 has no virtiofsd package: QEMU's own brings the binary
        dpkgQuery(
          [
            'dnsmasq-base ii',
            'libvirt-clients ii',
            'libvirt-daemon-system ii',
            'openssh-client ii',
            'ovmf ii',
            'qemu-system-x86 ii',
            'qemu-utils ii',
            'virt-viewer ii',
            'virtinst ii',
            'xorriso ii',
          ],
          ['virtiofsd'],
        ),
        VERSION_OK,
        netInfo('yes', 'yes'),
        result(''), // apt-cache policy of a package this release does not know: nothing at all
      ),
      prepare: (d) => {
        for (const dir of d) readyDir(dir);
        writeFileSync(join(d[1]!, ARCH_ISO), '');
      },
    });
    assert.deepEqual(state, {
      distro: 'debian',
      root: true,
      user: 'alice',
      userInGroup: true,
      missing: ['virtiofsd'],
      unavailable: ['virtiofsd'],
      virtiofsd: false,
      systemd: true,
      libvirtdRunning: true,
      virtlogdRunning: false,
      dirs: dirs.map((path) => ({ path, ok: true })),
      network: 'active',
      networkAutostart: true,
      isoPresent: true,
    });
    // a second run on this host changes nothing
    const steps = planBootstrap(state, { network: true }, '/usr/share/libvirt/networks/default.xml');
    assert.deepEqual(
      steps.filter((s) => s.commands.length),
      [],
    );
  });

  test('facts of the machine: a virtiofsd binary spares the apt-cache question; virtlogd runs when its pid lives', async () => {
    const debian = (over: Pick<Host, 'virtiofsd' | 'virtlogd'>) =>
      read({
        osRelease: OS_RELEASE.debian12,
        group: groupFile(`libvirt:x:${GID}:alice`),
        comm: 'systemd\n',
        env: { USER: 'alice', PATH: '/usr/local/bin:/usr/bin' },
        uid: 1000,
        calls: hostCalls('debian', dpkgQuery([], PACKAGES.debian), NO_DAEMON, undefined, result(''), over.virtiofsd),
        ...over,
      });
    const pick = ({ state }: { state: HostState }) => [state.virtiofsd, state.unavailable, state.virtlogdRunning];
    assert.deepEqual(pick(await debian({ virtiofsd: true, virtlogd: { pid: 4242, alive: true } })), [true, [], true]);
    assert.deepEqual(pick(await debian({ virtiofsd: false, virtlogd: { pid: 4242, alive: false } })), [
      false,
      ['virtiofsd'],
      false,
    ]);
    assert.deepEqual(pick(await debian({ virtiofsd: false, virtlogd: { pid: 0, alive: true } })), [
      false,
      ['virtiofsd'],
      false,
    ]);
  });

  test('Ubuntu 24.04 as root for root, no systemd: no user; network defined but stopped; only proper dirs are ready', async () => {
    for (const env of [{ USER: 'root' }, { SUDO_USER: 'root', USER: 'root' }]) {
      const { state, dirs } = await read({
        osRelease: OS_RELEASE.ubuntu2404,
        group: groupFile(`libvirt:x:${GID}:alice`),
        comm: 'sh\n',
        env,
        uid: 0,
        calls: hostCalls(
          'debian',
          dpkgQuery(
            [
              'dnsmasq-base un',
              'libvirt-clients ii',
              'libvirt-daemon-system ii',
              'openssh-client ii',
              'ovmf ii',
              'qemu-system-x86 ii',
              'qemu-utils ii',
              'virt-viewer ii',
              'virtinst ii',
              'virtiofsd un',
              'xorriso ii',
            ],
            [],
          ),
          VERSION_OK,
          netInfo('no', 'no'),
          result(
            'virtiofsd:\n  Installed: (none)\n  Candidate: 1.10.1-1\n  Version table:\n     1.10.1-1 500\n        500 http://archive.ubuntu.com/ubuntu noble/main amd64 Packages\n',
          ),
        ),
        prepare: (d) => {
          readyDir(d[0]!);
          readyDir(d[1]!, 0o755); // not group-writable, not setgid
          writeFileSync(d[2]!, ''); // a file, not a directory
          chmodSync(d[2]!, 0o2775);
        },
      });
      assert.equal(state.distro, 'debian');
      assert.equal(state.root, true);
      assert.equal(state.user, undefined, JSON.stringify(env));
      assert.equal(state.userInGroup, false);
      assert.deepEqual(state.missing, ['dnsmasq-base', 'virtiofsd']);
      assert.deepEqual(state.unavailable, [], 'Ubuntu has a virtiofsd candidate');
      assert.equal(state.systemd, false);
      assert.equal(state.libvirtdRunning, true);
      assert.equal(state.network, 'inactive');
      assert.equal(state.networkAutostart, false);
      assert.deepEqual(state.dirs, [
        { path: dirs[0], ok: true },
        { path: dirs[1], ok: false },
        { path: dirs[2], ok: false },
        { path: dirs[3], ok: false },
      ]);
      assert.equal(state.isoPresent, false);
    }
  });

  test('Fedora 40 as a member: rpm -q names the missing; the default network undefined; a dir of another group is not ready', async () => {
    const { state, dirs } = await read({
      osRelease: OS_RELEASE.fedora40,
      group: groupFile(`libvirt:x:${GID + 1}:carol`),
      comm: 'systemd\n',
      env: { USER: 'carol', HOME: '/home/carol' },
      uid: 1002,
      calls: hostCalls(
        'fedora',
        rpmQuery([
          'qemu-kvm-8.2.2-1.fc40.x86_64',
          'qemu-img-8.2.2-1.fc40.x86_64',
          'libvirt-10.1.0-1.fc40.x86_64',
          notInstalled('virt-install'),
          'virt-viewer-11.0-11.fc40.x86_64',
          'dnsmasq-2.90-1.fc40.x86_64',
          'edk2-ovmf-20240214-3.fc40.noarch',
          notInstalled('virtiofsd'),
          notInstalled('xorriso'),
          'openssh-clients-9.6p1-1.fc40.4.x86_64',
        ]),
        VERSION_OK,
        NO_NETWORK,
      ),
      prepare: (d) => readyDir(d[0]!),
    });
    assert.equal(state.distro, 'fedora');
    assert.equal(state.root, false);
    assert.equal(state.user, 'carol');
    assert.equal(state.userInGroup, true);
    assert.deepEqual(state.missing, ['virt-install', 'virtiofsd', 'xorriso']);
    assert.deepEqual(state.unavailable, [], 'only Debian asks apt-cache');
    assert.equal(state.systemd, true);
    assert.equal(state.libvirtdRunning, true);
    assert.equal(state.network, 'undefined');
    assert.equal(state.networkAutostart, false);
    assert.deepEqual(
      state.dirs.map((d) => d.ok),
      [false, false, false, false],
      `libvirt is gid ${GID + 1}; ${dirs[0]} is ${GID}`,
    );
  });

  test('Fedora 40 in a container, fresh, no virsh at all: no systemd, not running; the group line without the user', async () => {
    const { state } = await read({
      osRelease: OS_RELEASE.fedora40,
      group: groupFile(`libvirt:x:${GID}:`),
      comm: 'bash\n', // a container's shell as PID 1
      env: { SUDO_USER: 'bob', USER: 'carol' },
      uid: 1002,
      calls: hostCalls('fedora', rpmQuery(PACKAGES.fedora.map(notInstalled)), result('')),
      // what ExecaRunner does for a command that is not installed
      runner: (fake) => ({
        run: async (cmd, args, opts) => {
          const r = await fake.run(cmd, args, opts);
          if (cmd === 'virsh') throw new VmsError('missingTool', 'virsh is not installed');
          return r;
        },
        interactive: (cmd, args) => fake.interactive(cmd, args),
      }),
    });
    assert.equal(state.user, 'bob', 'SUDO_USER before USER');
    assert.equal(state.userInGroup, false);
    assert.equal(state.systemd, false);
    assert.deepEqual(state.missing, PACKAGES.fedora);
    assert.equal(state.libvirtdRunning, false);
    assert.equal(state.network, 'unknown');
  });
});

describe('planHost and the facts of this machine', () => {
  test("planHost reads the host as a step of its own, then plans with libvirt's network file", async () => {
    let plan: BootstrapStep[] = [];
    const recorded = recordingProgress();
    const { state } = await read(
      {
        osRelease: OS_RELEASE.arch,
        group: groupFile(),
        comm: 'systemd\n',
        env: { USER: 'alice' },
        uid: 1000,
        calls: hostCalls('arch', result('libvirt\n', 127), NO_DAEMON),
      },
      async (ctx, facts) => {
        const planned = await planHost({ ...ctx, progress: recorded.progress }, { network: false }, facts);
        plan = planned.steps;
        return planned.state;
      },
    );
    assert.deepEqual(recorded.steps, ['Reading the host']);
    assert.equal(state.distro, 'arch');
    assert.deepEqual(plan, planBootstrap(state, { network: false }, defaultNetworkXmlPath()));
  });

  test('this machine: a file is read as text; virtiofsd is looked for on PATH too', () => {
    const file = join(tmp, 'facts.txt');
    writeFileSync(file, 'ID=arch\n');
    assert.equal(thisMachine.read(file), 'ID=arch\n');
    assert.throws(() => thisMachine.read(join(tmp, 'none')), { code: 'ENOENT' });
    assert.equal(thisMachine.alive(process.pid), true);
    const bin = join(tmp, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'virtiofsd'), '', { mode: 0o755 });
    assert.equal(thisMachine.virtiofsd(bin), true);
  });
});

// ---- planBootstrap: the --dry-run plan -----------------------------------------------------------------------------

const XML = '/usr/share/libvirt/networks/default.xml';
const DIRS = ['/var/lib/libvirt/images', '/var/lib/libvirt/iso', '/var/lib/vms', '/var/cache/vms'];
const ON = { network: true };

function fresh(distro: Distro, over: Partial<HostState> = {}): HostState {
  return {
    distro,
    root: false,
    user: 'alice',
    userInGroup: false,
    missing: [...PACKAGES[distro]],
    unavailable: [],
    virtiofsd: false,
    systemd: true,
    libvirtdRunning: false,
    virtlogdRunning: false,
    dirs: DIRS.map((path) => ({ path, ok: false })),
    network: 'undefined',
    networkAutostart: false,
    isoPresent: false,
    ...over,
  };
}

function ready(distro: Distro, over: Partial<HostState> = {}): HostState {
  return fresh(distro, {
    userInGroup: true,
    missing: [],
    libvirtdRunning: true,
    virtlogdRunning: true,
    dirs: DIRS.map((path) => ({ path, ok: true })),
    network: 'active',
    networkAutostart: true,
    isoPresent: true,
    ...over,
  });
}

const step = (steps: BootstrapStep[], name: BootstrapStep['name']) => {
  const s = steps.find((x) => x.name === name);
  assert.ok(s, `no ${name} step`);
  return s;
};
const virsh = (...args: string[]) => ['sudo', 'virsh', '-c', 'qemu:///system', ...args];

/** The steps every fresh plan shares after its packages and daemons. */
const FRESH_TAIL: BootstrapStep[] = [
  {
    name: 'group',
    summary: 'add alice to the libvirt group',
    commands: [['sudo', 'usermod', '-aG', 'libvirt', 'alice']],
    after: 'alice must log out and in again (or run `newgrp libvirt`) for the group to count',
  },
  {
    name: 'dirs',
    summary: `create ${DIRS.join(', ')} for the libvirt group, reachable by the qemu user`,
    commands: [
      ['sudo', 'mkdir', '-p', ...DIRS],
      ['sudo', 'chgrp', 'libvirt', ...DIRS],
      ['sudo', 'chmod', '2775', ...DIRS],
    ],
  },
  {
    name: 'network',
    summary: 'define the default NAT network',
    commands: [virsh('net-define', XML), virsh('net-autostart', 'default'), virsh('net-start', 'default')],
  },
  { name: 'iso', summary: 'no Arch ISO yet', commands: [], after: '`vms iso fetch` downloads and verifies it' },
];

describe('planBootstrap on a fresh host', () => {
  test('Arch: pacman -S --needed --noconfirm, libvirtd.service', () => {
    const pkgs = [
      'qemu-desktop',
      'libvirt',
      'virt-install',
      'virt-viewer',
      'dnsmasq',
      'edk2-ovmf',
      'virtiofsd',
      'libisoburn',
      'openssh',
    ];
    assert.deepEqual(planBootstrap(fresh('arch'), ON, XML), [
      {
        name: 'packages',
        summary: `install ${pkgs.join(', ')}`,
        commands: [['sudo', 'pacman', '-S', '--needed', '--noconfirm', ...pkgs]],
      },
      {
        name: 'daemons',
        summary: 'enable and start libvirt (systemd)',
        commands: [['sudo', 'systemctl', 'enable', '--now', 'libvirtd.service', 'virtlogd.socket']],
      },
      ...FRESH_TAIL,
    ]);
  });

  test('Debian: apt-get update, then install --no-install-recommends; virtiofsd too when there is none', () => {
    const pkgs = [
      'qemu-system-x86',
      'qemu-utils',
      'libvirt-daemon-system',
      'libvirt-clients',
      'virtinst',
      'virt-viewer',
      'dnsmasq-base',
      'ovmf',
      'virtiofsd',
      'xorriso',
      'openssh-client',
    ];
    assert.deepEqual(planBootstrap(fresh('debian'), ON, XML), [
      {
        name: 'packages',
        summary: `install ${pkgs.join(', ')}`,
        commands: [
          ['sudo', 'apt-get', 'update', '-q'],
          ['sudo', 'apt-get', 'install', '-y', '-q', '--no-install-recommends', ...pkgs],
        ],
      },
      {
        name: 'daemons',
        summary: 'enable and start libvirt (systemd)',
        commands: [['sudo', 'systemctl', 'enable', '--now', 'libvirtd.service', 'virtlogd.socket']],
      },
      ...FRESH_TAIL,
    ]);
  });

  test("Fedora: dnf install -y, libvirt's modular daemons", () => {
    const pkgs = [
      'qemu-kvm',
      'qemu-img',
      'libvirt',
      'virt-install',
      'virt-viewer',
      'dnsmasq',
      'edk2-ovmf',
      'virtiofsd',
      'xorriso',
      'openssh-clients',
    ];
    assert.deepEqual(planBootstrap(fresh('fedora'), ON, XML), [
      {
        name: 'packages',
        summary: `install ${pkgs.join(', ')}`,
        commands: [['sudo', 'dnf', 'install', '-y', ...pkgs]],
      },
      {
        name: 'daemons',
        summary: 'enable and start libvirt (systemd)',
        commands: [
          [
            'sudo',
            'systemctl',
            'enable',
            '--now',
            'virtqemud.socket',
            'virtnetworkd.socket',
            'virtstoraged.socket',
            'virtlogd.socket',
          ],
        ],
      },
      ...FRESH_TAIL,
    ]);
  });

  test('as root: the same commands with no sudo; with a user: sudo on every one', () => {
    for (const distro of ['arch', 'debian', 'fedora'] as const) {
      const withSudo = planBootstrap(fresh(distro), ON, XML).flatMap((s) => s.commands);
      const asRoot = planBootstrap(fresh(distro, { root: true }), ON, XML).flatMap((s) => s.commands);
      assert.ok(withSudo.length >= 9, distro);
      assert.ok(
        withSudo.every((c) => c[0] === 'sudo'),
        distro,
      );
      assert.ok(
        asRoot.every((c) => !c.includes('sudo')),
        distro,
      );
      assert.deepEqual(
        asRoot,
        withSudo.map((c) => c.slice(1)),
        distro,
      );
    }
  });
});

describe('planBootstrap, step by step', () => {
  test('no systemd: virtlogd -d only when virtlogd is not running, then libvirtd -d', () => {
    for (const distro of ['arch', 'debian', 'fedora'] as const) {
      const daemons = (virtlogdRunning: boolean) =>
        step(planBootstrap(fresh(distro, { systemd: false, virtlogdRunning, root: true }), ON, XML), 'daemons');
      assert.deepEqual(
        daemons(false),
        {
          name: 'daemons',
          summary: 'start virtlogd and libvirtd (no systemd here)',
          commands: [
            ['virtlogd', '-d'],
            ['libvirtd', '-d'],
          ],
        },
        distro,
      );
      assert.deepEqual(daemons(true).commands, [['libvirtd', '-d']], distro);
    }
    assert.deepEqual(step(planBootstrap(fresh('debian', { systemd: false }), ON, XML), 'daemons').commands, [
      ['sudo', 'virtlogd', '-d'],
      ['sudo', 'libvirtd', '-d'],
    ]);
  });

  test('systemd: the units are enabled whether or not virtlogd runs', () => {
    const daemons = step(planBootstrap(fresh('arch', { virtlogdRunning: true }), ON, XML), 'daemons');
    assert.deepEqual(daemons.commands, [
      ['sudo', 'systemctl', 'enable', '--now', 'libvirtd.service', 'virtlogd.socket'],
    ]);
  });

  test('group: nothing to join for root, nothing to do for a member', () => {
    assert.deepEqual(step(planBootstrap(fresh('arch', { root: true, user: undefined }), ON, XML), 'group'), {
      name: 'group',
      summary: 'running as root for root: no group to join',
      commands: [],
    });
    assert.deepEqual(step(planBootstrap(fresh('arch', { userInGroup: true }), ON, XML), 'group'), {
      name: 'group',
      summary: 'alice is in the libvirt group',
      commands: [],
    });
    assert.deepEqual(step(planBootstrap(fresh('fedora', { root: true, user: 'bob' }), ON, XML), 'group'), {
      name: 'group',
      summary: 'add bob to the libvirt group',
      commands: [['usermod', '-aG', 'libvirt', 'bob']],
      after: 'bob must log out and in again (or run `newgrp libvirt`) for the group to count',
    });
  });

  test('dirs: exactly the ones not ready', () => {
    const dirs = DIRS.map((path, i) => ({ path, ok: i % 2 === 0 }));
    assert.deepEqual(step(planBootstrap(fresh('debian', { dirs }), ON, XML), 'dirs'), {
      name: 'dirs',
      summary: `create ${DIRS[1]}, ${DIRS[3]} for the libvirt group, reachable by the qemu user`,
      commands: [
        ['sudo', 'mkdir', '-p', DIRS[1], DIRS[3]],
        ['sudo', 'chgrp', 'libvirt', DIRS[1], DIRS[3]],
        ['sudo', 'chmod', '2775', DIRS[1], DIRS[3]],
      ],
    });
  });

  test('network: define, autostart and start what is missing; --no-network never starts it', () => {
    const cases: [Pick<HostState, 'network' | 'networkAutostart'>, boolean, string, string[][]][] = [
      [
        { network: 'undefined', networkAutostart: false },
        false,
        'define the default NAT network (not started: --no-network)',
        [virsh('net-define', XML), virsh('net-autostart', 'default')],
      ],
      // libvirtd did not answer: the definition is planned, and skipped at run time when the network exists
      [
        { network: 'unknown', networkAutostart: false },
        true,
        'define (unless it exists) the default NAT network',
        [virsh('net-define', XML), virsh('net-autostart', 'default'), virsh('net-start', 'default')],
      ],
      [
        { network: 'inactive', networkAutostart: true },
        true,
        'set up the default NAT network',
        [virsh('net-start', 'default')],
      ],
      [
        { network: 'inactive', networkAutostart: false },
        true,
        'set up the default NAT network',
        [virsh('net-autostart', 'default'), virsh('net-start', 'default')],
      ],
      [
        { network: 'inactive', networkAutostart: false },
        false,
        'set up the default NAT network (not started: --no-network)',
        [virsh('net-autostart', 'default')],
      ],
      [
        { network: 'inactive', networkAutostart: true },
        false,
        'the default network is defined (not started: --no-network)',
        [],
      ],
      [
        { network: 'active', networkAutostart: false },
        true,
        'set up the default NAT network',
        [virsh('net-autostart', 'default')],
      ],
      [{ network: 'active', networkAutostart: true }, false, 'the default network is active', []],
    ];
    for (const [net, network, summary, commands] of cases) {
      assert.deepEqual(
        step(planBootstrap(ready('arch', net), { network }, XML), 'network'),
        { name: 'network', summary, commands },
        `${JSON.stringify(net)} network=${network}`,
      );
    }
  });

  test("Debian's optional virtiofsd: not installed when a binary is found or apt has none", () => {
    const packages = (over: Partial<HostState>) =>
      step(planBootstrap(ready('debian', { missing: ['ovmf', 'virtiofsd'], ...over }), ON, XML), 'packages').commands;
    const install = (...pkgs: string[]) => [
      ['sudo', 'apt-get', 'update', '-q'],
      ['sudo', 'apt-get', 'install', '-y', '-q', '--no-install-recommends', ...pkgs],
    ];
    assert.deepEqual(packages({ virtiofsd: true }), install('ovmf'), 'found: QEMU brings it');
    assert.deepEqual(packages({ unavailable: ['virtiofsd'] }), install('ovmf'), 'Debian 12: no such package');
    assert.deepEqual(packages({}), install('ovmf', 'virtiofsd'), 'not found, and apt has it');
    const alone = step(
      planBootstrap(ready('debian', { missing: ['virtiofsd'], virtiofsd: true }), ON, XML),
      'packages',
    );
    assert.deepEqual(alone, { name: 'packages', summary: 'the packages vms needs are installed', commands: [] });
    // elsewhere virtiofsd is a package like any other
    assert.deepEqual(
      step(planBootstrap(ready('arch', { missing: ['virtiofsd'], virtiofsd: true }), ON, XML), 'packages').commands,
      [['sudo', 'pacman', '-S', '--needed', '--noconfirm', 'virtiofsd']],
    );
  });
});

describe('planBootstrap on a ready host: a second run changes nothing', () => {
  test('every step has nothing to do, and says so', () => {
    for (const distro of ['arch', 'debian', 'fedora'] as const) {
      for (const over of [{}, { root: true }, { systemd: false, virtlogdRunning: false }]) {
        assert.deepEqual(
          planBootstrap(ready(distro, over), ON, XML),
          [
            { name: 'packages', summary: 'the packages vms needs are installed', commands: [] },
            { name: 'daemons', summary: 'libvirtd is running: left alone', commands: [] },
            { name: 'group', summary: 'alice is in the libvirt group', commands: [] },
            { name: 'dirs', summary: `${DIRS.join(', ')} are ready`, commands: [] },
            { name: 'network', summary: 'the default network is active', commands: [] },
            { name: 'iso', summary: 'the Arch ISO is there', commands: [] },
          ],
          `${distro} ${JSON.stringify(over)}`,
        );
      }
    }
  });
});
