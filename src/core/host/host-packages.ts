import { VmsError } from '../../errors.js';
import type { RunResult } from '../../runner.js';

// What vms needs on the host, per package manager, and how to ask each one what is missing. Pure: the commands to
// run and the reading of their answers; bootstrap runs them.

export type Distro = 'arch' | 'debian' | 'fedora';

/** From /etc/os-release: ID, else the first known ID_LIKE (Ubuntu → debian, Manjaro → arch, Rocky → fedora). */
export function detectDistro(osRelease: string): Distro {
  const field = (key: string) => new RegExp(`^${key}="?([^"\\n]*)"?$`, 'm').exec(osRelease)?.[1] ?? '';
  for (const id of [field('ID'), ...field('ID_LIKE').split(/\s+/)]) {
    if (id === 'arch' || id === 'archarm') return 'arch';
    if (id === 'debian' || id === 'ubuntu') return 'debian';
    if (id === 'fedora' || id === 'rhel' || id === 'centos') return 'fedora';
  }
  throw new VmsError(
    'usage',
    `unsupported host system '${field('PRETTY_NAME') || field('ID') || 'unknown'}'`,
    'vms bootstrap knows Arch (pacman), Debian/Ubuntu (apt) and Fedora (dnf); install QEMU, libvirt, virt-install and OVMF by hand',
  );
}

/** QEMU + qemu-img, libvirt, virt-install, virt-viewer, dnsmasq, OVMF, virtiofsd, xorriso (ISO reading), ssh. */
export const PACKAGES: Record<Distro, string[]> = {
  arch: [
    'qemu-desktop',
    'libvirt',
    'virt-install',
    'virt-viewer',
    'dnsmasq',
    'edk2-ovmf',
    'virtiofsd',
    'libisoburn',
    'openssh',
  ],
  debian: [
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
  ],
  fedora: [
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
  ],
};

/** The read-only query that lists which of `pkgs` are installed or missing. */
export function queryCommand(distro: Distro, pkgs: string[]): string[] {
  if (distro === 'arch') return ['pacman', '-T', ...pkgs];
  if (distro === 'debian') return ['dpkg-query', '-W', '-f=${Package} ${db:Status-Abbrev}\\n', ...pkgs];
  return ['rpm', '-q', ...pkgs];
}

/** Reads the query's answer: the packages of `pkgs` that are not installed. */
export function missingPackages(distro: Distro, pkgs: string[], r: RunResult): string[] {
  if (distro === 'arch')
    return r.stdout
      .split('\n')
      .map((l) => l.trim())
      .filter((p) => pkgs.includes(p)); // pacman -T prints what is missing
  if (distro === 'fedora') return pkgs.filter((p) => r.stdout.includes(`package ${p} is not installed`));
  const installed = new Set(
    r.stdout
      .split('\n')
      .filter((l) => /^\S+ ii/.test(l))
      .map((l) => l.split(' ')[0]),
  );
  return pkgs.filter((p) => !installed.has(p)); // dpkg-query: "ii " installed; "un " or not known at all: missing
}

/** The commands that install `pkgs` (apt first refreshes its lists: a fresh machine has none). */
export function installCommands(distro: Distro, pkgs: string[]): string[][] {
  if (distro === 'arch') return [['pacman', '-S', '--needed', '--noconfirm', ...pkgs]];
  if (distro === 'debian')
    return [
      ['apt-get', 'update', '-q'],
      ['apt-get', 'install', '-y', '-q', '--no-install-recommends', ...pkgs],
    ];
  return [['dnf', 'install', '-y', ...pkgs]];
}
