import assert from 'node:assert/strict';
import { test } from 'node:test';
import { libvirtGroup } from '../../../src/core/host/libvirt-group.js';

test("libvirtGroup: the libvirt line's gid and members; none before libvirt is installed", () => {
  const file = 'root:x:0:\nlibvirt-qemu:x:64055:libvirt-qemu\nlibvirt:x:106:alice,bob\nkvm:x:104:\n';
  assert.deepEqual(libvirtGroup(file), { gid: 106, members: ['alice', 'bob'] });
  assert.deepEqual(libvirtGroup('libvirt:x:975:\n'), { gid: 975, members: [] });
  assert.deepEqual(libvirtGroup('libvirt:x:975'), { gid: 975, members: [] });
  assert.equal(libvirtGroup('root:x:0:\nlibvirt-qemu:x:64055:alice\n'), undefined);
});
