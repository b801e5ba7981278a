import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listVms } from '../../../src/core/vm/list.js';
import { renderMetadata } from '../../../src/libvirt/metadata.js';
import { parseDomstats } from '../../../src/libvirt/virsh-output.js';
import { FakeRunner } from '../../helpers/fake-runner.js';
import { runCli } from '../../helpers/test-io.js';
import { batchCall, fakeContext, virshCall } from '../../helpers/virsh-fake.js';

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

test('vms list: memory, vCPUs, disk and vms metadata of each VM, sorted by name; the table shows them', async () => {
  const stats = [
    "Domain: 'zeta'",
    '  state.state=1',
    '  balloon.maximum=524288',
    '  vcpu.current=2',
    '  vcpu.maximum=4',
    '  block.0.capacity=8589934592',
    '',
    "Domain: 'alpha'",
    '  state.state=5',
    '  balloon.maximum=262144',
    '  vcpu.maximum=1',
    '',
  ].join('\n');
  const zeta = renderMetadata({
    profile: 'dev',
    createdFrom: '/iso/archlinux.iso',
    pending: 'profile',
    bases: [],
    made: [],
  });
  const metadata = (name: string) => `dumpxml ${name} --inactive --xpath "/domain/metadata/*"`;
  const calls = () => [
    virshCall(['domstats', '--raw', '--state', '--balloon', '--vcpu', '--block'], stats),
    batchCall([metadata('zeta'), metadata('alpha')], [zeta, '']),
  ];
  const { ctx, runner } = fakeContext(calls());
  assert.deepEqual(await listVms(ctx), [
    {
      name: 'alpha',
      state: 'shut off',
      profile: undefined,
      memory: 256 * 2 ** 20,
      cpus: 1,
      disk: undefined,
      createdFrom: undefined,
      pending: undefined,
    },
    {
      name: 'zeta',
      state: 'running',
      profile: 'dev',
      memory: 512 * 2 ** 20,
      cpus: 2,
      disk: 8 * 2 ** 30,
      createdFrom: '/iso/archlinux.iso',
      pending: 'profile',
    },
  ]);
  runner.done();

  const cli = new FakeRunner(calls());
  const r = await runCli(['list'], { runner: cli });
  cli.done();
  assert.deepEqual(
    r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => l.split(/ {2,}/)),
    [
      ['NAME', 'STATE', 'PROFILE', 'MEMORY', 'CPUS', 'DISK', 'FROM'],
      ['alpha', 'shut off', '-', '256M', '1', '-', '-'],
      ['zeta', 'running', 'dev (unfinished)', '512M', '2', '8G', 'archlinux.iso'],
    ],
  );
});

test('vms list with no VMs says how to make one (and runs no metadata batch)', async () => {
  const runner = new FakeRunner([virshCall(['domstats', '--raw', '--state', '--balloon', '--vcpu', '--block'], '\n')]);
  const r = await runCli(['list'], { runner });
  runner.done();
  assert.deepEqual([r.exitCode, r.stdout], [0, 'no VMs yet: `vms create NAME` makes one\n']);
});
