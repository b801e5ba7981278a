import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  detectDistro,
  installCommands,
  missingPackages,
  PACKAGES,
  queryCommand,
} from '../../../src/core/host/host-packages.js';
import { VmsError } from '../../../src/errors.js';

const result = (stdout: string, exitCode = 0, stderr = '') => ({ stdout, stderr, exitCode });

test('detectDistro reads ID, then ID_LIKE', () => {
  const cases: [string, string][] = [
    ['NAME="Arch Linux"\nID=arch\nBUILD_ID=rolling\n', 'arch'],
    ['ID=manjaro\nID_LIKE=arch\n', 'arch'],
    ['PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n', 'debian'],
    ['ID=ubuntu\nID_LIKE=debian\n', 'debian'],
    ['ID=linuxmint\nID_LIKE="ubuntu debian"\n', 'debian'],
    ['ID=fedora\nVERSION_ID=41\n', 'fedora'],
    ['ID="rocky"\nID_LIKE="rhel centos fedora"\n', 'fedora'],
    // each known ID on its own, with no ID_LIKE to fall back on
    ['ID=archarm\n', 'arch'],
    ['ID=ubuntu\n', 'debian'],
    ['ID=rhel\n', 'fedora'],
    ['ID="centos"\n', 'fedora'],
  ];
  for (const [text, distro] of cases) assert.equal(detectDistro(text), distro, text);
});

test('detectDistro names an unknown system by PRETTY_NAME, else ID, else not at all', () => {
  const refusal = (text: string) => {
    try {
      detectDistro(text);
    } catch (err) {
      return (err as VmsError).message;
    }
    assert.fail('not refused');
  };
  assert.equal(
    refusal('ID=alpine\nPRETTY_NAME="Alpine Linux v3.20"\n'),
    "unsupported host system 'Alpine Linux v3.20'",
  );
  assert.equal(refusal('NAME="Void"\nID="void"\n'), "unsupported host system 'void'");
  assert.equal(refusal(''), "unsupported host system 'unknown'");
});

test('detectDistro refuses an unknown system with a hint', () => {
  assert.throws(
    () => detectDistro('PRETTY_NAME="Alpine Linux v3.20"\nID=alpine\n'),
    (e: VmsError) => e.code === 'usage' && /Alpine Linux/.test(e.message) && !!e.hint,
  );
});

// Answers recorded from the real tools.
test('pacman -T prints exactly the missing packages', () => {
  const pkgs = PACKAGES.arch;
  assert.deepEqual(queryCommand('arch', pkgs), ['pacman', '-T', ...pkgs]);
  assert.deepEqual(missingPackages('arch', pkgs, result('virt-viewer\nvirtiofsd\n', 127)), [
    'virt-viewer',
    'virtiofsd',
  ]);
  assert.deepEqual(missingPackages('arch', pkgs, result('', 0)), []);
  assert.deepEqual(missingPackages('arch', pkgs, result('virt-viewer\r\n  dnsmasq \n', 127)), [
    'virt-viewer',
    'dnsmasq',
  ]);
});

test('dpkg-query: "ii" is installed; "un" and unknown packages are missing', () => {
  const pkgs = ['qemu-system-x86', 'dnsmasq-base', 'virtiofsd'];
  const answer = result(
    'dnsmasq-base un \nqemu-system-x86 ii \n',
    1,
    'dpkg-query: no packages found matching virtiofsd\n',
  );
  assert.deepEqual(missingPackages('debian', pkgs, answer), ['dnsmasq-base', 'virtiofsd']);
  assert.deepEqual(
    missingPackages('debian', pkgs, result('qemu-system-x86 ii \ndnsmasq-base ii \nvirtiofsd ii \n')),
    [],
  );
});

test('rpm -q names each package that is not installed', () => {
  const pkgs = ['qemu-kvm', 'libvirt', 'virtiofsd'];
  const answer = result(
    'qemu-kvm-9.1.2-3.fc41.x86_64\npackage libvirt is not installed\npackage virtiofsd is not installed\n',
    2,
  );
  assert.deepEqual(missingPackages('fedora', pkgs, answer), ['libvirt', 'virtiofsd']);
});

test('install commands: only the missing packages, non-interactive; apt refreshes its lists first', () => {
  assert.deepEqual(installCommands('arch', ['libvirt']), [['pacman', '-S', '--needed', '--noconfirm', 'libvirt']]);
  assert.deepEqual(installCommands('debian', ['ovmf']), [
    ['apt-get', 'update', '-q'],
    ['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'ovmf'],
  ]);
  assert.deepEqual(installCommands('fedora', ['edk2-ovmf']), [['dnf', 'install', '-y', 'edk2-ovmf']]);
});

test('every distro list covers QEMU, libvirt, virt-install, the viewer, OVMF, virtiofsd, ISO tools and ssh', () => {
  const needs = [
    /qemu/,
    /libvirt/,
    /virt-install|virtinst/,
    /virt-viewer/,
    /dnsmasq/,
    /ovmf/,
    /virtiofsd/,
    /xorriso|libisoburn/,
    /openssh/,
  ];
  for (const [distro, pkgs] of Object.entries(PACKAGES)) {
    for (const re of needs)
      assert.ok(
        pkgs.some((p) => re.test(p)),
        `${distro} lacks ${re}`,
      );
  }
});
