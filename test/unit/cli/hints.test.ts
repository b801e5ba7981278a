import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forCommandLine } from '../../../src/cli/hints.js';
import { VmsError, type ErrorReason } from '../../../src/errors.js';

// The core's errors name no flag; the command line's words for them come from their reason and data.

const words = (err: VmsError) => {
  const shown = forCommandLine(err);
  return { message: shown.message, hint: shown.hint };
};

test('a reason the CLI has words for gets them; code, details, reason and data stay', () => {
  const err = new VmsError(
    'timeout',
    'w did not shut down within 5s',
    'the guest may ignore ACPI: …',
    'tail',
    'power.stopTimeout',
    { name: 'w' },
  );
  const shown = forCommandLine(err);
  assert.equal(
    shown.hint,
    'the guest may ignore ACPI: wait longer with --timeout, add --force to power it off, or `vms kill` it',
  );
  assert.equal(shown.message, err.message);
  assert.deepEqual(
    [shown.code, shown.details, shown.reason, shown.data],
    ['timeout', 'tail', 'power.stopTimeout', { name: 'w' }],
  );
});

test('set: the changes a running VM cannot take, as flags, and --restart', () => {
  const err = new VmsError('conflict', 'core words', 'core hint', undefined, 'set.needsOff', {
    name: "it's",
    needsOff: [{ setting: 'memory', value: '8G', why: 'above the 4G it was started with' }, { setting: 'rename' }],
  });
  assert.deepEqual(words(err), {
    message:
      "it's is running: changing --memory 8G (above the 4G it was started with) and --rename requires the VM to be shut off; use --restart",
    hint: "--restart shuts it down (ACPI), applies everything and starts it again; or `vms stop 'it'\\''s'` first. Nothing was changed.",
  });
  assert.equal(
    words(new VmsError('timeout', 'm', 'h', undefined, 'set.shutdownTimeout', { name: 'w' })).hint,
    'the guest may ignore ACPI: wait longer with --timeout, or power it off with `vms stop w --force` and run this again',
  );
});

test("a failed install: kept (--keep-failed, --resume) or removed (add --keep-failed), whatever the cause's reason", () => {
  const kept = new VmsError('failed', 'the install failed', 'h', undefined, 'lock.busy', {
    kept: { name: 'w', password: '/s/w/root-password' },
  });
  assert.equal(
    words(kept).hint,
    'kept for inspection (--keep-failed): `vms console w` (root password in /s/w/root-password); go on with `vms create w --resume`, or remove it with `vms destroy w`',
  );
  const removed = (cleaned: boolean) =>
    new VmsError('failed', 'm', 'h', undefined, undefined, { removed: { transcript: '/t.log', cleaned } });
  assert.equal(
    words(removed(true)).hint,
    'the whole transcript is in /t.log; nothing else is left (add --keep-failed to keep the VM)',
  );
  assert.equal(words(removed(false)).hint, 'the whole transcript is in /t.log');
});

test('a hint can be taken away; an error the CLI has no words for is shown as the core made it', () => {
  assert.deepEqual(words(new VmsError('usage', 'core words', 'core hint', undefined, 'kernelBoot.noKernel')), {
    message: '--initrd and --cmdline need --kernel',
    hint: undefined,
  });
  const plain = new VmsError('notFound', 'no VM named x', 'vms list', undefined, 'domain.notFound');
  assert.equal(forCommandLine(plain), plain);
  assert.equal(
    words(new VmsError('failed', 'boom', undefined, undefined, 'unexpected')).hint,
    'run again with -v to see the commands run',
  );
});

test("each reason the core words without flags gets the command line's words back", () => {
  const cases: [ErrorReason, Record<string, unknown>, string][] = [
    [
      'clone.foreignDisk',
      { source: 'a b', target: 'vdb' },
      "use --full for an independent copy, or `vms disk detach 'a b' vdb` first",
    ],
    ['clone.notQcow2', {}, 'use --full for an independent copy'],
    ['clone.fullRunning', { source: 'a' }, '`vms stop a` first, or drop --full for an instant linked clone'],
    [
      'snapshot.internalNeedsQcow2',
      {},
      'use --external: the disk is kept as it is and the VM goes on from a qcow2 overlay on top of it',
    ],
    [
      'snapshot.uefiInternal',
      { vm: 'u' },
      'use --external, or shut u off first: an internal snapshot of a shut-off UEFI VM works (its disks, without the NVRAM)',
    ],
    ['set.unfinished', { name: 'w' }, 'finish it with `vms create w --resume` (or destroy it) first'],
    ['apply.unfinished', { name: 'w' }, '`vms create w --resume` finishes it first'],
    ['set.nothing', {}, 'give --memory, --cpus, --displays, --rename or --notes'],
    ['set.noGraphics', {}, 'it was created with --no-graphics'],
    ['user.invalid', {}, 'use a lowercase Linux user name other than root, for example --user alice'],
    ['sshKey.notFound', {}, 'pass a public key file (.pub) with --ssh-key'],
    ['iso.notIso', {}, 'pass an ISO image with --iso'],
    [
      'mount.systemDir',
      {},
      'share a directory of your own (your home or one below it is fine), or add --allow-system-dir if you mean it',
    ],
    ['mount.notEmpty', {}, 'pick an empty or new directory, or add --force (the files come back after `vms umount`)'],
    [
      'mount.needsRestart',
      {},
      'add --restart to have vms power it off, add shared memory to its definition and start it again; nothing was changed',
    ],
  ];
  for (const [reason, data, hint] of cases)
    assert.equal(words(new VmsError('conflict', 'm', 'core', undefined, reason, data)).hint, hint, reason);
  assert.deepEqual(words(new VmsError('conflict', 'm', 'h', undefined, 'mount.tempShutOff', { name: 'w' })), {
    message: 'w is shut off: --temp mounts only into a running VM',
    hint: '`vms start w` first, or drop --temp',
  });
});

test('disk: the ways out of a refused attach or delete, with their flags', () => {
  const hint = (reason: ErrorReason, data: Record<string, unknown> = {}) =>
    words(new VmsError('conflict', 'm', 'core', undefined, reason, data)).hint;
  assert.equal(
    hint('disk.inUseReadable', { copy: 'attach a copy of it (cp --sparse=always /b COPY)' }),
    'attach a copy of it (cp --sparse=always /b COPY), or attach it with --readonly: the VMs that use it only read it',
  );
  assert.equal(
    hint('disk.inUse', { copy: 'x' }),
    'core',
    "another VM writes it: no flag helps, the core's words stand",
  );
  assert.equal(hint('disk.readonlySata'), 'use --bus virtio or scsi');
  assert.equal(hint('disk.readOnlyFile'), 'attach it with --readonly, or attach a copy of it');
  assert.equal(hint('disk.notDeletable'), 'nothing was changed; detach it without --delete to keep the file');
});

test('nic, serial, a paused VM, a failed mirror, an ISO not found, an unclassified virsh failure: their flags', () => {
  const said = (reason: ErrorReason | undefined, data: Record<string, unknown> = {}) =>
    words(new VmsError('usage', 'core words', 'core hint', undefined, reason, data));
  assert.equal(
    said('nic.badMac').hint,
    "give six hex pairs such as 52:54:00:12:34:56 (52:54:00 is QEMU's prefix), or --mac auto",
  );
  assert.equal(said('nic.twoSources').message, 'give only one of --network, --bridge and --user');
  assert.equal(said('nic.badNetwork').hint, 'name a libvirt network (`virsh net-list --all`), or use --user');
  assert.equal(
    said('nic.networkMissing', { how: '`vms bootstrap` starts it' }).hint,
    '`vms bootstrap` starts it; or use --user (no libvirt network needed)',
  );
  assert.equal(said('nic.noBridge').hint, '`ip link show type bridge` lists the bridges; or use --user');
  assert.equal(said('nic.macTaken').hint, 'give another --mac, or leave it out and libvirt picks one');
  const backends =
    'use file:/abs/path, unix:/abs/path or tcp:HOST:PORT (add --server for QEMU to listen on the socket)';
  assert.equal(said('serial.badBackend').hint, backends);
  assert.deepEqual(said('serial.serverFile'), {
    message: '--server is for unix: and tcp: backends: QEMU appends to a file',
    hint: backends,
  });
  assert.equal(said('vm.paused', { name: 'my vm' }).hint, "`vms resume 'my vm'` first");
  assert.equal(
    said(undefined, { otherMirror: 'check the network, or ' }).hint,
    'check the network, or pick another mirror with --mirror URL or VMS_MIRROR (its iso/latest/ directory; ' +
      'list: https://archlinux.org/download/)',
  );
  assert.equal(
    said('iso.notIso', { isoDir: '/var/lib/libvirt/iso' }).hint,
    '--iso takes an ISO 9660 image: its name in /var/lib/libvirt/iso, or its path',
  );
  assert.equal(said('pci.noSlots', { seeCommands: true }).hint, 'run again with -v to see the commands run');
  assert.equal(said('pci.noSlots').hint, 'core hint', 'no words of its own: the core hint stays');
});
