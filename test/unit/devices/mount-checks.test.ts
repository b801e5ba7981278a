import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  checkGuestDir,
  mountShare,
  refuseSystemDir,
  requireVirtiofsd,
  resolveHostDir,
  type MountOptions,
} from '../../../src/core/devices/mount.js';
import { VmsError } from '../../../src/errors.js';
import { shareTag } from '../../../src/libvirt/fs-xml.js';
import { defineCall, definitionOf, mountOptions, mountVm } from '../../helpers/mount-vm.js';

// The checks vms mount makes before it changes anything, as the core words them (message, hint, reason): what a
// library caller or the daemon shows. test/unit/devices/mount.test.ts checks them as the command line words them.

const tmp = realpathSync(mkdtempSync(join(tmpdir(), 'vms-mount-checks-')));
const hostDir = join(tmp, 'share');
mkdirSync(hostDir);

/** The error's code, message, hint, reason and data, for one deepEqual. */
const fields = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof VmsError, String(err));
    const { code, message, hint, reason, data } = err;
    return { code, message, hint, reason, data };
  }
  assert.fail('no error');
};
const usage = (message: string, hint: string, reason?: string) => ({
  code: 'usage',
  message,
  hint,
  reason,
  data: undefined,
});

test('checkGuestDir: each refusal says what to give instead', () => {
  assert.deepEqual(
    fields(() => checkGuestDir('mnt/s')),
    usage("GUESTDIR 'mnt/s' is not an absolute path", 'give the directory in the guest from /, e.g. /mnt/share'),
  );
  assert.deepEqual(
    fields(() => checkGuestDir('//')),
    usage("cannot mount over the guest's root directory", 'pick a directory below /, e.g. /mnt/share'),
  );
  const unsafe = usage(
    "GUESTDIR '/mnt/my share/x' has characters vms does not write into the guest's /etc/fstab",
    'use letters, digits and . _ - + @ , : (no spaces or quotes)',
  );
  assert.deepEqual(
    fields(() => checkGuestDir('/mnt/my share/x')),
    unsafe,
    'a bad character before a good last part',
  );
  assert.equal(checkGuestDir('/srv/a.b_c-d+e@f,g:h/'), '/srv/a.b_c-d+e@f,g:h');
});

test('resolveHostDir: a missing directory and a file are refused with hints', async () => {
  writeFileSync(join(tmp, 'file'), '');
  await assert.rejects(resolveHostDir(join(tmp, 'missing')), (err: unknown) => {
    assert.ok(err instanceof VmsError);
    assert.deepEqual(
      [err.code, err.message, err.hint],
      [
        'notFound',
        `host directory ${join(tmp, 'missing')} does not exist`,
        'create it first, or give an existing directory',
      ],
    );
    return true;
  });
  await assert.rejects(resolveHostDir(join(tmp, 'file')), (err: unknown) => {
    assert.ok(err instanceof VmsError);
    assert.deepEqual(
      [err.code, err.message, err.hint],
      ['usage', `${join(tmp, 'file')} is not a directory`, 'vms mount shares a directory'],
    );
    return true;
  });
});

test('refuseSystemDir: the core hint names the override in words (reason mount.systemDir)', () => {
  assert.deepEqual(
    fields(() => refuseSystemDir('/usr/bin', '/usr/bin', false)),
    usage(
      "/usr/bin is a system directory: virtiofsd runs as root, so the guest would get it with root's rights on the host",
      'share a directory of your own (your home or one below it is fine), or allow a system directory if you mean it',
      'mount.systemDir',
    ),
  );
});

test('requireVirtiofsd: the message and the install hint for each distribution', () => {
  assert.deepEqual(
    fields(() => requireVirtiofsd(() => undefined)),
    {
      code: 'missingTool',
      message: 'virtiofsd is not installed: shared folders need it',
      hint: 'install it: pacman -S virtiofsd (Arch), apt install virtiofsd (Debian 13; QEMU brings it on Debian 12), dnf install virtiofsd (Fedora)',
      reason: undefined,
      data: undefined,
    },
  );
});

const opts = (o: Partial<MountOptions> = {}) => mountOptions(hostDir, o);

test('virtiofsd is looked for on the caller’s PATH when no finder is given', async () => {
  const bin = join(tmp, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'virtiofsd'), '#!/bin/sh\n');
  chmodSync(join(bin, 'virtiofsd'), 0o755);
  const vm = mountVm();
  vm.ctx.host = { ...vm.ctx.host, env: { PATH: bin } };
  const defined: string[] = [];
  vm.expect(vm.loads({}, 'shut off'), [defineCall(defined)]);
  const r = await mountShare(vm.ctx, opts());
  await vm.done();
  assert.deepEqual([r.persistent, r.mounted, r.readonly], [true, false, false]);
  assert.deepEqual(vm.steps, ["Adding the share to m's definition"]);
  assert.deepEqual(await definitionOf(defined[0]!), {
    shares: [{ tag: r.tag, source: hostDir, readonly: false }],
    sharedMemory: true,
    kept: undefined,
    metadata: false,
  });
});

test('--temp on a shut-off VM: a conflict (mount.tempShutOff) that names the VM and says to start it', async () => {
  const vm = mountVm();
  vm.expect(vm.loads({}, 'shut off'));
  await assert.rejects(
    mountShare(vm.ctx, opts({ temp: true }), () => 'virtiofsd'),
    (err: unknown) => {
      assert.ok(err instanceof VmsError);
      assert.deepEqual(
        { code: err.code, message: err.message, hint: err.hint, reason: err.reason, data: err.data },
        {
          code: 'conflict',
          message: 'm is shut off: a temporary mount goes only into a running VM',
          hint: '`vms start m` first',
          reason: 'mount.tempShutOff',
          data: { name: 'm' },
        },
      );
      return true;
    },
  );
  await vm.done();
  assert.deepEqual(vm.steps, []);
});

test('a read-only record left without its share (the share removed with virsh) does not make a new share read-only', async () => {
  const vm = mountVm();
  const defined: string[] = [];
  vm.expect(vm.loads({ sharedMemory: true, kept: [shareTag('/mnt/s')] }, 'shut off'), [defineCall(defined)]);
  const r = await mountShare(vm.ctx, opts(), () => 'virtiofsd');
  await vm.done();
  assert.equal(r.readonly, false);
  assert.deepEqual(await definitionOf(defined[0]!), {
    shares: [{ tag: r.tag, source: hostDir, readonly: false }],
    sharedMemory: true,
    kept: undefined,
    metadata: true,
  });
});
