import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../../src/config.js';
import { createContext } from '../../../src/core/context.js';
import {
  addNic,
  checkBridge,
  deleteNic,
  guestInterfaceNames,
  listNics,
  parseMac,
  parseNicModel,
  parseNicSource,
} from '../../../src/core/devices/nic.js';
import { VmsError, interrupted } from '../../../src/errors.js';
import { placeDevices } from '../../../src/libvirt/device-xml.js';
import { parseDomainXml } from '../../../src/libvirt/domain-parse.js';
import { detachNicXml, nicXml, readNics, type NicSpec } from '../../../src/libvirt/nic-xml.js';
import type { Runner } from '../../../src/runner.js';
import { FakeRunner, type Expected } from '../../helpers/fake-runner.js';
import { rejection, refusal } from '../../helpers/refusal.js';
import { stepLog } from '../../helpers/step-log.js';
import { assertValidDomainXml } from '../../helpers/validate-xml.js';

const usage = (fn: () => unknown, message: RegExp) =>
  assert.throws(
    fn,
    (err: unknown) => err instanceof VmsError && err.code === 'usage' && message.test(err.message) && Boolean(err.hint),
  );

/** A device inside the smallest domain libvirt's schema accepts, to validate the device with virt-xml-validate. */
const inDomain = (device: string) =>
  `<domain type='qemu'><name>t</name><memory>65536</memory><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>${device}</devices></domain>`;

// ---- options ------------------------------------------------------------------------------------------------------

test('parseMac: auto lets libvirt pick; a unicast MAC is lower-cased', () => {
  assert.equal(parseMac('auto'), undefined);
  assert.equal(parseMac('52:54:00:AB:cd:0F'), '52:54:00:ab:cd:0f');
  assert.equal(parseMac('02:00:00:00:00:01'), '02:00:00:00:00:01');
});

test('parseMac refuses malformed, multicast, all-zero and fe: addresses', () => {
  for (const bad of [
    '',
    '52:54:00:ab:cd',
    '52:54:00:ab:cd:ef:01',
    '52-54-00-ab-cd-ef',
    '5254.00ab.cdef',
    '52:54:00:ab:cd:eg',
    ' 52:54:00:ab:cd:ef',
  ]) {
    usage(() => parseMac(bad), /^invalid MAC address/);
  }
  usage(() => parseMac('01:00:5e:00:00:01'), /multicast/);
  usage(() => parseMac('ff:ff:ff:ff:ff:ff'), /multicast/);
  usage(() => parseMac('00:00:00:00:00:00'), /not a usable/);
  usage(() => parseMac('fe:54:00:ab:cd:ef'), /starts with fe/);
});

test('parseNicModel: virtio and e1000e only', () => {
  assert.equal(parseNicModel('virtio'), 'virtio');
  assert.equal(parseNicModel('e1000e'), 'e1000e');
  for (const bad of ['rtl8139', 'e1000', 'VIRTIO', '']) usage(() => parseNicModel(bad), /^invalid NIC model/);
});

test("parseNicSource: libvirt's default network unless --network, --bridge or --user says otherwise", () => {
  assert.deepEqual(parseNicSource({}), { kind: 'network', name: 'default' });
  assert.deepEqual(parseNicSource({ network: 'lab' }), { kind: 'network', name: 'lab' });
  assert.deepEqual(parseNicSource({ bridge: 'br0' }), { kind: 'bridge', name: 'br0' });
  assert.deepEqual(parseNicSource({ user: true }), { kind: 'user' });
  usage(() => parseNicSource({ network: 'lab', user: true }), /only one of/);
  usage(() => parseNicSource({ network: 'lab', bridge: 'br0' }), /only one of/);
  usage(() => parseNicSource({ bridge: 'br0', user: true }), /only one of/);
  for (const bad of ['', 'a/b', 'name with space', 'abcdefghijklmnop'])
    usage(() => parseNicSource({ bridge: bad }), /^invalid bridge name/);
  for (const bad of ['', 'a/b', "it's", 'user', 'none'])
    usage(() => parseNicSource({ network: bad }), /^invalid network/);
});

// ---- XML ----------------------------------------------------------------------------------------------------------

test('nicXml: each source, with or without a MAC, as libvirt expects it', async () => {
  const cases: [NicSpec, string][] = [
    [{ source: { kind: 'user' }, model: 'virtio' }, `<interface type="user">\n  <model type="virtio"/>\n</interface>`],
    [
      { source: { kind: 'network', name: 'default' }, model: 'e1000e', mac: '52:54:00:12:34:56' },
      `<interface type="network">\n  <mac address="52:54:00:12:34:56"/>\n  <source network="default"/>\n  <model type="e1000e"/>\n</interface>`,
    ],
    [
      { source: { kind: 'bridge', name: 'br0' }, model: 'virtio' },
      `<interface type="bridge">\n  <source bridge="br0"/>\n  <model type="virtio"/>\n</interface>`,
    ],
  ];
  for (const [spec, expected] of cases) {
    const xml = await nicXml(spec);
    assert.equal(xml, expected);
    assertValidDomainXml(inDomain(xml), `nic ${spec.source.kind}`);
  }
});

const FIXTURE = readFileSync(new URL('../../fixtures/dumpxml-efi-running.xml', import.meta.url), 'utf8');

test('readNics reads type, source, model and MAC of each interface; detachNicXml drops address and alias', async () => {
  const nics = readNics(await parseDomainXml(FIXTURE));
  assert.deepEqual(
    nics.map(({ node: _, ...facts }) => facts),
    [
      { type: 'network', source: 'default', model: 'virtio', mac: '52:54:00:6b:3c:58' },
      { type: 'bridge', source: 'br0', model: 'virtio', mac: '52:54:00:aa:bb:cc' },
      { type: 'user', source: undefined, model: 'virtio', mac: '52:54:00:11:22:33' },
    ],
  );
  const detach = await detachNicXml(nics[0]!);
  assert.match(detach, /^<interface type="network">/);
  assert.match(detach, /<mac address="52:54:00:6b:3c:58"\/>/);
  assert.match(detach, /<source network="default"/);
  assert.doesNotMatch(detach, /<address|<alias/);
  assert.ok(nics[0]!.node.address, 'the parsed definition itself is left alone');
});

test('placeDevices: the saved devices in order, then the live-only ones; no live flag when the VM is off', () => {
  const key = (d: string) => d;
  assert.deepEqual(placeDevices(['a', 'b'], undefined, key), [
    { device: 'a', inConfig: true, live: undefined },
    { device: 'b', inConfig: true, live: undefined },
  ]);
  assert.deepEqual(placeDevices(['a', 'b'], ['c', 'a'], key), [
    { device: 'a', inConfig: true, live: true },
    { device: 'b', inConfig: true, live: false },
    { device: 'c', inConfig: false, live: true },
  ]);
});

// ---- add and del against a fake virsh -----------------------------------------------------------------------------

const URI = 'qemu:///system';
const virsh = (
  args: readonly string[] | ((args: readonly string[]) => boolean),
  stdout = '',
  exitCode = 0,
): Expected => ({
  cmd: 'virsh',
  args: typeof args === 'function' ? (a) => a[0] === '-c' && a[1] === URI && args(a.slice(2)) : ['-c', URI, ...args],
  result: { stdout, exitCode, stderr: exitCode ? 'error: failed\n' : '' },
});
const domain = (name: string, nics: string[]) =>
  `<domain type='qemu'><name>${name}</name><uuid>u-${name}</uuid><memory unit='KiB'>262144</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices>${nics.join('')}</devices></domain>\n`;
const userNic = (mac: string) => `<interface type='user'><mac address='${mac}'/><model type='virtio'/></interface>`;
const inactive = (name: string) => ['dumpxml', name, '--inactive', '--security-info'];
/** MACs with hex letters (a MAC given in capitals must still match). */
const MAC1 = '52:54:00:ab:cd:01';
const MAC2 = '52:54:00:ab:cd:02';
/** A saved user-mode NIC of a shut-off VM as `vms nic list` shows it. */
const savedUserNic = (index: number, mac: string) => ({
  index,
  type: 'user',
  source: undefined,
  model: 'virtio',
  mac,
  guestName: undefined,
  inConfig: true,
  live: undefined,
});

/** Answers `virsh batch` scripts (their markers are made at run time): each command's output from `answer`. */
function answeringBatches(fake: FakeRunner, answer: (command: string) => string): Runner {
  return {
    async run(cmd, args, opts) {
      const r = await fake.run(cmd, args, opts);
      const marker = /^echo (@@vms-\d+-\d+@@)0;/.exec(args[2] ?? '')?.[1];
      if (!marker) return r;
      const commands = args[2]!.split('; ').filter((c) => !c.startsWith('echo '));
      return { ...r, stdout: commands.map((c, i) => `${marker}${i}\n${answer(c)}`).join('') + `${marker}end\n` };
    },
    interactive: (cmd, args) => fake.interactive(cmd, args),
  };
}

function fakeContext(expected: Expected[], batch: (command: string) => string = () => '') {
  const fake = new FakeRunner(expected);
  return { fake, ctx: createContext({ config: resolveConfig({ env: {} }), runner: answeringBatches(fake, batch) }) };
}

test("guestInterfaceNames maps MACs to the guest's names; anything unreadable is no names", async () => {
  const answer = JSON.stringify({
    return: [
      { name: 'lo', 'hardware-address': '00:00:00:00:00:00' },
      { name: 'enp1s0', 'hardware-address': '52:54:00:AA:BB:CC', 'ip-addresses': [] },
      { name: 'sit0' },
    ],
  });
  const ask = ['qemu-agent-command', 'a', '{"execute":"guest-network-get-interfaces"}', '--timeout', '2'];
  const names = async (stdout: string, exitCode = 0) => {
    const { fake, ctx } = fakeContext([virsh(ask, stdout, exitCode)]);
    const map = await guestInterfaceNames(ctx, 'a');
    fake.done();
    return map;
  };
  assert.deepEqual(
    [...(await names(answer))],
    [
      ['00:00:00:00:00:00', 'lo'],
      ['52:54:00:aa:bb:cc', 'enp1s0'],
    ],
  );
  assert.equal((await names('not json')).size, 0);
  assert.equal((await names('{}')).size, 0);
  assert.equal((await names('', 1)).size, 0, 'no agent');
});

/** An attach-device/detach-device call with these flags whose device file holds `xml`. */
const deviceCall = (verb: string, name: string, flags: string[], xml: string) =>
  virsh((a) => {
    if (a[0] !== verb || a[1] !== name || a.slice(3).join(' ') !== flags.join(' ')) return false;
    assert.equal(readFileSync(a[2]!, 'utf8'), xml);
    return true;
  });

const isBatch = (a: readonly string[]) => a.length === 1 && a[0]!.startsWith('echo @@vms-');

test('nic add: a MAC another VM has is a conflict, and nothing is attached', async () => {
  const mac = '52:54:00:00:00:07';
  const { fake, ctx } = fakeContext(
    [
      virsh(inactive('a'), domain('a', [])),
      virsh(['domstate', 'a'], 'shut off\n'),
      virsh(['list', '--all', '--name'], 'a\nb\n\n'),
      virsh(isBatch),
    ],
    // b has the MAC in its saved definition only
    (c) => (c === 'dumpxml b --inactive' ? domain('b', [userNic(mac)]) : domain(c.split(' ')[1]!, [])),
  );
  await assert.rejects(addNic(ctx, 'a', { source: { kind: 'user' }, model: 'virtio', mac }), (err: unknown) => {
    assert.ok(err instanceof VmsError);
    assert.equal(err.code, 'conflict');
    assert.equal(err.message, `MAC address ${mac} is already used by a NIC of 'b'`);
    return true;
  });
  fake.done();
});

test('nic add on a shut-off VM: into its config only; an inactive network is refused first', async () => {
  const mac = '52:54:00:00:00:08';
  const spec: NicSpec = { source: { kind: 'network', name: 'lab' }, model: 'e1000e', mac };
  const { fake, ctx } = fakeContext([
    virsh(inactive('a'), domain('a', [])),
    virsh(['domstate', 'a'], 'shut off\n'),
    virsh(['net-info', 'lab'], 'Name:           lab\nActive:         no\n'),
  ]);
  await assert.rejects(addNic(ctx, 'a', spec), /network 'lab' is not active/);
  fake.done();

  const ok = fakeContext(
    [
      virsh(inactive('a'), domain('a', [])),
      virsh(['domstate', 'a'], 'shut off\n'),
      virsh(['net-info', 'lab'], 'Name:           lab\nActive:         yes\n'),
      virsh(['list', '--all', '--name'], 'a\n\n'),
      virsh(isBatch),
      deviceCall('attach-device', 'a', ['--config'], await nicXml(spec)),
      virsh(
        inactive('a'),
        domain('a', [
          `<interface type='network'><mac address='${mac}'/><source network='lab'/><model type='e1000e'/></interface>`,
        ]),
      ),
      virsh(['domstate', 'a'], 'shut off\n'),
    ],
    (c) => domain(c.split(' ')[1]!, []),
  );
  const change = await addNic(ok.ctx, 'a', spec);
  assert.deepEqual(change, {
    name: 'a',
    live: false,
    nic: {
      index: 0,
      type: 'network',
      source: 'lab',
      model: 'e1000e',
      mac,
      guestName: undefined,
      inConfig: true,
      live: undefined,
    },
  });
  ok.fake.done();
});

test("a network missing or stopped: libvirt's default is `vms bootstrap`'s to fix, any other virsh's", async () => {
  const notDefined = (network: string): Expected => ({
    cmd: 'virsh',
    args: ['-c', URI, 'net-info', network],
    result: {
      stdout: '',
      exitCode: 1,
      stderr: `error: failed to get network '${network}'\nerror: Network not found: no network with matching name '${network}'\n`,
    },
  });
  const stopped = (network: string) => virsh(['net-info', network], `Name:           ${network}\nActive:         no\n`);
  const refusal = async (network: string, answer: Expected) => {
    const { fake, ctx } = fakeContext([
      virsh(inactive('a'), domain('a', [])),
      virsh(['domstate', 'a'], 'shut off\n'),
      answer,
    ]);
    const err = await addNic(ctx, 'a', { source: { kind: 'network', name: network }, model: 'virtio' }).catch(
      (e: unknown) => e,
    );
    fake.done();
    assert.ok(err instanceof VmsError, String(err));
    return [err.code, err.message, err.hint, err.reason, err.data];
  };
  const listed = '`virsh net-list --all` shows the networks';
  /** The refusal's code, message, hint, reason and data: `how` to fix it, then user mode as the way around. */
  const said = (code: string, message: string, how: string) => [
    code,
    message,
    `${how}; or use user mode`,
    'nic.networkMissing',
    { how },
  ];
  const cases: [string, Expected, ReturnType<typeof said>][] = [
    [
      'default',
      notDefined('default'),
      said('notFound', "libvirt has no network named 'default'", '`vms bootstrap` defines and starts it'),
    ],
    [
      'default',
      stopped('default'),
      said('conflict', "libvirt's network 'default' is not active", '`vms bootstrap` starts it'),
    ],
    ['lab', notDefined('lab'), said('notFound', "libvirt has no network named 'lab'", listed)],
    [
      'my lab',
      stopped('my lab'),
      said('conflict', "libvirt's network 'my lab' is not active", "`virsh net-start 'my lab'` starts it"),
    ],
  ];
  for (const [network, answer, expected] of cases) assert.deepEqual(await refusal(network, answer), expected, network);
});

test('nic add on a running VM with an automatic MAC: live and config, and the MAC libvirt picked is reported', async () => {
  const old = '52:54:00:00:00:01';
  const picked = '52:54:00:9a:8b:7c';
  const before = domain('a', [userNic(old)]);
  const after = domain('a', [userNic(old), userNic(picked)]);
  const { fake, ctx } = fakeContext([
    virsh(inactive('a'), before),
    virsh(['domstate', 'a'], 'running\n'),
    virsh(['dumpxml', 'a'], before),
    deviceCall(
      'attach-device',
      'a',
      ['--live', '--config'],
      await nicXml({ source: { kind: 'user' }, model: 'virtio' }),
    ),
    virsh(inactive('a'), after),
    virsh(['domstate', 'a'], 'running\n'),
    virsh(['dumpxml', 'a'], after),
    virsh(
      ['qemu-agent-command', 'a', '{"execute":"guest-network-get-interfaces"}', '--timeout', '2'],
      JSON.stringify({ return: [{ name: 'eth1', 'hardware-address': picked }] }),
    ),
  ]);
  const { log, progress } = stepLog();
  const change = await addNic({ ...ctx, progress }, 'a', { source: { kind: 'user' }, model: 'virtio' });
  assert.deepEqual(log, ['Checking input', 'Adding a NIC (virtio, user) to a (live)']);
  assert.equal(change.live, true);
  assert.deepEqual(change.nic, {
    index: 1,
    type: 'user',
    source: undefined,
    model: 'virtio',
    mac: picked,
    guestName: 'eth1',
    inConfig: true,
    live: true,
  });
  fake.done();
});

test('nic del on a running VM: by MAC (in capitals), live and config, and waits until the guest has let go', async () => {
  const [keep, gone] = [MAC1, MAC2];
  const both = domain('a', [userNic(keep), userNic(gone)]);
  const { fake, ctx } = fakeContext([
    virsh(inactive('a'), both),
    virsh(['domstate', 'a'], 'running\n'),
    virsh(['dumpxml', 'a'], both),
    deviceCall(
      'detach-device',
      'a',
      ['--live', '--config'],
      await detachNicXml(readNics(await parseDomainXml(both))[1]!),
    ),
    virsh(['dumpxml', 'a'], both), // the guest has not answered yet
    virsh(['dumpxml', 'a'], domain('a', [userNic(keep)])),
  ]);
  const { log, progress } = stepLog();
  const change = await deleteNic({ ...ctx, progress }, 'a', gone.toUpperCase());
  assert.deepEqual(log, [`Removing NIC 1 (${gone}) from a (live)`]);
  assert.equal(change.nic.index, 1);
  assert.equal(change.nic.mac, gone);
  fake.done();
});

test('nic del: an index or MAC the VM does not have is "not found", anything else bad input; nothing is detached', async () => {
  for (const [which, code] of [
    ['1', 'notFound'],
    ['52:54:00:00:00:09', 'notFound'],
    ['eth0', 'usage'],
  ] as const) {
    const { fake, ctx } = fakeContext([
      virsh(inactive('a'), domain('a', [userNic('52:54:00:00:00:01')])),
      virsh(['domstate', 'a'], 'shut off\n'),
    ]);
    await assert.rejects(deleteNic(ctx, 'a', which), (err: unknown) => err instanceof VmsError && err.code === code);
    fake.done();
  }
});

// ---- what each refusal says ---------------------------------------------------------------------------------------

// parseMac tests the first byte with parseInt(mac.slice(0, 2), 16): parseInt(mac, 16) stops at the first colon of
// the checked MAC, so that mutant is equivalent.
test('parseMac, parseNicModel and parseNicSource: each refusal with its message, hint and reason', () => {
  const macHint = "give six hex pairs such as 52:54:00:12:34:56 (52:54:00 is QEMU's prefix), or auto";
  assert.deepEqual(
    refusal(() => parseMac('52:54:00')),
    ['usage', "invalid MAC address '52:54:00'", macHint, 'nic.badMac'],
  );
  assert.deepEqual(
    refusal(() => parseMac('03:00:00:00:00:01')),
    [
      'usage',
      '03:00:00:00:00:01 is a multicast MAC address: a NIC needs a unicast one (even first byte)',
      macHint,
      'nic.badMac',
    ],
  );
  assert.deepEqual(
    refusal(() => parseNicModel('e1000')),
    ['usage', "invalid NIC model 'e1000'", 'use virtio or e1000e', undefined],
  );
  assert.deepEqual(
    refusal(() => parseNicSource({ network: 'lab', bridge: 'br0' })),
    [
      'usage',
      'give only one of network, bridge and user',
      'a NIC is on a libvirt network, on a host bridge, or in user mode',
      'nic.twoSources',
    ],
  );
  assert.deepEqual(
    refusal(() => parseNicSource({ network: 'none' })),
    [
      'usage',
      "invalid network 'none'",
      'name a libvirt network (`virsh net-list --all`), or use user mode',
      'nic.badNetwork',
    ],
  );
});

test('checkBridge: an interface that is not there is not found, one that is no bridge is bad input', () => {
  const sysNet = mkdtempSync(join(tmpdir(), 'vms-unit-sysnet-'));
  mkdirSync(join(sysNet, 'br0', 'bridge'), { recursive: true });
  mkdirSync(join(sysNet, 'eth9'));
  const hint = '`ip link show type bridge` lists the bridges; or use user mode';
  checkBridge('br0', sysNet);
  assert.deepEqual(
    refusal(() => checkBridge('eth9', sysNet)),
    ['usage', "'eth9' is not a bridge", hint, 'nic.noBridge'],
  );
  assert.deepEqual(
    refusal(() => checkBridge('br1', sysNet)),
    ['notFound', "this host has no network interface named 'br1'", hint, 'nic.noBridge'],
  );
});

test("nic add on a bridge: the host's interfaces are checked (lo is never a bridge) before anything is attached", async () => {
  const { fake, ctx } = fakeContext([virsh(inactive('a'), domain('a', [])), virsh(['domstate', 'a'], 'shut off\n')]);
  const spec: NicSpec = { source: { kind: 'bridge', name: 'lo' }, model: 'virtio' };
  assert.deepEqual((await rejection(addNic(ctx, 'a', spec))).slice(0, 2), ['usage', "'lo' is not a bridge"]);
  fake.done();
});

test("guestInterfaceNames: an interrupt, or an error that is not vms's, is passed on", async () => {
  for (const thrown of [interrupted(), new Error('boom')]) {
    const runner: Runner = {
      run: () => Promise.reject(thrown),
      interactive: () => Promise.reject(thrown),
    };
    const ctx = createContext({ config: resolveConfig({ env: {} }), runner });
    await assert.rejects(guestInterfaceNames(ctx, 'a'), (err: unknown) => err === thrown);
  }
});

test('nic add: a network virsh cannot read for another reason than "not found" is that error, not "missing"', async () => {
  const { fake, ctx } = fakeContext([
    virsh(inactive('a'), domain('a', [])),
    virsh(['domstate', 'a'], 'shut off\n'),
    virsh(['net-info', 'lab'], '', 1),
  ]);
  const [code, message, , reason] = await rejection(
    addNic(ctx, 'a', { source: { kind: 'network', name: 'lab' }, model: 'virtio' }),
  );
  assert.deepEqual([code, reason], ['failed', undefined]);
  assert.match(message, /net-info/);
  fake.done();
});

test('nic add with a MAC on a shut-off VM: only a VM with that very MAC conflicts; the new NIC is the one reported', async () => {
  const other = '52:54:00:ab:cd:0e'; // b has a NIC, with another MAC
  const spec: NicSpec = { source: { kind: 'user' }, model: 'virtio', mac: MAC2 };
  const { fake, ctx } = fakeContext(
    [
      virsh(inactive('a'), domain('a', [userNic(MAC1)])),
      virsh(['domstate', 'a'], 'shut off\n'),
      virsh(['list', '--all', '--name'], 'a\nb\n\n'),
      virsh(isBatch),
      deviceCall('attach-device', 'a', ['--config'], await nicXml(spec)),
      virsh(inactive('a'), domain('a', [userNic(MAC1), userNic(MAC2)])),
      virsh(['domstate', 'a'], 'shut off\n'),
    ],
    (c) => (c.split(' ')[1] === 'a' ? domain('a', [userNic(MAC1)]) : domain('b', [userNic(other)])),
  );
  const { log, progress } = stepLog();
  const change = await addNic({ ...ctx, progress }, 'a', spec);
  assert.deepEqual(log, ['Checking input', 'Adding a NIC (virtio, user) to a']);
  assert.deepEqual(change, {
    name: 'a',
    live: false,
    nic: savedUserNic(1, MAC2),
  });
  fake.done();
});

test('nic add: a MAC taken says how to go on (reason nic.macTaken)', async () => {
  const { fake, ctx } = fakeContext(
    [
      virsh(inactive('a'), domain('a', [])),
      virsh(['domstate', 'a'], 'shut off\n'),
      virsh(['list', '--all', '--name'], 'a\nb\n\n'),
      virsh(isBatch),
    ],
    (c) => (c === 'dumpxml b' ? domain('b', [userNic(MAC1)]) : domain(c.split(' ')[1]!, [])), // b has it live only
  );
  assert.deepEqual(await rejection(addNic(ctx, 'a', { source: { kind: 'user' }, model: 'virtio', mac: MAC1 })), [
    'conflict',
    `MAC address ${MAC1} is already used by a NIC of 'b'`,
    'give another MAC, or leave it out and libvirt picks one',
    'nic.macTaken',
  ]);
  fake.done();
});

test('nic add on a running VM without a free PCIe slot: a conflict that says to add it while the VM is off', async () => {
  const spec: NicSpec = { source: { kind: 'user' }, model: 'virtio' };
  const { fake, ctx } = fakeContext([
    virsh(inactive('a'), domain('a', [])),
    virsh(['domstate', 'a'], 'running\n'),
    virsh(['dumpxml', 'a'], domain('a', [])),
    {
      ...deviceCall('attach-device', 'a', ['--live', '--config'], await nicXml(spec)),
      result: {
        exitCode: 1,
        stderr: 'error: Failed to attach device\nerror: internal error: No more available PCI slots\n',
      },
    },
  ]);
  assert.deepEqual(await rejection(addNic(ctx, 'a', spec)), [
    'conflict',
    'a has no free PCIe slot left to plug a NIC into while it runs',
    'stop it (`vms stop a`) and add the NIC then: it gets a slot at the next start',
    undefined,
  ]);
  fake.done();
});

test('nic add: a NIC libvirt reports added but the definition does not show is a failure', async () => {
  const spec: NicSpec = { source: { kind: 'user' }, model: 'virtio' };
  const { fake, ctx } = fakeContext([
    virsh(inactive('a'), domain('a', [userNic(MAC1)])),
    virsh(['domstate', 'a'], 'shut off\n'),
    deviceCall('attach-device', 'a', ['--config'], await nicXml(spec)),
    virsh(inactive('a'), domain('a', [userNic(MAC1)])),
    virsh(['domstate', 'a'], 'shut off\n'),
  ]);
  assert.deepEqual(await rejection(addNic(ctx, 'a', spec)), [
    'failed',
    "libvirt reported the NIC added, but a's definition does not show it",
    '`vms nic list a` shows what is there',
    undefined,
  ]);
  fake.done();
});

test('nic list on a running VM: the saved NICs in order, then the live-only one, matched by MAC', async () => {
  const MAC3 = '52:54:00:ab:cd:03';
  const { fake, ctx } = fakeContext([
    virsh(inactive('a'), domain('a', [userNic(MAC1), userNic(MAC2)])),
    virsh(['domstate', 'a'], 'running\n'),
    virsh(['dumpxml', 'a'], domain('a', [userNic(MAC2), userNic(MAC3)])),
    virsh(['qemu-agent-command', 'a', '{"execute":"guest-network-get-interfaces"}', '--timeout', '2'], '', 1),
  ]);
  const list = await listNics(ctx, 'a');
  assert.deepEqual(
    list.nics.map((n) => [n.index, n.mac, n.inConfig, n.live]),
    [
      [0, MAC1, true, false],
      [1, MAC2, true, true],
      [2, MAC3, false, true],
    ],
  );
  fake.done();
});

/** Index 10 of eleven NICs: an index of more than one digit. */
const ELEVEN = Array.from({ length: 11 }, (_, i) => `52:54:00:ab:cd:${String(i).padStart(2, '0')}`);

test('nic del on a shut-off VM by index: from the definition only, no wait for a guest', async () => {
  for (const [nics, which] of [
    [[MAC1, MAC2], '1'],
    [ELEVEN, '10'],
  ] as const) {
    const xml = domain('a', nics.map(userNic));
    const gone = readNics(await parseDomainXml(xml))[Number(which)]!;
    const { fake, ctx } = fakeContext([
      virsh(inactive('a'), xml),
      virsh(['domstate', 'a'], 'shut off\n'),
      deviceCall('detach-device', 'a', ['--config'], await detachNicXml(gone)),
    ]);
    const { log, progress } = stepLog();
    const change = await deleteNic({ ...ctx, progress }, 'a', which);
    assert.deepEqual(log, [`Removing NIC ${which} (${gone.mac}) from a`]);
    assert.deepEqual(change, {
      name: 'a',
      live: false,
      nic: savedUserNic(Number(which), gone.mac),
    });
    fake.done();
  }
});

test('nic del: what is neither an index nor a MAC is bad input, a NIC the VM lacks is not found; each says so', async () => {
  const cases: [string, string, string, string][] = [
    ['1x', 'usage', "'1x' is neither a NIC index nor a MAC address", '`vms nic list a` shows both'],
    ['12', 'notFound', 'a has no NIC 12', '`vms nic list a` shows its NICs'],
    ['52:54:00:AB:CD:09', 'notFound', 'a has no NIC 52:54:00:AB:CD:09', '`vms nic list a` shows its NICs'],
  ];
  for (const [which, code, message, hint] of cases) {
    const { fake, ctx } = fakeContext([
      virsh(inactive('a'), domain('a', [userNic(MAC1), userNic(MAC2)])),
      virsh(['domstate', 'a'], 'shut off\n'),
    ]);
    assert.deepEqual(await rejection(deleteNic(ctx, 'a', which)), [code, message, hint, undefined], which);
    fake.done();
  }
});

test('nic del: a guest that never lets go is a timeout after 60 s, which says what is out already', async (t) => {
  // The clock jumps past the deadline while the first look at the running VM is under way.
  t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
  const lateLook = (xml: string) =>
    virsh((a) => a.join(' ') === 'dumpxml a' && (t.mock.timers.tick(60_000), true), xml);
  const saved = domain('a', [userNic(MAC1)]);
  const running = domain('a', [userNic(MAC1), userNic(MAC2)]);
  const nics = readNics(await parseDomainXml(running));
  const cases: [number, string[], string][] = [
    [0, ['--live', '--config'], 'it is out of the saved definition; '],
    [1, ['--live'], ''], // a NIC the running VM has only
  ];
  for (const [index, flags, saidSaved] of cases) {
    const { fake, ctx } = fakeContext([
      virsh(inactive('a'), saved),
      virsh(['domstate', 'a'], 'running\n'),
      virsh(['dumpxml', 'a'], running),
      deviceCall('detach-device', 'a', flags, await detachNicXml(nics[index]!)),
      lateLook(running),
    ]);
    assert.deepEqual(await rejection(deleteNic(ctx, 'a', String(index))), [
      'timeout',
      `a's guest has not let go of the NIC ${nics[index]!.mac} within 60s`,
      `${saidSaved}it leaves the running VM when the guest answers, or when the VM stops`,
      undefined,
    ]);
    fake.done();
  }
});
