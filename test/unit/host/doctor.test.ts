import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkGroup } from '../../../src/core/host/doctor.js';

const GROUPS = 'root:x:0:\nkvm:x:104:alice\nlibvirt:x:106:alice,bob\nbob:x:1001:\n';

test('checkGroup: root, a session with the group, one that started before joining it, and a user outside it', () => {
  const facts = { uid: 1000, user: 'alice', gids: [1000, 104, 106], groupFile: GROUPS };
  assert.deepEqual(checkGroup({ ...facts, uid: 0, gids: [0] }), {
    check: 'group',
    status: 'pass',
    message: 'running as root',
  });
  assert.deepEqual(checkGroup(facts), { check: 'group', status: 'pass', message: 'you are in the libvirt group' });
  // `vms bootstrap` ran usermod in this login: /etc/group lists bob, his shell does not have the group yet.
  const stale = checkGroup({ ...facts, user: 'bob', gids: [1001] });
  assert.equal(stale.status, 'fail');
  assert.equal(stale.message, 'bob is in the libvirt group, but this session started before that');
  assert.match(stale.fix!, /log out and in again \(or, in this shell only: `newgrp libvirt`\)/);
  const outside = checkGroup({ ...facts, user: 'carol', gids: [1002] });
  assert.equal(outside.message, 'carol is not in the libvirt group');
  assert.match(outside.fix!, /^sudo usermod -aG libvirt carol, then log out and in again/);
  assert.equal(
    checkGroup({ ...facts, groupFile: 'root:x:0:\n' }).message,
    'alice is not in the libvirt group (there is no libvirt group)',
  );
});
