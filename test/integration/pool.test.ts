import assert from 'node:assert/strict';
import { mkdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { formatSize } from '../../src/size.js';
import { testbed } from '../helpers/testbed.js';

const bed = testbed('pool');

// A dir pool of the test's own, in the bed's directory; no other pool is ever touched.
describe('vms pool', () => {
  const pool = bed.name('pool');
  const dir = join(bed.dir, 'pool');
  before(() => {
    mkdirSync(dir);
    bed.virsh('pool-define-as', pool, 'dir', '--target', dir);
    bed.virsh('pool-start', pool);
  });
  after(() => {
    try {
      if (/^State:\s+running$/m.test(bed.virsh('pool-info', pool))) bed.virsh('pool-destroy', pool);
      bed.virsh('pool-undefine', pool);
    } finally {
      bed.cleanup();
    }
  });

  test('list shows the pool with its state, type and path', async () => {
    const r = await bed.vms(['pool', 'list', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const mine = r.json.find((p: any) => p.name === pool);
    assert.ok(mine, `${pool} listed`);
    assert.equal(mine.state, 'running');
    assert.equal(mine.type, 'dir');
    assert.equal(mine.path, dir);
    assert.equal(mine.autostart, false);
    const human = await bed.vms(['pool', 'list']);
    assert.match(human.stdout, /^NAME\s+STATE\s+AUTOSTART\s+TYPE\s+CAPACITY\s+ALLOCATION\s+FREE\s+PATH$/m);
    assert.match(human.stdout, new RegExp(`^${pool}\\s+running\\s+no\\s+dir\\s+\\S+\\s+\\S+\\s+\\S+\\s+${dir}$`, 'm'));
  });

  test("info: capacity and free space of the pool's filesystem, in bytes and human units", async () => {
    const r = await bed.vms(['pool', 'info', pool, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const fs = statfsSync(dir);
    assert.equal(r.json.capacity, fs.blocks * fs.bsize);
    // libvirt counts the blocks reserved for root as free (f_bfree, not df's f_bavail); other tests write to the same
    // filesystem meanwhile: it agrees to within 1G.
    assert.ok(Math.abs(r.json.free - fs.bfree * fs.bsize) < 2 ** 30, `free ${r.json.free} vs ${fs.bfree * fs.bsize}`);
    assert.equal(r.json.allocation + r.json.free, r.json.capacity, 'allocation is what is not free');
    const human = await bed.vms(['pool', 'info', pool]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, new RegExp(`^path\\s+${dir}$`, 'm'));
    assert.match(human.stdout, /^state\s+running$/m);
    for (const key of ['capacity', 'allocation', 'free']) {
      const m = new RegExp(`^${key}\\s+(\\S+) \\((\\d+) bytes\\)$`, 'm').exec(human.stdout);
      assert.ok(m, `${key} line in:\n${human.stdout}`);
      assert.equal(m[1], formatSize(Number(m[2])), `${key}: the human size is the byte count's`);
    }
  });

  test('info follows libvirt: autostart set, then the pool stopped (no sizes, a hint to start it)', async () => {
    bed.virsh('pool-autostart', pool);
    assert.match((await bed.vms(['pool', 'info', pool])).stdout, /^autostart\s+yes$/m);
    bed.virsh('pool-destroy', pool);
    const r = await bed.vms(['pool', 'info', pool]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^state\s+inactive$/m);
    assert.doesNotMatch(r.stdout, /^capacity/m);
    assert.match(r.stdout, new RegExp(`sizes only while it runs: \`virsh pool-start ${pool}\``));
    const listed = (await bed.vms(['pool', 'list', '--json'])).json.find((p: any) => p.name === pool);
    assert.equal(listed.state, 'inactive');
    assert.equal(listed.capacity, undefined);
  });

  test('an unknown pool: exit 3 with a hint (and as JSON)', async () => {
    const r = await bed.vms(['pool', 'info', bed.name('ghost')]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^error: no storage pool named '.*-ghost'\nhint: `vms pool list` shows the pools\n$/);
    const json = await bed.vms(['pool', 'info', bed.name('ghost'), '--json']);
    assert.equal(json.code, 3);
    assert.equal(json.json.error.code, 'notFound');
  });
});
