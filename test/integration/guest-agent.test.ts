import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { VmsError, type ErrorReason } from '../../src/errors.js';
import { GuestAgent } from '../../src/libvirt/guest-agent.js';
import { Virsh } from '../../src/libvirt/virsh.js';
import { ExecaRunner } from '../../src/runner.js';
import { URI, testbed } from '../helpers/testbed.js';

// The libvirt wrappers against the real virsh and libvirtd: the reasons they classify failures by, in libvirt's own
// words of this host. The tiny guest has an agent channel (vms' domain template) but no agent inside: what every
// guest agent call must then say is agent.unavailable, quickly.

const bed = testbed('agent');
after(() => bed.cleanup());

const running = bed.name('run');
const off = bed.name('off');
const virsh = new Virsh(new ExecaRunner(), URI);

const hasReason = (reason: ErrorReason, code?: string) => (err: unknown) => {
  assert.ok(err instanceof VmsError, String(err));
  assert.equal(err.reason, reason, err.message);
  if (code) assert.equal(err.code, code, err.message);
  return true;
};

describe('the libvirt boundary against the real virsh', () => {
  before(async () => {
    await bed.createTiny(running, ['--start']);
    await bed.createTiny(off);
  });

  test('a running VM without a guest agent: every agent call is agent.unavailable, within seconds', async () => {
    const agent = new GuestAgent(virsh, running);
    const t0 = Date.now();
    await assert.rejects(agent.ping(), hasReason('agent.unavailable'));
    await assert.rejects(agent.networkInterfaces(), hasReason('agent.unavailable'));
    await assert.rejects(agent.exec({ argv: ['true'] }), hasReason('agent.unavailable'));
    assert.equal(await agent.answers(), false);
    assert.ok(Date.now() - t0 < 30_000, `took ${Date.now() - t0} ms`);
    assert.equal(await virsh.setGuestVcpus(running, 1), false, 'no agent to bring vCPUs online');
  });

  test('a shut-off VM: the agent call is refused as domain.notRunning (exit 4); a missing VM is domain.notFound', async () => {
    await assert.rejects(new GuestAgent(virsh, off).ping(), hasReason('domain.notRunning', 'conflict'));
    await assert.rejects(new GuestAgent(virsh, bed.name('none')).ping(), hasReason('domain.notFound', 'notFound'));
  });

  test("an unknown snapshot, network and pool: their reasons, from libvirt's own words", async () => {
    await assert.rejects(virsh.snapshot(off, 'no-such-snapshot'), hasReason('snapshot.notFound'));
    await assert.rejects(virsh.netInfo(`${bed.id}-no-such-net`), hasReason('network.notFound'));
    assert.equal(await virsh.networkState(`${bed.id}-no-such-net`), undefined);
    await assert.rejects(virsh.pool(`${bed.id}-no-such-pool`), hasReason('pool.notFound'));
  });

  test('typed reads of a real VM: its snapshots, its balloon, domstats and the daemon version', async () => {
    assert.deepEqual(await virsh.snapshotNames(off), []);
    assert.ok((await virsh.memoryStats(running)).has('actual'), 'dommemstat reports the balloon');
    const stats = await virsh.domainStats();
    assert.equal(stats.get(off)?.['state.state'], '5', 'shut off');
    assert.match((await virsh.daemonVersion()) ?? '', /^\d+\.\d+\.\d+$/);
  });
});
