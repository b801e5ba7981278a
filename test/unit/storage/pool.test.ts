import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listPools, poolInfo } from '../../../src/core/storage/pool.js';
import { VmsError } from '../../../src/errors.js';
import { parsePoolInfo, parsePoolXml } from '../../../src/libvirt/storage-pool.js';
import { batchCall, fakeContext, virshCall } from '../../helpers/virsh-fake.js';

// Real `virsh pool-info --bytes` and `pool-dumpxml` output (libvirt 9.0).
const RUNNING_INFO = `Name:           images
UUID:           1067fafa-0d04-491a-a486-797d530e221e
State:          running
Persistent:     yes
Autostart:      yes
Capacity:       270553174016
Allocation:     24176050176
Available:      246377123840

`;
const INACTIVE_INFO = `Name:           iso
UUID:           2ab0c5a8-8e73-4c2c-9a51-0d9b0a0d6f11
State:          inactive
Persistent:     yes
Autostart:      no

`;
const poolXml = (name: string, path: string) => `<pool type='dir'>
  <name>${name}</name>
  <capacity unit='bytes'>270553174016</capacity>
  <source>
  </source>
  <target>
    <path>${path}</path>
    <permissions>
      <mode>0755</mode>
    </permissions>
  </target>
</pool>
`;

test('parsePoolInfo reads state, autostart and the sizes in bytes of a running pool', () => {
  assert.deepEqual(parsePoolInfo(RUNNING_INFO), {
    name: 'images',
    uuid: '1067fafa-0d04-491a-a486-797d530e221e',
    state: 'running',
    persistent: true,
    autostart: true,
    capacity: 270553174016,
    allocation: 24176050176,
    free: 246377123840,
  });
});

test('parsePoolInfo: an inactive pool has no sizes', () => {
  const info = parsePoolInfo(INACTIVE_INFO);
  assert.equal(info.state, 'inactive');
  assert.equal(info.autostart, false);
  assert.equal(info.capacity, undefined);
  assert.equal(info.free, undefined);
});

test('parsePoolXml reads the type and the target path (XML escapes undone)', async () => {
  assert.deepEqual(await parsePoolXml(poolXml('a', '/srv/a &amp; b')), { type: 'dir', path: '/srv/a & b' });
  assert.deepEqual(await parsePoolXml(`<pool type='logical'><name>vg</name><target/></pool>`), {
    type: 'logical',
    path: undefined,
  });
  await assert.rejects(parsePoolXml('<domain/>'), /not a libvirt storage pool/);
});

test('listPools: one pool-list and one batch, whatever the number of pools; the padded names are trimmed', async () => {
  const { ctx, runner } = fakeContext([
    virshCall(['pool-list', '--all', '--name'], 'images              \niso                 \n\n'),
    batchCall(
      ['pool-info images --bytes', 'pool-dumpxml images', 'pool-info iso --bytes', 'pool-dumpxml iso'],
      [RUNNING_INFO, poolXml('images', '/var/lib/libvirt/images'), INACTIVE_INFO, poolXml('iso', '/srv/iso')],
    ),
  ]);
  const pools = await listPools(ctx);
  runner.done();
  assert.deepEqual(
    pools.map((p) => [p.name, p.state, p.path, p.capacity]),
    [
      ['images', 'running', '/var/lib/libvirt/images', 270553174016],
      ['iso', 'inactive', '/srv/iso', undefined],
    ],
  );
  assert.deepEqual(
    Object.keys(pools[0]!).slice(0, 5),
    ['name', 'uuid', 'type', 'path', 'state'],
    'JSON in a readable order',
  );
});

test('listPools: a pool undefined between the list and the batch is left out', async () => {
  const { ctx, runner } = fakeContext([
    virshCall(['pool-list', '--all', '--name'], 'gone\nimages\n'),
    batchCall(['pool-info gone --bytes', 'pool-info images --bytes'], ['', '', RUNNING_INFO, poolXml('images', '/i')]),
  ]);
  assert.deepEqual(
    (await listPools(ctx)).map((p) => p.name),
    ['images'],
  );
  runner.done();
});

test('poolInfo of an unknown pool: not found (exit 3) with a hint, and nothing else is asked', async () => {
  const { ctx, runner } = fakeContext([
    virshCall(['pool-info', 'nope', '--bytes'], '', {
      exitCode: 1,
      stderr:
        "error: failed to get pool 'nope'\nerror: Storage pool not found: no storage pool with matching name 'nope'\n",
    }),
  ]);
  await assert.rejects(poolInfo(ctx, 'nope'), (err: unknown) => {
    assert.ok(err instanceof VmsError);
    assert.equal(err.exitCode, 3);
    assert.equal(err.message, "no storage pool named 'nope'");
    assert.match(err.hint ?? '', /vms pool list/);
    return true;
  });
  runner.done();
});

test('poolInfo combines pool-info and pool-dumpxml', async () => {
  const { ctx, runner } = fakeContext([
    virshCall(['pool-info', 'images', '--bytes'], RUNNING_INFO),
    virshCall(['pool-dumpxml', 'images'], poolXml('images', '/var/lib/libvirt/images')),
  ]);
  const p = await poolInfo(ctx, 'images');
  runner.done();
  assert.equal(p.path, '/var/lib/libvirt/images');
  assert.equal(p.type, 'dir');
  assert.equal(p.free, 246377123840);
});

test('listPools: a pool whose info or definition alone was printed is left out too', async () => {
  const { ctx, runner } = fakeContext([
    virshCall(['pool-list', '--all', '--name'], 'noxml\nnoinfo\nimages\n'),
    batchCall(
      ['pool-info noxml --bytes', 'pool-info noinfo --bytes', 'pool-info images --bytes'],
      [INACTIVE_INFO, '', '', poolXml('noinfo', '/n'), RUNNING_INFO, poolXml('images', '/i')],
    ),
  ]);
  assert.deepEqual(
    (await listPools(ctx)).map((p) => p.name),
    ['images'],
  );
  runner.done();
});

test('poolInfo: a failure other than "no such pool" is not turned into not found', async () => {
  const { ctx, runner } = fakeContext([
    virshCall(['pool-info', 'images', '--bytes'], '', {
      exitCode: 1,
      stderr: 'error: failed to connect to the hypervisor\nerror: Failed to connect socket: Permission denied\n',
    }),
  ]);
  await assert.rejects(poolInfo(ctx, 'images'), (err: unknown) => err instanceof VmsError && err.exitCode !== 3);
  runner.done();
});
