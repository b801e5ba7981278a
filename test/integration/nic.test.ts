import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { testbed } from '../helpers/testbed.js';

// NICs are plugged into a running tiny guest and checked from inside it (/sys/class/net). Only user-mode networking
// is used: no libvirt network is started, no bridge is touched, no traffic leaves the machine.

const bed = testbed('nic');
after(() => bed.cleanup());

const vm = bed.name('run'); // running: hotplug
const off = bed.name('off'); // never started: config-only changes, and the other VM for the MAC clash
const config = (n: string) => bed.virsh('dumpxml', n, '--inactive');
const live = (n: string) => bed.virsh('dumpxml', n);

/** The guest's interfaces as "name mac" lines (lo left out), once they stop changing or `want` says so. */
async function guestInterfaces(want: (lines: string[]) => boolean): Promise<string[]> {
  let lines: string[] = [];
  for (let i = 0; i < 30; i++) {
    const out = await bed.guest(vm, 'for i in /sys/class/net/*; do echo "${i##*/} $(cat $i/address)"; done');
    lines = out
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /^\S+ [0-9a-f:]{17}$/.test(l) && !l.startsWith('lo '));
    if (want(lines)) return lines;
    await sleep(1000);
  }
  assert.fail(`the guest's interfaces never became what the test waits for: ${JSON.stringify(lines)}`);
}

/** Runs a command that must fail with `code` and `message`, and checks that neither definition of `n` changed. */
async function refused(n: string, args: string[], code: number, message: RegExp) {
  const [savedBefore, liveBefore] = [config(n), live(n)];
  const r = await bed.vms(args);
  assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.match(r.stderr, /^hint: /m);
  assert.equal(config(n), savedBefore, `${args.join(' ')} changed the saved definition`);
  assert.equal(live(n), liveBefore, `${args.join(' ')} changed the running VM`);
}

describe('vms nic', () => {
  const mac = '52:54:00:5e:11:01';
  before(async () => {
    await bed.createTiny(vm, ['--start']);
    await bed.createTiny(off);
  });

  test('add --user with a MAC on a running VM: a new interface with that MAC appears in the guest; live and in the config', async () => {
    assert.deepEqual(await guestInterfaces(() => true), [], 'the tiny guest starts without a NIC (--network none)');
    const r = await bed.vms(['nic', 'add', vm, '--user', '--mac', mac.toUpperCase(), '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json, {
      name: vm,
      live: true,
      nic: { index: 0, type: 'user', model: 'virtio', mac, inConfig: true, live: true },
    });
    assert.deepEqual(await guestInterfaces((l) => l.length > 0), [`eth0 ${mac}`]);
    assert.match(
      config(vm),
      new RegExp(`<interface type='user'>\\s*<mac address='${mac}'/>\\s*<model type='virtio'/>`),
    );
    assert.match(live(vm), new RegExp(`<mac address='${mac}'/>`));
  });

  test('list: index, source, model and MAC; --json', async () => {
    const r = await bed.vms(['nic', 'list', vm]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^#\s+SOURCE\s+MODEL\s+MAC\s+GUEST$/m);
    assert.match(
      r.stdout,
      new RegExp(`^0\\s+user\\s+virtio\\s+${mac}\\s+-$`, 'm'),
      'no guest agent in the tiny guest: no name',
    );
    const json = await bed.vms(['nic', 'list', vm, '--json']);
    assert.deepEqual(json.json, {
      name: vm,
      state: 'running',
      nics: [{ index: 0, type: 'user', model: 'virtio', mac, inConfig: true, live: true }],
    });
  });

  test('a MAC another VM already has: exit 4 and nothing changed', async () => {
    await refused(
      off,
      ['nic', 'add', off, '--user', '--mac', mac],
      4,
      new RegExp(`error: MAC address ${mac} is already used by a NIC of '${vm}'`),
    );
    await refused(vm, ['nic', 'add', vm, '--user', '--mac', mac], 4, /already used/);
  });

  test('del by index: gone from the guest, the running VM and the config', async () => {
    const r = await bed.vms(['nic', 'del', vm, '0']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `removed NIC 0 from ${vm}: user, virtio, ${mac} (live and from its config)`);
    assert.deepEqual(await guestInterfaces((l) => l.length === 0), []);
    assert.doesNotMatch(config(vm), /<interface/);
    assert.doesNotMatch(live(vm), /<interface/);
  });

  test('--model e1000e with an automatic MAC: the guest binds its e1000e driver; del by MAC', async () => {
    const r = await bed.vms(['nic', 'add', vm, '--user', '--model', 'e1000e', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const picked = r.json.nic.mac;
    assert.match(picked, /^52:54:00(:[0-9a-f]{2}){3}$/, "libvirt picked a MAC with QEMU's prefix");
    assert.equal(r.json.nic.model, 'e1000e');
    const [line] = await guestInterfaces((l) => l.length > 0);
    assert.equal(line!.split(' ')[1], picked);
    const driver = await bed.guest(vm, `basename $(readlink /sys/class/net/${line!.split(' ')[0]}/device/driver)`);
    assert.equal(driver.trim(), 'e1000e');
    const del = await bed.vms(['nic', 'del', vm, picked.toUpperCase(), '--json']);
    assert.equal(del.code, 0, del.stderr);
    assert.equal(del.json.nic.mac, picked);
    assert.deepEqual(await guestInterfaces((l) => l.length === 0), []);
    assert.doesNotMatch(config(vm), /<interface/);
  });

  test('on a shut-off VM only the config changes; list and del work there too', async () => {
    const r = await bed.vms(['nic', 'add', off, '--user', '--mac', mac]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `added NIC 0 to ${off}: user, virtio, ${mac} (in its config; ${off} is not running)`);
    assert.match(config(off), new RegExp(`<mac address='${mac}'/>`));
    const list = await bed.vms(['nic', 'list', off, '--json']);
    assert.deepEqual(list.json.nics, [{ index: 0, type: 'user', model: 'virtio', mac, inConfig: true }]);
    const del = await bed.vms(['nic', 'del', off, mac]);
    assert.equal(del.code, 0, del.stderr);
    assert.doesNotMatch(config(off), /<interface/);
  });

  test('bad MAC or model: exit 2; unknown VM: exit 3; unknown NIC: exit 3; nothing changed', async () => {
    await refused(
      vm,
      ['nic', 'add', vm, '--user', '--mac', '52:54:00:zz:00:01'],
      2,
      /error: invalid MAC address '52:54:00:zz:00:01'/,
    );
    await refused(vm, ['nic', 'add', vm, '--user', '--mac', '01:00:5e:00:00:01'], 2, /multicast/);
    await refused(vm, ['nic', 'add', vm, '--user', '--model', 'rtl8139'], 2, /error: invalid NIC model 'rtl8139'/);
    await refused(
      vm,
      ['nic', 'add', vm, '--user', '--network', 'default'],
      2,
      /only one of --network, --bridge and --user/,
    );
    await refused(vm, ['nic', 'del', vm, '0'], 3, new RegExp(`error: ${vm} has no NIC 0`));
    await refused(vm, ['nic', 'del', vm, 'eth0'], 2, /neither a NIC index nor a MAC address/);
    for (const args of [
      ['add', bed.name('ghost'), '--user'],
      ['del', bed.name('ghost'), '0'],
      ['list', bed.name('ghost')],
    ]) {
      const r = await bed.vms(['nic', ...args]);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /error: no VM named '.*-ghost'\nhint: `vms list` shows the VMs/);
    }
  });

  test('a network or bridge that is not there: a clear error and nothing changed (no network is started)', async () => {
    await refused(
      vm,
      ['nic', 'add', vm, '--network', 'nosuchnet'],
      3,
      /error: libvirt has no network named 'nosuchnet'\nhint: .*--user/,
    );
    await refused(
      vm,
      ['nic', 'add', vm, '--bridge', 'nosuchbr0'],
      3,
      /error: this host has no network interface named 'nosuchbr0'/,
    );
    await refused(vm, ['nic', 'add', vm, '--bridge', 'lo'], 2, /error: 'lo' is not a bridge/);
  });

  test('a libvirt network that exists but is not started is refused (exit 4) with the net-start hint', async (t) => {
    // One of the test's own, defined and never started (no bridge appears): libvirt's default network may be active
    // or not on a test machine; its own hints (`vms bootstrap`) are unit-tested.
    const net = bed.name('lab');
    const xml = join(bed.dir, 'lab-network.xml');
    writeFileSync(xml, `<network><name>${net}</name></network>\n`);
    bed.virsh('net-define', xml);
    t.after(() => bed.virsh('net-undefine', net));
    assert.match(bed.virsh('net-info', net), /^Active:\s+no$/m);
    await refused(
      vm,
      ['nic', 'add', vm, '--network', net],
      4,
      new RegExp(
        `error: libvirt's network '${net}' is not active\nhint: \`virsh net-start ${net}\` starts it; or use --user`,
      ),
    );
  });
});
