import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explainNoSlot } from '../../../src/core/devices/hotplug.js';
import { VmsError } from '../../../src/errors.js';

test('explainNoSlot: reason pci.noSlots becomes a conflict (exit 4) with the way out; anything else is left as it is', () => {
  const noSlot = new VmsError('failed', 'virsh attach-device failed: …', undefined, undefined, 'pci.noSlots');
  const told = explainNoSlot(noSlot, 'vm', 'a NIC', 'stop it first');
  assert.ok(told instanceof VmsError);
  assert.equal(told.code, 'conflict');
  assert.equal(told.message, 'vm has no free PCIe slot left to plug a NIC into while it runs');
  assert.equal(told.hint, 'stop it first');
  // The words alone decide nothing: only the reason does.
  const sameWords = new VmsError('failed', 'virsh attach-device failed: No more available PCI slots');
  assert.equal(explainNoSlot(sameWords, 'vm', 'a NIC', 'x'), sameWords);
  const other = new Error('boom');
  assert.equal(explainNoSlot(other, 'vm', 'the disk', 'x'), other);
});
