import assert from 'node:assert/strict';
import { mkdirSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { doctor, thisHost, type CheckResult, type DoctorFacts } from '../../../src/core/host/doctor.js';
import type { Host } from '../../../src/core/context.js';
import { ARCH_ISO } from '../../../src/core/storage/iso.js';
import { journalsDir, processStart } from '../../../src/core/ops/journal.js';
import type { RunOptions, RunResult } from '../../../src/runner.js';
import type { Expected } from '../../helpers/fake-runner.js';
import { RecordingRunner } from '../../helpers/recording-runner.js';
import { contextOn, URI, virshCall } from '../../helpers/virsh-fake.js';

// `vms doctor` on recorded hosts: libvirt and QEMU through the strict fake runner, the machine's files and devices
// through DoctorFacts, vms' journals in a real state dir.

const GiB = 2 ** 30;
const DAY = 24 * 3600 * 1000;
const NOW = Date.parse('2026-12-01T12:00:00Z');
const IMAGES = '/srv/vms/images';
const ISO = join('/srv/vms/iso', ARCH_ISO);
const APPARMOR = '/sys/module/apparmor/parameters/enabled';
const SELINUX = '/sys/fs/selinux/enforce';
const TCG = 'guests run under TCG emulation, many times slower';

/** virsh capabilities: an x86_64 guest (KVM offered or only TCG) and the DAC label QEMU runs under. */
const capabilities = ({ kvm = true, label = '+0:+0' } = {}) =>
  [
    '<capabilities>',
    '  <host>',
    "    <secmodel><model>dac</model><doi>0</doi><baselabel type='kvm'>" + label + '</baselabel></secmodel>',
    '  </host>',
    '  <guest>',
    '    <os_type>hvm</os_type>',
    "    <arch name='x86_64'>",
    "      <domain type='qemu'/>",
    kvm ? "      <domain type='kvm'/>" : '',
    '    </arch>',
    '  </guest>',
    '</capabilities>',
  ].join('\n');
const EFI = [
  '<domainCapabilities>',
  "  <os supported='yes'>",
  "    <enum name='firmware'>",
  '      <value>bios</value>',
  '      <value>efi</value>',
  '    </enum>',
  '  </os>',
  '</domainCapabilities>',
].join('\n');

type Stat = ReturnType<DoctorFacts['stat']> & {};
const dirStat = (mode: number, uid = 0, gid = 0): Stat => ({ uid, gid, mode: 0o40000 | mode, mtimeMs: 0 });
/** The directories from / down to the images dir, all open to everyone. */
const OPEN_TREE: Record<string, Stat> = {
  '/': dirStat(0o755),
  '/srv': dirStat(0o755),
  '/srv/vms': dirStat(0o755),
  [IMAGES]: dirStat(0o2775),
};

interface Scene {
  /** virsh capabilities' answer; null: libvirtd does not answer. */
  caps?: string | null;
  /** virsh domcapabilities' answer; null: it fails. */
  domcaps?: string | null;
  /** /dev/kvm is there (default: yes). */
  kvm?: boolean;
  /** The KVM probe's answer (default: QEMU created a VM), or what the runner threw. */
  probe?: Partial<RunResult> | Error;
  /** net-info default's answer (default: active). */
  net?: Partial<RunResult>;
  files?: Record<string, string>;
  /** The paths that exist (default: the open tree and a fresh ISO). */
  stats?: Record<string, Stat>;
  virtiofsd?: string;
  free?: number;
  host?: Partial<Host>;
  now?: number;
  /** Before doctor runs: the context's state dir (journals). */
  prepare?: (stateDir: string) => void;
}

const NO_DAEMON: Partial<RunResult> = {
  exitCode: 1,
  stderr:
    "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory\n",
};
const netInfo = (active: 'yes' | 'no') => ({ stdout: `Name:           default\nActive:         ${active}\n` });
const PROBE = ['-accel', 'kvm', '-machine', 'none', '-nodefaults', '-display', 'none', '-monitor', 'stdio'];

/** A runner whose KVM probe throws (a timeout, QEMU not installed) once its call was checked. */
class ProbeThrows extends RecordingRunner {
  constructor(
    calls: Expected[],
    private readonly error: Error,
  ) {
    super(calls);
  }

  override async run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    const r = await super.run(cmd, args, opts);
    if (cmd === 'qemu-system-x86_64') throw this.error;
    return r;
  }
}

/** Runs doctor on the scene: every call checked in order, every fact asked for only of the paths doctor reads. */
async function run(scene: Scene = {}) {
  const caps = scene.caps === undefined ? capabilities() : scene.caps;
  const calls: Expected[] = [
    caps === null
      ? { cmd: 'virsh', args: ['-c', URI, 'capabilities'], result: NO_DAEMON }
      : virshCall(['capabilities'], caps),
    ...(caps === null
      ? []
      : [
          scene.domcaps === null
            ? virshCall(['domcapabilities', '--machine', 'q35', '--arch', 'x86_64'], '', {
                exitCode: 1,
                stderr: 'error: internal error\n',
              })
            : virshCall(['domcapabilities', '--machine', 'q35', '--arch', 'x86_64'], scene.domcaps ?? EFI),
        ]),
  ];
  if (scene.kvm ?? true) {
    const probe = scene.probe ?? { exitCode: 0 };
    calls.push({ cmd: 'qemu-system-x86_64', args: PROBE, result: probe instanceof Error ? undefined : probe });
  }
  if (caps !== null) calls.push(virshCall(['net-info', 'default'], '', scene.net ?? netInfo('yes')));
  const runner = scene.probe instanceof Error ? new ProbeThrows(calls, scene.probe) : new RecordingRunner(calls);
  const { ctx, dir } = contextOn(runner, { VMS_IMAGES_DIR: IMAGES, VMS_ISO_DIR: '/srv/vms/iso' });
  const host: Host = { ...ctx.host, uid: 0, user: 'root', groups: [0], env: { PATH: '/usr/bin' }, ...scene.host };
  const stateDir = join(dir, 'state');
  scene.prepare?.(stateDir);
  const files = scene.files ?? { '/etc/group': 'root:x:0:\nlibvirt:x:106:\n', [APPARMOR]: 'Y\n' };
  const stats = scene.stats ?? {
    ...OPEN_TREE,
    '/dev/kvm': dirStat(0o660),
    [ISO]: { ...dirStat(0o644), mtimeMs: NOW - 3 * DAY },
  };
  const freeAsked: string[] = [];
  const facts: DoctorFacts = {
    stat: (path) => {
      assert.ok(['/dev/kvm', ISO].includes(path) || path in OPEN_TREE, `unexpected stat of ${path}`);
      return stats[path];
    },
    read: (path) => {
      assert.ok(['/etc/group', APPARMOR, SELINUX].includes(path), `unexpected read of ${path}`);
      return files[path];
    },
    virtiofsd: (path) => {
      assert.equal(path, '/usr/bin', "looked for on the caller's PATH");
      return scene.virtiofsd === undefined ? '/usr/lib/qemu/virtiofsd' : scene.virtiofsd || undefined;
    },
    freeBytes: async (d) => {
      freeAsked.push(d);
      return scene.free ?? 50 * GiB;
    },
  };
  const results = await doctor({ ...ctx, host }, scene.now ?? NOW, facts);
  runner.done();
  const check = (name: string) => results.find((r) => r.check === name)!;
  return { results, check, runner, freeAsked };
}

const pass = (check: string, message: string): CheckResult => ({ check, status: 'pass', message });
const warn = (check: string, message: string, fix: string): CheckResult => ({ check, status: 'warn', message, fix });
const fail = (check: string, message: string, fix: string): CheckResult => ({ check, status: 'fail', message, fix });

describe('doctor on a ready host', () => {
  test('every check passes, in this order; the KVM probe quits QEMU at once, and may take 20 s', async () => {
    const { results, runner, freeAsked } = await run();
    assert.deepEqual(results, [
      pass('kvm', '/dev/kvm creates VMs and libvirt offers KVM'),
      pass('libvirt', `libvirtd answers at ${URI}`),
      pass('group', 'running as root'),
      pass('images', `${IMAGES} exists; qemu runs as root`),
      pass(
        'security',
        'AppArmor enabled, SELinux off (libvirt labels its files itself; disks outside the images dir may need labels)',
      ),
      pass('ovmf', 'UEFI firmware (OVMF) is available to libvirt'),
      pass('virtiofsd', 'virtiofsd found (/usr/lib/qemu/virtiofsd)'),
      pass('network', "libvirt's 'default' network is active"),
      pass('iso', 'Arch ISO present (3 days old)'),
      pass('space', `50G free in ${IMAGES}`),
      pass('interrupted', 'no vms command was left half-done'),
    ]);
    assert.deepEqual(runner.log.find((c) => c.cmd === 'qemu-system-x86_64')!.opts, {
      input: 'quit\n',
      timeoutMs: 20_000,
    });
    assert.deepEqual(freeAsked, [IMAGES]);
  });
});

describe('doctor: kvm', () => {
  test('no /dev/kvm: a warning, and QEMU is not asked', async () => {
    const { check } = await run({ kvm: false, stats: { ...OPEN_TREE } });
    assert.deepEqual(
      check('kvm'),
      warn(
        'kvm',
        `no /dev/kvm: ${TCG}`,
        'enable virtualization (VT-x/AMD-V) in the firmware and load kvm_intel or kvm_amd',
      ),
    );
  });

  test("/dev/kvm that cannot create a VM: QEMU's last line of error, else its exit status, else what the runner threw", async () => {
    const fix = 'check the permissions of /dev/kvm (group kvm) and that nothing else holds VT-x';
    const probeFails = async (probe: Partial<RunResult> | Error) => (await run({ probe })).check('kvm');
    const stderr = 'qemu-system-x86_64: warning: x\nqemu-system-x86_64: failed to initialize kvm: Permission denied\n';
    assert.deepEqual(
      await probeFails({ exitCode: 1, stderr }),
      warn(
        'kvm',
        `/dev/kvm cannot create a VM (qemu-system-x86_64: failed to initialize kvm: Permission denied): ${TCG}`,
        fix,
      ),
    );
    assert.deepEqual(
      await probeFails({ exitCode: 3, stderr: '\n' }),
      warn('kvm', `/dev/kvm cannot create a VM (exit status 3): ${TCG}`, fix),
    );
    assert.deepEqual(
      await probeFails(new Error('timed out after 20000 ms')),
      warn('kvm', `/dev/kvm cannot create a VM (timed out after 20000 ms): ${TCG}`, fix),
    );
  });

  test('KVM works but libvirt offers only TCG: restart libvirtd', async () => {
    const { check } = await run({ caps: capabilities({ kvm: false }) });
    assert.deepEqual(
      check('kvm'),
      warn(
        'kvm',
        `/dev/kvm works here, but libvirt at ${URI} offers only TCG: ${TCG}`,
        'restart libvirtd so it probes KVM again (it may have been started without /dev/kvm)',
      ),
    );
  });
});

describe('doctor: libvirt', () => {
  test('libvirtd not answering: a failure; what needs it is not checked; KVM and the images dir without it', async () => {
    const { results } = await run({ caps: null });
    const unchecked = (check: string) =>
      warn(check, 'not checked: libvirtd does not answer', 'fix the libvirt check first');
    assert.deepEqual(
      results.filter((r) => ['kvm', 'libvirt', 'images', 'ovmf', 'network'].includes(r.check)),
      [
        pass('kvm', '/dev/kvm creates VMs (whether libvirt uses it is not known: libvirtd does not answer)'),
        fail(
          'libvirt',
          `cannot reach libvirt at ${URI}: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory`,
          'start libvirtd: `sudo systemctl enable --now libvirtd` (`vms bootstrap` does it)',
        ),
        pass('images', `${IMAGES} exists`),
        unchecked('ovmf'),
        unchecked('network'),
      ],
    );
  });

  test('a failure that is not a VmsError is a bug: doctor throws it', async () => {
    const bug = new TypeError('a bug');
    const runner = new RecordingRunner([]);
    runner.run = async () => {
      throw bug;
    };
    const { ctx } = contextOn(runner);
    await assert.rejects(doctor(ctx, NOW, thisHost), (err) => err === bug);
  });

  test('domcapabilities failing: libvirt passes, OVMF is not found', async () => {
    const { check } = await run({ domcaps: null });
    assert.deepEqual(check('libvirt'), pass('libvirt', `libvirtd answers at ${URI}`));
    assert.deepEqual(
      check('ovmf'),
      warn(
        'ovmf',
        'no UEFI firmware (OVMF) found: --firmware efi will not work',
        'install it: pacman -S edk2-ovmf (Arch), apt install ovmf (Debian), dnf install edk2-ovmf (Fedora)',
      ),
    );
    assert.equal(
      (await run({ domcaps: "<enum name='firmware'><value>bios</value></enum>" })).check('ovmf').status,
      'warn',
    );
  });
});

describe('doctor: group, security module, virtiofsd', () => {
  test("the group check gets the session's uid, user, groups and /etc/group", async () => {
    const member = { uid: 1000, user: 'alice', groups: [1000, 106] };
    const withGroup = { '/etc/group': 'root:x:0:\nlibvirt:x:106:alice\n' };
    assert.deepEqual(
      (await run({ host: member, files: withGroup })).check('group'),
      pass('group', 'you are in the libvirt group'),
    );
    // bootstrap added alice in this login: /etc/group lists her, her session does not have the group yet
    assert.deepEqual(
      (await run({ host: { ...member, groups: [1000] }, files: withGroup })).check('group'),
      fail(
        'group',
        'alice is in the libvirt group, but this session started before that',
        'log out and in again (or, in this shell only: `newgrp libvirt`)',
      ),
    );
    assert.deepEqual(
      (await run({ host: member, files: {} })).check('group').message,
      'alice is not in the libvirt group (there is no libvirt group)',
    );
  });

  test('AppArmor and SELinux as the kernel reports them', async () => {
    const security = async (files: Record<string, string>) => (await run({ files })).check('security').message;
    const tail = ' (libvirt labels its files itself; disks outside the images dir may need labels)';
    assert.equal(await security({}), `AppArmor off, SELinux off${tail}`);
    assert.equal(await security({ [APPARMOR]: 'N\n', [SELINUX]: '1\n' }), `AppArmor off, SELinux enforcing${tail}`);
    assert.equal(
      await security({ [APPARMOR]: 'Y\n', [SELINUX]: '0\n' }),
      `AppArmor enabled, SELinux permissive${tail}`,
    );
  });

  test('no virtiofsd: a warning', async () => {
    assert.deepEqual(
      (await run({ virtiofsd: '' })).check('virtiofsd'),
      warn(
        'virtiofsd',
        'virtiofsd not found: no shared package cache or folders',
        'install it: pacman -S virtiofsd (Arch), apt install virtiofsd (Debian)',
      ),
    );
  });
});

describe('doctor: images dir', () => {
  test('missing: images and space fail, and free space is not measured', async () => {
    const { check, freeAsked } = await run({ stats: { '/dev/kvm': dirStat(0o660) } });
    assert.deepEqual(
      check('images'),
      fail(
        'images',
        `images dir ${IMAGES} does not exist`,
        `\`vms bootstrap\` creates it, or: sudo mkdir -p ${IMAGES}`,
      ),
    );
    assert.deepEqual(
      check('space'),
      fail('space', `cannot measure free space: ${IMAGES} does not exist`, '`vms bootstrap` creates it'),
    );
    assert.deepEqual(freeAsked, []);
  });

  /** The images check with QEMU running as uid 64055, gid 994, over this tree. */
  const images = async (tree: Record<string, Stat>, label = '+64055:+994') =>
    (await run({ caps: capabilities({ label }), stats: { ...tree, '/dev/kvm': dirStat(0o660) } })).check('images');
  const cannotEnter = (d: string) =>
    fail(
      'images',
      `the qemu user (uid 64055) cannot enter ${d}, so it cannot open disks in ${IMAGES}`,
      `sudo chmod o+x ${d}`,
    );

  test('QEMU as another user: every directory up to / needs x for it, as owner, group or other', async () => {
    const reachable = pass('images', `${IMAGES} is reachable by the qemu user (uid 64055)`);
    assert.deepEqual(await images(OPEN_TREE), reachable);
    assert.deepEqual(await images(OPEN_TREE, '64055:994'), reachable, 'a label without +');
    // owner and group bits count for the qemu user only when it owns the dir / is in its group
    assert.deepEqual(await images({ ...OPEN_TREE, [IMAGES]: dirStat(0o700, 64055, 0) }), reachable);
    assert.deepEqual(await images({ ...OPEN_TREE, [IMAGES]: dirStat(0o070, 0, 994) }), reachable);
    assert.deepEqual(await images({ ...OPEN_TREE, [IMAGES]: dirStat(0o771, 0, 0) }), reachable);
    assert.deepEqual(await images({ ...OPEN_TREE, [IMAGES]: dirStat(0o077, 64055, 994) }), cannotEnter(IMAGES));
    assert.deepEqual(await images({ ...OPEN_TREE, [IMAGES]: dirStat(0o707, 0, 994) }), cannotEnter(IMAGES));
    assert.deepEqual(await images({ ...OPEN_TREE, [IMAGES]: dirStat(0o776, 0, 0) }), cannotEnter(IMAGES));
    assert.deepEqual(await images({ ...OPEN_TREE, '/srv/vms': dirStat(0o750) }), cannotEnter('/srv/vms'));
    assert.deepEqual(await images({ ...OPEN_TREE, '/': dirStat(0o750) }), cannotEnter('/'));
  });

  test('QEMU as root: nothing to walk', async () => {
    assert.deepEqual(
      await images({ [IMAGES]: dirStat(0o700) }, '+0:+0'),
      pass('images', `${IMAGES} exists; qemu runs as root`),
    );
  });
});

describe('doctor: network, ISO, space', () => {
  test('the default network: defined but stopped, or not defined', async () => {
    assert.deepEqual(
      (await run({ net: netInfo('no') })).check('network'),
      warn(
        'network',
        "libvirt's 'default' network is defined but not active",
        'virsh net-start default && virsh net-autostart default',
      ),
    );
    assert.deepEqual(
      (
        await run({
          net: { exitCode: 1, stderr: "error: Network not found: no network with matching name 'default'\n" },
        })
      ).check('network'),
      warn(
        'network',
        "libvirt's 'default' network is not defined: --network default will not work",
        '`vms bootstrap` defines it; or use --network user',
      ),
    );
  });

  test('the Arch ISO: missing, or older than 90 whole days', async () => {
    const iso = async (ageDays?: number) => {
      const stats: Record<string, Stat> = { ...OPEN_TREE, '/dev/kvm': dirStat(0o660) };
      if (ageDays !== undefined) stats[ISO] = { ...dirStat(0o644), mtimeMs: NOW - ageDays * DAY };
      return (await run({ stats })).check('iso');
    };
    assert.deepEqual(await iso(), warn('iso', `no Arch ISO at ${ISO}`, '`vms iso fetch` downloads and verifies it'));
    assert.deepEqual(await iso(90.9), pass('iso', 'Arch ISO present (90 days old)'));
    assert.deepEqual(
      await iso(91),
      warn(
        'iso',
        'the Arch ISO is 91 days old: installs download more updates',
        '`vms iso fetch` gets the current one',
      ),
    );
  });

  test('free space: below 2G fails, below 20G warns', async () => {
    const space = async (free: number) => (await run({ free })).check('space');
    const roomier = 'free some space, or set VMS_IMAGES_DIR to a roomier place';
    const desktop = 'an Arch VM with a desktop profile takes 5-15G';
    assert.deepEqual(await space(2 * GiB - 2 ** 20), fail('space', `2G free in ${IMAGES}`, roomier));
    assert.deepEqual(await space(2 * GiB), warn('space', `2G free in ${IMAGES}`, desktop));
    assert.deepEqual(await space(20 * GiB - 2 ** 20), warn('space', `20G free in ${IMAGES}`, desktop));
    assert.deepEqual(await space(20 * GiB), pass('space', `20G free in ${IMAGES}`));
  });
});

describe('doctor: interrupted operations', () => {
  test("journals of killed vms processes are named, oldest first; a live process's journal is not", async () => {
    const dead = 2 ** 22 + 1; // above the kernel's largest pid: no such process
    const journal = (id: string, pid: number, command: string, vms: string[], started: string, start?: string) => ({
      id,
      pid,
      start,
      command,
      vms,
      host: vms.length === 0,
      started,
      steps: [],
    });
    const { check } = await run({
      prepare: (stateDir) => {
        const dir = journalsDir(stateDir);
        mkdirSync(dir, { recursive: true });
        const write = (j: ReturnType<typeof journal>) => writeFileSync(join(dir, `${j.id}.json`), JSON.stringify(j));
        write(journal('b', dead, 'bootstrap', [], '2026-11-02T00:00:00Z'));
        write(journal('a', dead, 'create', ['web', 'db'], '2026-11-01T00:00:00Z'));
        write(journal('c', process.pid, 'set', ['x'], '2026-11-03T00:00:00Z', processStart(process.pid)));
      },
    });
    assert.deepEqual(
      check('interrupted'),
      warn(
        'interrupted',
        `killed before it could finish or undo: vms create (pid ${dead}) on web, db; vms bootstrap (pid ${dead}) on the host`,
        '`vms repair` finishes it (any command on those VMs does it first)',
      ),
    );
  });
});

describe('doctor: the facts of this machine', () => {
  test('stat follows what is there, read gives text or nothing, free space is what statfs says', async () => {
    const { dir } = contextOn(new RecordingRunner([]));
    const file = join(dir, 'f.txt');
    writeFileSync(file, 'Y\n', { mode: 0o640 });
    assert.equal(thisHost.stat(file)!.mode & 0o777, 0o640);
    assert.equal(thisHost.stat(join(dir, 'none')), undefined);
    assert.equal(thisHost.read(file), 'Y\n');
    assert.equal(thisHost.read(join(dir, 'none')), undefined);
    const s = statfsSync(dir);
    // the disk is shared: what others write meanwhile moves it a little
    assert.ok(Math.abs((await thisHost.freeBytes(dir)) - s.bavail * s.bsize) < 256 * 2 ** 20);
  });
});
