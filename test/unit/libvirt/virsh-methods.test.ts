import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeRunner } from '../../helpers/fake-runner.js';
import { VmsError, type ErrorReason } from '../../../src/errors.js';
import {
  Virsh,
  classifyVirshError,
  defaultNetworkLines,
  networkLineCheck,
  systemVirshLine,
  virshCommand,
} from '../../../src/libvirt/virsh.js';
import { parseMemoryStats, parseNetInfo, stateName } from '../../../src/libvirt/virsh-output.js';

// Each typed Virsh method: the exact argv libvirt receives, and what it makes of virsh's output.

const URI = 'qemu:///test';
const ok = (args: string[], stdout = '') => ({ cmd: 'virsh', args: ['-c', URI, ...args], result: { stdout } });
const failing = (args: string[], stderr: string) => ({
  cmd: 'virsh',
  args: ['-c', URI, ...args],
  result: { stderr, exitCode: 1 },
});

/** Runs `use` against a Virsh whose only processes are `expected`, checking every one was made. */
async function withVirsh<T>(
  expected: ConstructorParameters<typeof FakeRunner>[0],
  use: (v: Virsh) => Promise<T>,
): Promise<T> {
  const runner = new FakeRunner(expected);
  const out = await use(new Virsh(runner, URI));
  runner.done();
  return out;
}

test('VM changes spell reset, suspend, resume, domrename, setmem, setvcpus, blockresize, snapshot-*', async () => {
  const calls: [string[], (v: Virsh) => Promise<unknown>][] = [
    [['reset', 'a'], (v) => v.reset('a')],
    [['suspend', 'a'], (v) => v.suspend('a')],
    [['resume', 'a'], (v) => v.resume('a')],
    [['domrename', 'a', 'b'], (v) => v.rename('a', 'b')],
    [['setmem', 'a', '2097152', '--live'], (v) => v.setLiveMemory('a', 2 * 1024 ** 3)],
    [['setvcpus', 'a', '3', '--live'], (v) => v.setLiveVcpus('a', 3)],
    [['blockresize', 'a', 'vdb', '1073741824B'], (v) => v.blockResize('a', 'vdb', 1024 ** 3)],
    [['snapshot-delete', 'a', 's'], (v) => v.deleteSnapshot('a', 's')],
    [['snapshot-delete', 'a', 's', '--metadata'], (v) => v.deleteSnapshot('a', 's', { metadataOnly: true })],
    [['snapshot-revert', 'a', 's'], (v) => v.revertSnapshot('a', 's')],
    [
      ['snapshot-create-as', 'a', 's', '--atomic', '--disk-only'],
      (v) => v.createSnapshot({ vm: 'a', name: 's', external: true }),
    ],
    [['domcapabilities', '--machine', 'q35', '--arch', 'x86_64'], (v) => v.domainCapabilities()],
  ];
  for (const [args, call] of calls) await withVirsh([ok(args)], call);
});

test('a missing VM is notFound with reason domain.notFound, whichever method asked', async () => {
  const gone = "error: failed to get domain 'a'\n";
  const calls: [string[], (v: Virsh) => Promise<unknown>][] = [
    [['reset', 'a'], (v) => v.reset('a')],
    [['snapshot-list', 'a', '--name'], (v) => v.snapshotNames('a')],
  ];
  for (const [args, call] of calls) {
    await assert.rejects(
      withVirsh([failing(args, gone)], call),
      (err: unknown) => err instanceof VmsError && err.code === 'notFound' && err.reason === 'domain.notFound',
    );
  }
});

test('setGuestVcpus is true only when virsh could bring them online', async () => {
  assert.equal(await withVirsh([ok(['setvcpus', 'a', '2', '--guest'])], (v) => v.setGuestVcpus('a', 2)), true);
  const noAgent = 'error: Guest agent is not responding: QEMU guest agent is not connected\n';
  assert.equal(
    await withVirsh([failing(['setvcpus', 'a', '2', '--guest'], noAgent)], (v) => v.setGuestVcpus('a', 2)),
    false,
  );
});

test('memoryStats reads dommemstat in KiB by name', async () => {
  const out = 'actual 2097152\nswap_in 0\nrss 312000\n\n';
  const stats = await withVirsh([ok(['dommemstat', 'a'], out)], (v) => v.memoryStats('a'));
  assert.deepEqual(
    [...stats],
    [
      ['actual', 2097152],
      ['swap_in', 0],
      ['rss', 312000],
    ],
  );
  assert.deepEqual([...parseMemoryStats('')], []);
});

test('domainStats runs one domstats for every domain and groups it by name', async () => {
  const out = "Domain: 'a'\n  state.state=1\n  balloon.maximum=262144\n\nDomain: 'b'\n  state.state=5\n\n";
  const stats = await withVirsh([ok(['domstats', '--raw', '--state', '--balloon', '--vcpu', '--block'], out)], (v) =>
    v.domainStats(),
  );
  assert.deepEqual([...stats.keys()], ['a', 'b']);
  assert.equal(stats.get('a')!['balloon.maximum'], '262144');
  assert.equal(stateName(stats.get('a')!['state.state']), 'running');
  assert.equal(stateName(stats.get('b')!['state.state']), 'shut off');
  assert.equal(stateName(undefined), 'unknown');
});

test('daemonVersion reads `virsh version --daemon`; answers is true only when `version` works', async () => {
  const out =
    'Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\nRunning hypervisor: QEMU 7.2.0\n' +
    'Running against daemon: 9.0.0\n\n';
  assert.equal(await withVirsh([ok(['version', '--daemon'], out)], (v) => v.daemonVersion()), '9.0.0');
  assert.equal(await withVirsh([ok(['version', '--daemon'], 'odd\n')], (v) => v.daemonVersion()), undefined);
  assert.equal(await withVirsh([ok(['version'], out)], (v) => v.answers(1000)), true);
  const down =
    'error: failed to connect to the hypervisor\nerror: Failed to connect socket: No such file or directory\n';
  assert.equal(await withVirsh([failing(['version'], down)], (v) => v.answers(1000)), false);
});

const NET_INFO =
  'Name:           default\nUUID:           9d2c3e8e-1\nActive:         yes\nPersistent:     yes\n' +
  'Autostart:      no\nBridge:         virbr0\n\n';

test('netInfo: net-info read; reason network.notFound; networkState: any failure is undefined', async () => {
  assert.deepEqual(await withVirsh([ok(['net-info', 'default'], NET_INFO)], (v) => v.netInfo('default')), {
    name: 'default',
    uuid: '9d2c3e8e-1',
    active: true,
    persistent: true,
    autostart: false,
    bridge: 'virbr0',
  });
  const missing = "error: failed to get network 'lab'\nerror: Network not found: no network with matching name 'lab'\n";
  await assert.rejects(
    withVirsh([failing(['net-info', 'lab'], missing)], (v) => v.netInfo('lab')),
    (err: unknown) => err instanceof VmsError && err.reason === 'network.notFound',
  );
  assert.equal(await withVirsh([failing(['net-info', 'lab'], missing)], (v) => v.networkState('lab')), undefined);
  assert.equal(parseNetInfo('Name: x\nActive: no\n').active, false);
});

test('poolNames trims the column padding; pool reads pool-info and pool-dumpxml into one PoolInfo', async () => {
  assert.deepEqual(
    await withVirsh([ok(['pool-list', '--all', '--name'], 'default \nimages  \n\n')], (v) => v.poolNames()),
    ['default', 'images'],
  );
  const info =
    'Name:           images\nUUID:           u-1\nState:          running\nPersistent:     yes\n' +
    'Autostart:      yes\nCapacity:       1000\nAllocation:     400\nAvailable:      600\n\n';
  const xml = "<pool type='dir'><name>images</name><target><path>/srv/images</path></target></pool>\n";
  const pool = await withVirsh(
    [ok(['pool-info', 'images', '--bytes'], info), ok(['pool-dumpxml', 'images'], xml)],
    (v) => v.pool('images'),
  );
  assert.deepEqual(pool, {
    name: 'images',
    uuid: 'u-1',
    type: 'dir',
    path: '/srv/images',
    state: 'running',
    persistent: true,
    autostart: true,
    capacity: 1000,
    allocation: 400,
    free: 600,
  });
  const missing =
    "error: failed to get pool 'x'\nerror: Storage pool not found: no storage pool with matching name 'x'\n";
  await assert.rejects(
    withVirsh([failing(['pool-info', 'x', '--bytes'], missing)], (v) => v.pool('x')),
    (err: unknown) => err instanceof VmsError && err.reason === 'pool.notFound',
  );
});

test('snapshotNames, snapshot: names one a line; a snapshot parsed; unknown: reason snapshot.notFound', async () => {
  assert.deepEqual(
    await withVirsh([ok(['snapshot-list', 'a', '--name'], 's1\ns 2\n\n')], (v) => v.snapshotNames('a')),
    ['s1', 's 2'],
  );
  const xml =
    '<domainsnapshot><name>s1</name><state>shutoff</state><creationTime>1700000000</creationTime>' +
    "<disks><disk name='vda' snapshot='internal'/></disks></domainsnapshot>\n";
  const facts = await withVirsh([ok(['snapshot-dumpxml', 'a', 's1'], xml)], (v) => v.snapshot('a', 's1'));
  assert.equal(facts.name, 's1');
  assert.equal(facts.kind, 'internal');
  const missing = "error: Domain snapshot not found: no domain snapshot with matching name 'x'\n";
  await assert.rejects(
    withVirsh([failing(['snapshot-dumpxml', 'a', 'x'], missing)], (v) => v.snapshot('a', 'x')),
    (err: unknown) => err instanceof VmsError && err.reason === 'snapshot.notFound' && err.code === 'failed',
  );
});

test("agentCommand passes the JSON and libvirt's timeout as they are", async () => {
  const json = '{"execute":"guest-ping"}';
  const out = await withVirsh([ok(['qemu-agent-command', 'a', json, '--timeout', '5'], '{"return":{}}\n')], (v) =>
    v.agentCommand('a', json, 5),
  );
  assert.equal(out, '{"return":{}}\n');
});

test('virshCommand spells the batch commands as the methods do', () => {
  assert.deepEqual(virshCommand.dumpxml('a'), ['dumpxml', 'a']);
  assert.deepEqual(virshCommand.dumpxml('a', { inactive: true }), ['dumpxml', 'a', '--inactive']);
  assert.deepEqual(virshCommand.dumpxml('a', { inactive: true, securityInfo: true }), [
    'dumpxml',
    'a',
    '--inactive',
    '--security-info',
  ]);
  assert.deepEqual(virshCommand.dumpxml('a', { inactive: true, xpath: '/domain/metadata/*' }), [
    'dumpxml',
    'a',
    '--inactive',
    '--xpath',
    '/domain/metadata/*',
  ]);
  assert.deepEqual(virshCommand.snapshotNames('a'), ['snapshot-list', 'a', '--name']);
  assert.deepEqual(virshCommand.snapshotTable('a'), ['snapshot-list', 'a']);
  assert.deepEqual(virshCommand.snapshotCurrent('a'), ['snapshot-current', 'a', '--name']);
  assert.deepEqual(virshCommand.snapshotDumpxml('a', 's'), ['snapshot-dumpxml', 'a', 's']);
  assert.deepEqual(virshCommand.poolInfo('p'), ['pool-info', 'p', '--bytes']);
  assert.deepEqual(virshCommand.poolDumpxml('p'), ['pool-dumpxml', 'p']);
});

test("bootstrap's network lines: the system libvirt, and the net-info check run the same way (sudo too)", () => {
  assert.deepEqual(systemVirshLine('version'), ['virsh', '-c', 'qemu:///system', 'version']);
  assert.deepEqual(defaultNetworkLines.define('/n.xml'), ['virsh', '-c', 'qemu:///system', 'net-define', '/n.xml']);
  assert.deepEqual(defaultNetworkLines.autostart(), ['virsh', '-c', 'qemu:///system', 'net-autostart', 'default']);
  assert.deepEqual(defaultNetworkLines.start(), ['virsh', '-c', 'qemu:///system', 'net-start', 'default']);
  assert.deepEqual(networkLineCheck(['sudo', ...defaultNetworkLines.define('/n.xml')]), {
    makes: 'defined',
    info: ['sudo', 'virsh', '-c', 'qemu:///system', 'net-info', 'default'],
  });
  assert.deepEqual(networkLineCheck(defaultNetworkLines.start()), {
    makes: 'active',
    info: ['virsh', '-c', 'qemu:///system', 'net-info', 'default'],
  });
  assert.equal(networkLineCheck(defaultNetworkLines.autostart()), undefined);
  assert.equal(networkLineCheck(['systemctl', 'enable', '--now', 'libvirtd.service']), undefined);
});

// ---- reasons -------------------------------------------------------------------------------------------------------

test('classifyVirshError names the reason of each failure the core decides on (libvirt 9.0 wording)', () => {
  const cases: [string, string | undefined, string, ErrorReason | undefined][] = [
    [
      'error: failed to connect to the hypervisor\nerror: Failed to connect socket: No such file or directory\n',
      undefined,
      'unreachable',
      'libvirt.unreachable',
    ],
    [
      'error: failed to connect to the hypervisor\nerror: Failed to connect socket: Permission denied\n',
      undefined,
      'unreachable',
      'libvirt.denied',
    ],
    [
      "error: failed to get domain 'x'\nerror: Domain not found: no domain with matching name 'x'\n",
      'x',
      'notFound',
      'domain.notFound',
    ],
    [
      "error: Domain snapshot not found: no domain snapshot with matching name 's'\n",
      'x',
      'failed',
      'snapshot.notFound',
    ],
    [
      "error: failed to get network 'n'\nerror: Network not found: no network with matching name 'n'\n",
      undefined,
      'failed',
      'network.notFound',
    ],
    [
      "error: failed to get pool 'p'\nerror: Storage pool not found: no storage pool with matching name 'p'\n",
      undefined,
      'failed',
      'pool.notFound',
    ],
    [
      'error: Operation not supported: internal snapshots of a VM with pflash based firmware are not supported\n',
      'x',
      'failed',
      'snapshot.uefiUnsupported',
    ],
    [
      'error: Failed to attach device\nerror: internal error: No more available PCI slots\n',
      'x',
      'failed',
      'pci.noSlots',
    ],
    [
      "error: Failed to attach device\nerror: internal error: unable to execute QEMU command 'blockdev-add': " +
        'Failed to get "write" lock\n',
      'x',
      'failed',
      'disk.locked',
    ],
    [
      'error: Failed to attach device\n' +
        'error: unsupported configuration: virtiofs does not yet support read-only mode\n',
      'x',
      'failed',
      'virtiofs.readonlyUnsupported',
    ],
    [
      "error: Failed to attach device\nerror: unsupported configuration: 'virtiofs' requires shared memory\n",
      'x',
      'failed',
      'virtiofs.needsSharedMemory',
    ],
    ['error: Guest agent is not responding: QEMU guest agent is not connected\n', 'x', 'failed', 'agent.unavailable'],
    ['error: argument unsupported: QEMU guest agent is not configured\n', 'x', 'failed', 'agent.unavailable'],
    ['error: Guest agent is not responding: Guest agent not available for now\n', 'x', 'failed', 'agent.unavailable'],
    [
      "error: internal error: unable to execute QEMU agent command 'guest-exec': Failed to execute child process\n",
      'x',
      'failed',
      'agent.failed',
    ],
    ['error: Requested operation is not valid: domain is not running\n', 'x', 'conflict', 'domain.notRunning'],
    ["error: operation failed: domain 'x' already exists with uuid 6695eb01\n", undefined, 'conflict', undefined],
    ['error: internal error: something odd\n', 'x', 'failed', undefined],
  ];
  for (const [stderr, subject, code, reason] of cases) {
    const err = classifyVirshError(['attach-device', 'x'], { stdout: '', stderr, exitCode: 1 }, URI, subject);
    assert.equal(err.code, code, stderr);
    assert.equal(err.reason, reason, stderr);
  }
});
