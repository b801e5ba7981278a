import { existsSync, readFileSync, statSync, type Stats } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { VmsError } from '../../errors.js';
import { pickDomainType } from '../../libvirt/virsh.js';
import { formatSize } from '../../size.js';
import { findVirtiofsd } from './programs.js';
import { ARCH_ISO } from '../storage/iso.js';
import { libvirtGroup } from './libvirt-group.js';
import type { Context } from '../context.js';
import { interruptedOperations } from '../ops/repair.js';
import { shellQuote as q } from '../../quote.js';

// `vms doctor`: one check per line, pass / warn / fail, and for anything not passing the exact fix.

export type CheckStatus = 'pass' | 'warn' | 'fail';

export interface CheckResult {
  check: string;
  status: CheckStatus;
  message: string;
  fix?: string;
}

const pass = (check: string, message: string): CheckResult => ({ check, status: 'pass', message });
const warn = (check: string, message: string, fix: string): CheckResult => ({ check, status: 'warn', message, fix });
const fail = (check: string, message: string, fix: string): CheckResult => ({ check, status: 'fail', message, fix });

/** What doctor learns of the machine other than through its runner and vms' own dirs (tests give recorded facts). */
export interface DoctorFacts {
  /** A path's owner, mode and age (following links); undefined when there is none or it cannot be reached. */
  stat(path: string): Pick<Stats, 'uid' | 'gid' | 'mode' | 'mtimeMs'> | undefined;
  /** A file's text; undefined when there is none. */
  read(path: string): string | undefined;
  /** Where virtiofsd is installed, if anywhere (PATH: where else to look). */
  virtiofsd(path: string | undefined): string | undefined;
  /** The bytes an unprivileged user may still write in dir's filesystem. */
  freeBytes(dir: string): Promise<number>;
}

export const thisHost: DoctorFacts = {
  stat: (path) => {
    try {
      return statSync(path);
    } catch {
      return undefined;
    }
  },
  read: (path) => (existsSync(path) ? readFileSync(path, 'utf8') : undefined),
  virtiofsd: (path) => findVirtiofsd(path),
  freeBytes: async (dir) => {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  },
};

const GiB = 2 ** 30;
const DAY = 24 * 3600 * 1000;

/** Whether this process can create a KVM VM: QEMU opens /dev/kvm and does KVM_CREATE_VM, then quits at once. */
async function kvmCreatesVm(ctx: Context): Promise<string | undefined> {
  const args = ['-accel', 'kvm', '-machine', 'none', '-nodefaults', '-display', 'none', '-monitor', 'stdio'];
  const r = await ctx.runner
    .run('qemu-system-x86_64', args, { input: 'quit\n', timeoutMs: 20_000 })
    .catch((err: Error) => ({ exitCode: 1, stderr: err.message }));
  return r.exitCode === 0 ? undefined : r.stderr.trim().split('\n').pop() || `exit status ${r.exitCode}`;
}

async function checkKvm(ctx: Context, caps: string | undefined, facts: DoctorFacts): Promise<CheckResult> {
  const tcg = 'guests run under TCG emulation, many times slower';
  if (!facts.stat('/dev/kvm'))
    return warn(
      'kvm',
      `no /dev/kvm: ${tcg}`,
      'enable virtualization (VT-x/AMD-V) in the firmware and load kvm_intel or kvm_amd',
    );
  const error = await kvmCreatesVm(ctx);
  if (error)
    return warn(
      'kvm',
      `/dev/kvm cannot create a VM (${error}): ${tcg}`,
      'check the permissions of /dev/kvm (group kvm) and that nothing else holds VT-x',
    );
  if (caps === undefined)
    return pass('kvm', '/dev/kvm creates VMs (whether libvirt uses it is not known: libvirtd does not answer)');
  if (pickDomainType(caps) !== 'kvm') {
    return warn(
      'kvm',
      `/dev/kvm works here, but libvirt at ${ctx.virsh.uri} offers only TCG: ${tcg}`,
      'restart libvirtd so it probes KVM again (it may have been started without /dev/kvm)',
    );
  }
  return pass('kvm', '/dev/kvm creates VMs and libvirt offers KVM');
}

export interface GroupFacts {
  uid: number;
  user: string;
  /** This process's groups: what the session has, which /etc/group may have outgrown. */
  gids: number[];
  groupFile: string;
}

/** Pure: whether this session may use libvirt and vms' shared dirs through the libvirt group. */
export function checkGroup(f: GroupFacts): CheckResult {
  if (f.uid === 0) return pass('group', 'running as root');
  const group = libvirtGroup(f.groupFile);
  if (group && f.gids.includes(group.gid)) return pass('group', 'you are in the libvirt group');
  // usermod changed /etc/group, but a session keeps the groups it was started with.
  if (group?.members.includes(f.user)) {
    return fail(
      'group',
      `${f.user} is in the libvirt group, but this session started before that`,
      'log out and in again (or, in this shell only: `newgrp libvirt`)',
    );
  }
  return fail(
    'group',
    `${f.user} is not in the libvirt group${group ? '' : ' (there is no libvirt group)'}`,
    `sudo usermod -aG libvirt ${q(f.user)}, then log out and in again (\`vms bootstrap\` does it)`,
  );
}

/** The qemu user must be able to reach the images dir: every directory on the way needs x for it. */
function checkImagesDir(ctx: Context, caps: string | undefined, facts: DoctorFacts): CheckResult {
  const dir = ctx.config.imagesDir.value;
  if (!facts.stat(dir))
    return fail(
      'images',
      `images dir ${dir} does not exist`,
      `\`vms bootstrap\` creates it, or: sudo mkdir -p ${q(dir)}`,
    );
  const m = caps && /<baselabel type=['"](?:kvm|qemu)['"]>\+?(\d+):\+?(\d+)<\/baselabel>/.exec(caps);
  if (!m) return pass('images', `${dir} exists`);
  const [uid, gid] = [Number(m[1]), Number(m[2])];
  if (uid === 0) return pass('images', `${dir} exists; qemu runs as root`);
  for (let d = dir; ; d = dirname(d)) {
    const s = facts.stat(d)!; // dir is there, so is every directory above it
    const x = s.uid === uid ? s.mode & 0o100 : s.gid === gid ? s.mode & 0o010 : s.mode & 0o001;
    if (!x)
      return fail(
        'images',
        `the qemu user (uid ${uid}) cannot enter ${d}, so it cannot open disks in ${dir}`,
        `sudo chmod o+x ${q(d)}`,
      );
    if (d === '/') break;
  }
  return pass('images', `${dir} is reachable by the qemu user (uid ${uid})`);
}

function checkSecurityModule(facts: DoctorFacts): CheckResult {
  const read = (p: string) => facts.read(p)?.trim();
  const apparmor = read('/sys/module/apparmor/parameters/enabled');
  const selinux = read('/sys/fs/selinux/enforce');
  const parts = [
    apparmor === 'Y' ? 'AppArmor enabled' : 'AppArmor off',
    selinux === undefined ? 'SELinux off' : selinux === '1' ? 'SELinux enforcing' : 'SELinux permissive',
  ];
  return pass(
    'security',
    `${parts.join(', ')} (libvirt labels its files itself; disks outside the images dir may need labels)`,
  );
}

function checkOvmf(domcaps: string | undefined): CheckResult {
  if (domcaps && /<enum name=['"]firmware['"]>[\s\S]*?<value>efi<\/value>/.test(domcaps))
    return pass('ovmf', 'UEFI firmware (OVMF) is available to libvirt');
  return warn(
    'ovmf',
    'no UEFI firmware (OVMF) found: --firmware efi will not work',
    'install it: pacman -S edk2-ovmf (Arch), apt install ovmf (Debian), dnf install edk2-ovmf (Fedora)',
  );
}

function checkVirtiofsd(ctx: Context, facts: DoctorFacts): CheckResult {
  const found = facts.virtiofsd(ctx.host.env.PATH);
  if (found) return pass('virtiofsd', `virtiofsd found (${found})`);
  return warn(
    'virtiofsd',
    'virtiofsd not found: no shared package cache or folders',
    'install it: pacman -S virtiofsd (Arch), apt install virtiofsd (Debian)',
  );
}

async function checkNetwork(ctx: Context): Promise<CheckResult> {
  const info = await ctx.virsh.networkState('default');
  if (!info) {
    const why = "libvirt's 'default' network is not defined: --network default will not work";
    return warn('network', why, '`vms bootstrap` defines it; or use --network user');
  }
  if (!info.active) {
    const fix = 'virsh net-start default && virsh net-autostart default';
    return warn('network', "libvirt's 'default' network is defined but not active", fix);
  }
  return pass('network', "libvirt's 'default' network is active");
}

function checkIso(ctx: Context, now: number, facts: DoctorFacts): CheckResult {
  const path = join(ctx.config.isoDir.value, ARCH_ISO);
  const iso = facts.stat(path);
  if (!iso) return warn('iso', `no Arch ISO at ${path}`, '`vms iso fetch` downloads and verifies it');
  const days = Math.floor((now - iso.mtimeMs) / DAY);
  if (days > 90)
    return warn(
      'iso',
      `the Arch ISO is ${days} days old: installs download more updates`,
      '`vms iso fetch` gets the current one',
    );
  return pass('iso', `Arch ISO present (${days} days old)`);
}

async function checkSpace(ctx: Context, facts: DoctorFacts): Promise<CheckResult> {
  const dir = ctx.config.imagesDir.value;
  if (!facts.stat(dir))
    return fail('space', `cannot measure free space: ${dir} does not exist`, '`vms bootstrap` creates it');
  const free = await facts.freeBytes(dir);
  const message = `${formatSize(free)} free in ${dir}`;
  if (free < 2 * GiB) return fail('space', message, 'free some space, or set VMS_IMAGES_DIR to a roomier place');
  if (free < 20 * GiB) return warn('space', message, 'an Arch VM with a desktop profile takes 5-15G');
  return pass('space', message);
}

/** Operations whose vms process was killed before it could finish or undo them (the next command repairs them). */
async function checkInterrupted(ctx: Context): Promise<CheckResult> {
  const left = await interruptedOperations(ctx);
  if (left.length === 0) return pass('interrupted', 'no vms command was left half-done');
  const what = left.map((j) => `vms ${j.command} (pid ${j.pid}) on ${j.vms.join(', ') || 'the host'}`).join('; ');
  return warn(
    'interrupted',
    `killed before it could finish or undo: ${what}`,
    '`vms repair` finishes it (any command on those VMs does it first)',
  );
}

const unchecked = (check: string) =>
  warn(check, 'not checked: libvirtd does not answer', 'fix the libvirt check first');

/** Runs every check; never throws for a failing check (that is a result), only for a bug. */
export async function doctor(ctx: Context, now = Date.now(), facts = thisHost): Promise<CheckResult[]> {
  let caps: string | undefined;
  let domcaps: string | undefined;
  let libvirt: CheckResult;
  try {
    caps = await ctx.virsh.capabilities();
    domcaps = await ctx.virsh.domainCapabilities().catch(() => undefined);
    libvirt = pass('libvirt', `libvirtd answers at ${ctx.virsh.uri}`);
  } catch (err) {
    if (!(err instanceof VmsError)) throw err;
    libvirt = fail(
      'libvirt',
      err.message,
      'start libvirtd: `sudo systemctl enable --now libvirtd` (`vms bootstrap` does it)',
    );
  }
  return [
    await checkKvm(ctx, caps, facts),
    libvirt,
    checkGroup({
      uid: ctx.host.uid,
      user: ctx.host.user,
      gids: [...ctx.host.groups],
      groupFile: facts.read('/etc/group') ?? '',
    }),
    checkImagesDir(ctx, caps, facts),
    checkSecurityModule(facts),
    caps === undefined ? unchecked('ovmf') : checkOvmf(domcaps),
    checkVirtiofsd(ctx, facts),
    caps === undefined ? unchecked('network') : await checkNetwork(ctx),
    checkIso(ctx, now, facts),
    await checkSpace(ctx, facts),
    await checkInterrupted(ctx),
  ];
}
