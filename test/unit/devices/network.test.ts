import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseNetwork } from '../../../src/core/devices/network.js';
import { VmsError } from '../../../src/errors.js';

test('parseNetwork: none and user are their own kinds; anything else names a libvirt network', () => {
  assert.deepEqual(parseNetwork('none'), { kind: 'none' });
  assert.deepEqual(parseNetwork('user'), { kind: 'user' });
  assert.deepEqual(parseNetwork('default'), { kind: 'network', name: 'default' });
  assert.deepEqual(parseNetwork('lab-1.net_2'), { kind: 'network', name: 'lab-1.net_2' });
});

test('parseNetwork refuses a name libvirt would not take, saying what is accepted', () => {
  for (const text of ['', '-x', 'a b', 'a/b', 'ü'])
    assert.throws(
      () => parseNetwork(text),
      (e: unknown) =>
        e instanceof VmsError &&
        e.code === 'usage' &&
        e.message === `invalid network '${text}'` &&
        e.hint === 'use none, user, or the name of a libvirt network (`virsh net-list --all`)',
      JSON.stringify(text),
    );
});
