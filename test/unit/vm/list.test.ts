import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDomstats } from '../../../src/libvirt/virsh-output.js';

// `virsh domstats --raw --state --balloon --vcpu --block` as libvirt 9 prints it for a shut-off domain and a
// running one (with an empty cdrom), trailing blank lines included.
const OUT = [
  "Domain: 'lxa'",
  '  state.state=5',
  '  state.reason=0',
  '  balloon.current=2097152',
  '  balloon.maximum=2097152',
  '  vcpu.current=2',
  '  vcpu.maximum=2',
  '  block.count=1',
  '  block.0.name=vda',
  '  block.0.path=/var/lib/libvirt/images/lxa.qcow2',
  '  block.0.capacity=67108864',
  '',
  "Domain: 'it''s=odd'",
  '  state.state=1',
  '  block.count=2',
  '  block.0.capacity=1073741824',
  '  block.1.name=sda',
  '',
  '',
].join('\n');

test('parseDomstats groups key=value lines under their domain', () => {
  const stats = parseDomstats(OUT);
  assert.deepEqual([...stats.keys()], ['lxa', "it''s=odd"]);
  assert.equal(stats.get('lxa')!['state.state'], '5');
  assert.equal(stats.get('lxa')!['block.0.capacity'], '67108864');
  assert.equal(stats.get('lxa')!['block.0.path'], '/var/lib/libvirt/images/lxa.qcow2');
  assert.deepEqual(stats.get("it''s=odd"), {
    'state.state': '1',
    'block.count': '2',
    'block.0.capacity': '1073741824',
    'block.1.name': 'sda',
  });
});

test('parseDomstats of no domains is empty', () => {
  assert.equal(parseDomstats('\n').size, 0);
  assert.equal(parseDomstats('').size, 0);
});
