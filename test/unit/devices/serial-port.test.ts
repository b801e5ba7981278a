import assert from 'node:assert/strict';
import { forCommandLine } from '../../../src/cli/hints.js';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../../src/config.js';
import { chardevOwner } from '../../../src/core/vm/vm-files.js';
import { createContext, processHost } from '../../../src/core/context.js';
import {
  addSerialPort,
  deleteSerialPort,
  listSerialPorts,
  parseBackend,
} from '../../../src/core/devices/serial-port.js';
import { VmsError } from '../../../src/errors.js';
import { parseDomainXml } from '../../../src/libvirt/domain-parse.js';
import { backendSpec, readSerialPorts, serialXml, type SerialBackend } from '../../../src/libvirt/serial-xml.js';
import { FakeRunner, type Expected } from '../../helpers/fake-runner.js';
import { assertValidDomainXml } from '../../helpers/validate-xml.js';
import { rejection, refusal, type Said } from '../../helpers/refusal.js';
import { stepLog } from '../../helpers/step-log.js';
import { batchCall } from '../../helpers/virsh-fake.js';

// ---- --backend ----------------------------------------------------------------------------------------------------

test('parseBackend reads file:, unix: and tcp: (IPv4, IPv6 in brackets, host names); --server for the sockets', () => {
  const cases: [string, boolean, SerialBackend][] = [
    ['file:/var/log/vm/ttyS1.log', false, { type: 'file', path: '/var/log/vm/ttyS1.log' }],
    ['unix:/run/vm/s.sock', true, { type: 'unix', path: '/run/vm/s.sock', server: true }],
    ['unix:/run/vm/s.sock', false, { type: 'unix', path: '/run/vm/s.sock', server: false }],
    ['tcp:127.0.0.1:4555', true, { type: 'tcp', host: '127.0.0.1', port: 4555, server: true }],
    ['tcp:[::1]:65535', false, { type: 'tcp', host: '::1', port: 65535, server: false }],
    ['tcp:logs.example.org:1', false, { type: 'tcp', host: 'logs.example.org', port: 1, server: false }],
  ];
  for (const [spec, server, expected] of cases) {
    assert.deepEqual(parseBackend(spec, server), expected, spec);
    assert.equal(backendSpec(expected), spec, 'shown as it is given');
  }
});

test('parseBackend refuses anything else as bad input, with a hint', () => {
  const bad = [
    '',
    'file',
    'file:',
    'file:relative/x',
    'file:/dir/',
    'unix:',
    'unix:sock',
    'pty:',
    'FILE:/x',
    'udp:127.0.0.1:1',
    'tcp:',
    'tcp:host',
    'tcp::22',
    'tcp:host:',
    'tcp:host:0',
    'tcp:host:65536',
    'tcp:host:22x',
    'tcp:under_score:22',
    'tcp:::1:22',
    'tcp:[::1:22',
    'tcp:[127.0.0.1]:22',
    'tcp:[zz::1]:22',
    'tcp:-lead.example:22',
  ];
  for (const spec of bad) {
    assert.throws(
      () => parseBackend(spec, false),
      (err: unknown) => err instanceof VmsError && err.code === 'usage' && Boolean(err.hint),
      spec,
    );
  }
  assert.throws(
    () => parseBackend('file:/x', true),
    (err: unknown) => err instanceof VmsError && /--server is for unix: and tcp:/.test(forCommandLine(err).message),
  );
});

// ---- XML ----------------------------------------------------------------------------------------------------------

const inDomain = (device: string) =>
  `<domain type='qemu'><name>t</name><memory>65536</memory><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>${device}</devices></domain>`;

test("serialXml: file appends, sockets bind as a server and connect (reconnecting) as a client, tcp is raw; files and listening sockets are the user's", async () => {
  const owner = `<seclabel model="dac" relabel="yes">\n      <label>+1000:+106</label>\n    </seclabel>`;
  const cases: [SerialBackend, string][] = [
    [
      { type: 'file', path: '/x/out.log' },
      `<serial type="file">\n  <source path="/x/out.log" append="on">\n    ${owner}\n  </source>\n  <target port="1"/>\n</serial>`,
    ],
    [
      { type: 'unix', path: '/x/s.sock', server: true },
      `<serial type="unix">\n  <source mode="bind" path="/x/s.sock">\n    ${owner}\n  </source>\n  <target port="1"/>\n</serial>`,
    ],
    [
      { type: 'unix', path: '/x/s.sock', server: false },
      `<serial type="unix">\n  <source mode="connect" path="/x/s.sock">\n    <reconnect enabled="yes" timeout="5"/>\n  </source>\n  <target port="1"/>\n</serial>`,
    ],
    [
      { type: 'tcp', host: '127.0.0.1', port: 4555, server: true },
      `<serial type="tcp">\n  <source mode="bind" host="127.0.0.1" service="4555"/>\n  <protocol type="raw"/>\n  <target port="1"/>\n</serial>`,
    ],
    [
      { type: 'tcp', host: '::1', port: 4555, server: false },
      `<serial type="tcp">\n  <source mode="connect" host="::1" service="4555">\n    <reconnect enabled="yes" timeout="5"/>\n  </source>\n  <protocol type="raw"/>\n  <target port="1"/>\n</serial>`,
    ],
  ];
  for (const [backend, expected] of cases) {
    const xml = await serialXml(1, backend, '+1000:+106');
    assert.equal(xml, expected);
    assertValidDomainXml(inDomain(xml), `serial ${backendSpec(backend)}`);
    const [read] = readSerialPorts(await parseDomainXml(inDomain(xml)));
    assert.deepEqual({ port: read!.port, backend: read!.backend }, { port: 1, backend }, 'read back as written');
  }
});

test('readSerialPorts: port numbers and backends from a running definition; kinds vms does not make have no backend', async () => {
  const fixture = readFileSync(new URL('../../fixtures/dumpxml-efi-running.xml', import.meta.url), 'utf8');
  const extra = `<serial type='pty'><source path='/dev/pts/3'/><target type='isa-serial' port='2'/></serial>`;
  const ports = readSerialPorts(await parseDomainXml(fixture.replace('</devices>', `${extra}</devices>`)));
  assert.deepEqual(
    ports.map(({ node: _, ...p }) => p),
    [
      { port: 0, type: 'unix', backend: { type: 'unix', path: '/var/lib/vms/work/serial.sock', server: true } },
      { port: 2, type: 'pty', backend: undefined },
    ],
  );
});

// ---- add, del and list against a fake virsh -----------------------------------------------------------------------

const URI = 'qemu:///system';
const virsh = (args: readonly string[] | ((args: readonly string[]) => boolean), stdout = ''): Expected => ({
  cmd: 'virsh',
  args: typeof args === 'function' ? (a) => a[0] === '-c' && a[1] === URI && args(a.slice(2)) : ['-c', URI, ...args],
  result: { stdout },
});
const CONSOLE = `<serial type='unix'><source mode='bind' path='/v/a/serial.sock'/><log file='/v/a/serial.log' append='on'/><target type='isa-serial' port='0'><model name='isa-serial'/></target></serial><console type='unix'><source mode='bind' path='/v/a/serial.sock'/><target type='serial' port='0'/></console>`;
const fileSerial = (port: number, path: string) =>
  `<serial type='file'><source path='${path}' append='on'/><target type='isa-serial' port='${port}'><model name='isa-serial'/></target></serial>`;
const domain = (...serials: string[]) =>
  `<domain type='qemu'><name>a</name><uuid>u</uuid><memory unit='KiB'>262144</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices>${CONSOLE}${serials.join('')}</devices></domain>\n`;
const inactive = ['dumpxml', 'a', '--inactive', '--security-info'];
const TMP = '/tmp'; // a directory that is there, for the file: and unix: backends

function fakeContext(expected: Expected[]) {
  const fake = new FakeRunner(expected);
  return { fake, ctx: createContext({ config: resolveConfig({ env: {} }), runner: fake }) };
}

/** An attach-device/detach-device call on the saved definition only, whose device file holds `xml`. */
const configOnly = (verb: string, xml: string) =>
  virsh((a) => {
    if (a[0] !== verb || a[1] !== 'a' || a[3] !== '--config' || a.length !== 4) return false;
    assert.equal(readFileSync(a[2]!, 'utf8'), xml);
    return true;
  });

test('serial add takes the lowest free port; on a running VM only the config changes and a restart is pending', async () => {
  const backend: SerialBackend = { type: 'tcp', host: '127.0.0.1', port: 4555, server: true };
  const saved = domain(fileSerial(2, `${TMP}/two.log`));
  const { fake, ctx } = fakeContext([
    virsh(inactive, saved),
    virsh(['domstate', 'a'], 'running\n'),
    // port 2 was added after the VM started; the running VM's port 1 goes at the next start, for which the new one is
    virsh(['dumpxml', 'a'], domain(fileSerial(1, `${TMP}/old.log`))),
    configOnly(
      'attach-device',
      await serialXml(1, backend, chardevOwner({ config: resolveConfig({ env: {} }), host: processHost() })),
    ),
  ]);
  const change = await addSerialPort(ctx, 'a', backend);
  assert.deepEqual(change, {
    name: 'a',
    pendingRestart: true,
    port: {
      port: 1,
      device: 'ttyS1',
      type: 'tcp',
      backend: 'tcp:127.0.0.1:4555',
      server: true,
      console: false,
      inConfig: true,
      live: false,
    },
  });
  fake.done();
});

test('serial add: no free port, or a path already in use (the console socket too), is refused before any change', async () => {
  const cases: [string, SerialBackend, RegExp][] = [
    [
      domain(fileSerial(1, `${TMP}/1`), fileSerial(2, `${TMP}/2`), fileSerial(3, `${TMP}/3`)),
      { type: 'file', path: `${TMP}/4` },
      /no free serial port/,
    ],
    [
      domain(),
      { type: 'unix', path: '/v/a/serial.sock', server: true },
      /serial port 0 already uses unix:\/v\/a\/serial\.sock/,
    ],
    [
      domain(fileSerial(2, `${TMP}/x.log`)),
      { type: 'unix', path: `${TMP}/x.log`, server: false },
      /serial port 2 already uses/,
    ],
  ];
  for (const [saved, backend, message] of cases) {
    const { fake, ctx } = fakeContext([virsh(inactive, saved), virsh(['domstate', 'a'], 'shut off\n')]);
    await assert.rejects(
      addSerialPort(ctx, 'a', backend),
      (err: unknown) => err instanceof VmsError && err.code === 'conflict' && message.test(err.message),
    );
    fake.done();
  }
  const missing = fakeContext([virsh(inactive, domain()), virsh(['domstate', 'a'], 'shut off\n')]);
  await assert.rejects(
    addSerialPort(missing.ctx, 'a', { type: 'file', path: '/no/such/dir/x.log' }),
    (err: unknown) => err instanceof VmsError && err.code === 'notFound',
  );
  missing.fake.done();
});

test('serial del: the console port and bad numbers are refused without asking libvirt; a missing port is not found', async () => {
  for (const [port, code] of [
    ['0', 'usage'],
    ['x', 'usage'],
    ['-1', 'usage'],
  ] as const) {
    const { fake, ctx } = fakeContext([]);
    await assert.rejects(
      deleteSerialPort(ctx, 'a', port),
      (err: unknown) => err instanceof VmsError && err.code === code,
    );
    fake.done();
  }
  const { fake, ctx } = fakeContext([
    virsh(inactive, domain(fileSerial(1, `${TMP}/1`))),
    virsh(['domstate', 'a'], 'shut off\n'),
  ]);
  await assert.rejects(
    deleteSerialPort(ctx, 'a', '2'),
    (err: unknown) => err instanceof VmsError && err.code === 'notFound',
  );
  fake.done();
});

/** The device file that detaches fileSerial(1, `${TMP}/1`): the saved port exactly as libvirt has it. */
const DETACHED_FILE_1 = `<serial type="file">\n  <source path="${TMP}/1" append="on"/>\n  <target type="isa-serial" port="1">\n    <model name="isa-serial"/>\n  </target>\n</serial>`;

test('serial del on a running VM: the saved port exactly as libvirt has it; pending while the running VM still has it', async () => {
  const saved = domain(fileSerial(1, `${TMP}/1`));
  for (const [live, pending] of [
    [saved, true],
    [domain(), false],
  ] as const) {
    const { fake, ctx } = fakeContext([
      virsh(inactive, saved),
      virsh(['domstate', 'a'], 'running\n'),
      virsh(['dumpxml', 'a'], live),
      configOnly(
        'detach-device',
        `<serial type="file">\n  <source path="${TMP}/1" append="on"/>\n  <target type="isa-serial" port="1">\n    <model name="isa-serial"/>\n  </target>\n</serial>`,
      ),
    ]);
    const change = await deleteSerialPort(ctx, 'a', '1');
    assert.equal(change.pendingRestart, pending);
    assert.equal(change.port.backend, `file:${TMP}/1`);
    fake.done();
  }
});

test('serial list: by port, the console marked, and where the running VM differs from its config', async () => {
  const { fake, ctx } = fakeContext([
    virsh(inactive, domain(fileSerial(3, `${TMP}/3`), fileSerial(1, `${TMP}/1`))),
    virsh(['domstate', 'a'], 'running\n'),
    virsh(['dumpxml', 'a'], domain(fileSerial(1, `${TMP}/1`), fileSerial(2, `${TMP}/2`))),
  ]);
  const list = await listSerialPorts(ctx, 'a');
  assert.deepEqual(
    list.ports.map((p) => [p.port, p.backend, p.console, p.inConfig, p.live]),
    [
      [0, 'unix:/v/a/serial.sock', true, true, true],
      [1, `file:${TMP}/1`, false, true, true],
      [2, `file:${TMP}/2`, false, false, true],
      [3, `file:${TMP}/3`, false, true, false],
    ],
  );
  fake.done();
});

/**
 * A host of its own in a temp dir: images, ISO and state dirs (VM b's directory in it), a directory `free` outside
 * them, and a symlink `link` to the images dir; `context` runs a core Context on the expected calls there.
 */
function tempHost() {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-serial-'));
  const env = {
    VMS_IMAGES_DIR: join(dir, 'images'),
    VMS_ISO_DIR: join(dir, 'iso'),
    VMS_STATE_DIR: join(dir, 'vms'),
    VMS_CONFIG: join(dir, 'none.json'),
  };
  for (const d of [env.VMS_IMAGES_DIR, env.VMS_ISO_DIR, join(env.VMS_STATE_DIR, 'b'), join(dir, 'free')])
    mkdirSync(d, { recursive: true });
  symlinkSync(env.VMS_IMAGES_DIR, join(dir, 'link'));
  const config = resolveConfig({ env });
  const context = (expected: Expected[]) => {
    const fake = new FakeRunner(expected);
    return { fake, ctx: createContext({ config, runner: fake }) };
  };
  /** The device file of `backend` added as port 1, saved only. */
  const attached = async (backend: SerialBackend) =>
    configOnly('attach-device', await serialXml(1, backend, chardevOwner({ config, host: processHost() })));
  return { dir, env, context, attached };
}

/** Shut-off VM a, with only the console port. */
const load = [virsh(inactive, domain()), virsh(['domstate', 'a'], 'shut off\n')];
/** A VM's snapshot table with no snapshots. */
const NONE = ' Name   Creation Time   State\n-----\n';
/** What filesInUse reads when a, with only its console port, is the only VM. */
const onlyA = [
  virsh(['list', '--all', '--name'], 'a\n'),
  batchCall(['dumpxml a --inactive'], [domain(), domain(), NONE, '']),
];

test('serial add: a path in the images or ISO dir, or a file of vms in a VM directory, is bad input; any file a VM uses is a conflict', async () => {
  const { dir, env, context, attached } = tempHost();
  const usage: [SerialBackend, RegExp][] = [
    [{ type: 'file', path: join(env.VMS_IMAGES_DIR, 'new.log') }, /is in the images dir/],
    [{ type: 'file', path: join(dir, 'link', 'b.qcow2') }, /is in the images dir/], // through a symlink
    [{ type: 'unix', path: join(env.VMS_ISO_DIR, 'x.sock'), server: true }, /is in the ISO dir/],
    [{ type: 'file', path: join(env.VMS_STATE_DIR, 'b', 'root-password') }, /is one of vms's own files for VM b/],
  ];
  for (const [backend, message] of usage) {
    const { fake, ctx } = context([...load, ...onlyA]);
    await assert.rejects(
      addSerialPort(ctx, 'a', backend),
      (e: unknown) =>
        e instanceof VmsError &&
        e.code === 'usage' &&
        message.test(e.message) &&
        /give the port a file of its own/.test(e.hint ?? ''),
    );
    fake.done();
  }

  // b's NVRAM lies outside the images dir; b listens on a socket of an extra port, and has a console socket.
  const nvram = join(dir, 'free', 'b.fd');
  const peer = join(dir, 'free', 'peer.sock');
  const b =
    `<domain type='qemu'><name>b</name><os><type>hvm</type><nvram>${nvram}</nvram></os><devices>` +
    `<serial type='unix'><source mode='bind' path='${join(dir, 'free', 'b-console.sock')}'/><target port='0'/></serial>` +
    `<serial type='unix'><source mode='bind' path='${peer}'/><target port='1'/></serial></devices></domain>`;
  const inUse = [
    virsh(['list', '--all', '--name'], 'a\nb\n'),
    batchCall(['dumpxml b --inactive'], [domain(), domain(), NONE, '', b, b, NONE, '']),
  ];
  const conflicts: [SerialBackend, RegExp][] = [
    [{ type: 'file', path: nvram }, /is in use: it is b's NVRAM/],
    [{ type: 'unix', path: join(dir, 'free', 'b-console.sock'), server: false }, /is in use: it is b's console socket/],
    [{ type: 'unix', path: peer, server: true }, /is in use: it is b's serial port/], // two listeners
    [{ type: 'file', path: peer }, /is in use: it is b's serial port/],
  ];
  for (const [backend, message] of conflicts) {
    const { fake, ctx } = context([...load, ...inUse]);
    await assert.rejects(
      addSerialPort(ctx, 'a', backend),
      (e: unknown) => e instanceof VmsError && e.code === 'conflict' && message.test(e.message),
    );
    fake.done();
  }
  // Connecting to b's listening port links the two VMs: allowed.
  const link: SerialBackend = { type: 'unix', path: peer, server: false };
  const { fake, ctx } = context([...load, ...inUse, await attached(link)]);
  assert.equal((await addSerialPort(ctx, 'a', link)).port.backend, `unix:${peer}`);
  fake.done();
});

// ---- what each refusal says ---------------------------------------------------------------------------------------

// Equivalent mutants of parseBackend: `colon <= 0` and a rest other than '' for a spec without a colon (a kind that
// starts with ':' is no kind; no rest without a colon is an absolute path or HOST:PORT); `host !== undefined` made
// true and `m?.[1]` made `m[1]` (no match leaves no port either: refused all the same; the host is only read after a
// match); `isIP(host) === 4` made false (a dotted IPv4 address is a host name to HOSTNAME too).
test('parseBackend: each refusal with its message and reason (serial.serverFile for a file server)', () => {
  const hint = 'use file:/abs/path, unix:/abs/path or tcp:HOST:PORT (as a server for QEMU to listen on the socket)';
  const bad = (message: string, reason = 'serial.badBackend'): Said => ['usage', message, hint, reason];
  assert.deepEqual(
    refusal(() => parseBackend('file', false)),
    bad("invalid serial backend 'file': the path must be absolute and name a file"),
  );
  assert.deepEqual(
    refusal(() => parseBackend('tcp:host:0', false)),
    bad(
      "invalid serial backend 'tcp:host:0': expected tcp:HOST:PORT, a host name or IP address (IPv6 in brackets) and a port from 1 to 65535",
    ),
  );
  assert.deepEqual(
    refusal(() => parseBackend('pty:', false)),
    bad("invalid serial backend 'pty:'"),
  );
  assert.deepEqual(
    refusal(() => parseBackend('file:/x', true)),
    bad('a server is for unix: and tcp: backends: QEMU appends to a file', 'serial.serverFile'),
  );
});

test('serial list: a kind vms does not make has no backend and no server flag; a listening socket has one', async () => {
  const pty = `<serial type='pty'><source path='/dev/pts/3'/><target type='isa-serial' port='2'/></serial>`;
  const { fake, ctx } = fakeContext([virsh(inactive, domain(pty)), virsh(['domstate', 'a'], 'shut off\n')]);
  const list = await listSerialPorts(ctx, 'a');
  assert.deepEqual(
    list.ports.map((p) => [p.port, p.type, p.backend, p.server]),
    [
      [0, 'unix', 'unix:/v/a/serial.sock', true],
      [2, 'pty', undefined, undefined],
    ],
  );
  fake.done();
});

const tcpSerial = (port: number, service: number) =>
  `<serial type='tcp'><source mode='bind' host='127.0.0.1' service='${service}'/><protocol type='raw'/><target port='${port}'/></serial>`;

test('serial add: a tcp port another port of the VM has is taken, another tcp port is free; steps and result', async () => {
  const saved = domain(tcpSerial(1, 4555));
  const taken = fakeContext([virsh(inactive, saved), virsh(['domstate', 'a'], 'shut off\n')]);
  const same: SerialBackend = { type: 'tcp', host: '127.0.0.1', port: 4555, server: false };
  assert.deepEqual(await rejection(addSerialPort(taken.ctx, 'a', same)), [
    'conflict',
    "a's serial port 1 already uses tcp:127.0.0.1:4555",
    'give another path or port',
    undefined,
  ]);
  taken.fake.done();

  const backend: SerialBackend = { type: 'tcp', host: '127.0.0.1', port: 4556, server: true };
  const owner = chardevOwner({ config: resolveConfig({ env: {} }), host: processHost() });
  const { fake, ctx } = fakeContext([
    virsh(inactive, saved),
    virsh(['domstate', 'a'], 'shut off\n'),
    configOnly('attach-device', await serialXml(2, backend, owner)),
  ]);
  const { log, progress } = stepLog();
  assert.deepEqual(await addSerialPort({ ...ctx, progress }, 'a', backend), {
    name: 'a',
    pendingRestart: false,
    port: {
      port: 2,
      device: 'ttyS2',
      type: 'tcp',
      backend: 'tcp:127.0.0.1:4556',
      server: true,
      console: false,
      inConfig: true,
      live: undefined,
    },
  });
  assert.deepEqual(log, ['Checking input', "Adding serial port 2 to a's definition"]);
  fake.done();
});

test('serial add: with no free port, the refusal says how to free one', async () => {
  const full = domain(tcpSerial(1, 1), tcpSerial(2, 2), tcpSerial(3, 3));
  const { fake, ctx } = fakeContext([virsh(inactive, full), virsh(['domstate', 'a'], 'shut off\n')]);
  assert.deepEqual(await rejection(addSerialPort(ctx, 'a', { type: 'tcp', host: 'h', port: 4, server: true })), [
    'conflict',
    'a has no free serial port: ttyS1 to ttyS3 are taken',
    '`vms serial del a PORT` frees one',
    undefined,
  ]);
  fake.done();
});

test('serial add: a missing directory is not found, a directory for a file is bad input; nothing is asked of virsh', async () => {
  const { dir, context } = tempHost();
  const cases: [SerialBackend, Said][] = [
    [
      { type: 'file', path: join(dir, 'none', 'x.log') },
      [
        'notFound',
        `no directory ${join(dir, 'none')} for file:${join(dir, 'none', 'x.log')}`,
        'create it first, or give a path in another directory',
        undefined,
      ],
    ],
    [
      { type: 'unix', path: join(dir, 'free'), server: true },
      ['usage', `${join(dir, 'free')} is a directory`, 'name a file in it', undefined],
    ],
  ];
  for (const [backend, said] of cases) {
    const { fake, ctx } = context(load);
    assert.deepEqual(await rejection(addSerialPort(ctx, 'a', backend)), said);
    fake.done();
  }
});

test('serial add: the hint names a file for a file port and a socket for a socket port, in the VM directory', async () => {
  const { env, context } = tempHost();
  const cases: [SerialBackend, string][] = [
    [{ type: 'file', path: join(env.VMS_IMAGES_DIR, 'x') }, 'ttyS1.log'],
    [{ type: 'unix', path: join(env.VMS_IMAGES_DIR, 'x'), server: false }, 'ttyS1.sock'],
  ];
  for (const [backend, file] of cases) {
    const { fake, ctx } = context([...load, ...onlyA]);
    const [, , hint] = await rejection(addSerialPort(ctx, 'a', backend));
    assert.equal(hint, `give the port a file of its own, e.g. ${join(env.VMS_STATE_DIR, 'a', file)}`);
    fake.done();
  }
});

test("serial add: vms's own files are serial.log.N too, and only in a VM directory of the state dir", async () => {
  const { dir, env, context, attached } = tempHost();
  mkdirSync(join(dir, 'free', 'b'));
  mkdirSync(join(env.VMS_STATE_DIR, 'a'));
  const file = (path: string) => ({ type: 'file', path }) as const;
  const own = (name: string) => file(join(env.VMS_STATE_DIR, 'b', name));
  for (const backend of [own('serial.log.1'), own('serial.log.12')]) {
    const { fake, ctx } = context([...load, ...onlyA]);
    const [code, message] = await rejection(addSerialPort(ctx, 'a', backend));
    assert.deepEqual([code, message], ['usage', `${backend.path} is one of vms's own files for VM b`]);
    fake.done();
  }
  // Not vms's: a name like its rotated logs' but not one, those names outside the state dir, the file the hint
  // proposes, a directory whose name only starts like the images dir's.
  mkdirSync(`${env.VMS_IMAGES_DIR}-old`);
  const free = [
    own('serial.log.1x'),
    file(join(dir, 'free', 'b', 'serial.log.1')),
    file(join(env.VMS_STATE_DIR, 'a', 'ttyS1.log')),
    file(join(`${env.VMS_IMAGES_DIR}-old`, 'x.log')),
  ];
  for (const backend of free) {
    const { fake, ctx } = context([...load, ...onlyA, await attached(backend)]);
    assert.equal((await addSerialPort(ctx, 'a', backend)).port.port, 1, backend.path);
    fake.done();
  }
});

test('serial add: the ISO dir itself, while it is not there yet, is in the ISO dir', async () => {
  const { env, context } = tempHost();
  rmSync(env.VMS_ISO_DIR, { recursive: true });
  const { fake, ctx } = context([...load, ...onlyA]);
  const [code, message] = await rejection(addSerialPort(ctx, 'a', { type: 'file', path: env.VMS_ISO_DIR }));
  assert.deepEqual(
    [code, message],
    ['usage', `${env.VMS_ISO_DIR} is in the ISO dir ${env.VMS_ISO_DIR}: a serial port never writes there`],
  );
  fake.done();
});

test("serial add: a's own running port's file is free, a's other files are not; a socket another VM's port connects to may listen", async () => {
  const { dir, context, attached } = tempHost();
  const old = join(dir, 'free', 'old.log');
  const nvram = join(dir, 'free', 'a.fd');
  const socket = join(dir, 'free', 'link.sock');
  const fileOfB = join(dir, 'free', 'b.log');
  const a = (devices: string) =>
    `<domain type='qemu'><name>a</name><os><type>hvm</type><nvram>${nvram}</nvram></os><devices>${CONSOLE}${devices}</devices></domain>`;
  const b =
    `<domain type='qemu'><name>b</name><os><type>hvm</type></os><devices>${CONSOLE}` +
    `<serial type='unix'><source mode='connect' path='${socket}'/><target port='1'/></serial>` +
    `<serial type='file'><source path='${fileOfB}'/><target port='2'/></serial></devices></domain>`;
  // a runs with a port on old.log that its saved definition no longer has.
  const running = a(fileSerial(1, old));
  const loadRunning = [virsh(inactive, a('')), virsh(['domstate', 'a'], 'running\n'), virsh(['dumpxml', 'a'], running)];
  const inUse = [
    virsh(['list', '--all', '--name'], 'a\nb\n'),
    batchCall(['dumpxml b --inactive'], [a(''), running, NONE, '', b, b, NONE, '']),
  ];
  const allowed: SerialBackend[] = [
    { type: 'file', path: old },
    { type: 'unix', path: socket, server: true },
  ];
  for (const backend of allowed) {
    const { fake, ctx } = context([...loadRunning, ...inUse, await attached(backend)]);
    const change = await addSerialPort(ctx, 'a', backend);
    assert.deepEqual([change.port.port, change.pendingRestart], [1, true]);
    fake.done();
  }
  const refused: [SerialBackend, string][] = [
    [{ type: 'file', path: nvram }, `${nvram} is in use: it is a's NVRAM (UEFI variables)`],
    [{ type: 'unix', path: fileOfB, server: false }, `${fileOfB} is in use: it is b's serial port`],
  ];
  for (const [backend, message] of refused) {
    const { fake, ctx } = context([...loadRunning, ...inUse]);
    assert.deepEqual((await rejection(addSerialPort(ctx, 'a', backend))).slice(0, 2), ['conflict', message]);
    fake.done();
  }
});

test('serial del: each refusal says what to look at; no number with anything after it', async () => {
  const cases: [string, Said][] = [
    ['1 ', ['usage', "invalid serial port '1 '", 'give its number as `vms serial list a` shows it', undefined]],
    [
      '0',
      [
        'usage',
        "serial port 0 is vms's console and stays",
        '`vms serial list a` shows the ports that can go',
        undefined,
      ],
    ],
  ];
  for (const [port, said] of cases) {
    const { fake, ctx } = fakeContext([]);
    assert.deepEqual(await rejection(deleteSerialPort(ctx, 'a', port)), said);
    fake.done();
  }
  const { fake, ctx } = fakeContext([virsh(inactive, domain()), virsh(['domstate', 'a'], 'shut off\n')]);
  assert.deepEqual(await rejection(deleteSerialPort(ctx, 'a', '12')), [
    'notFound',
    'a has no serial port 12 in its definition',
    '`vms serial list a` shows its ports',
    undefined,
  ]);
  fake.done();
});

test('serial del on a shut-off VM: the port is out of the definition, nothing pending; the step says so', async () => {
  const { fake, ctx } = fakeContext([
    virsh(inactive, domain(fileSerial(1, `${TMP}/1`))),
    virsh(['domstate', 'a'], 'shut off\n'),
    configOnly('detach-device', DETACHED_FILE_1),
  ]);
  const { log, progress } = stepLog();
  assert.deepEqual(await deleteSerialPort({ ...ctx, progress }, 'a', '1'), {
    name: 'a',
    pendingRestart: false,
    port: {
      port: 1,
      device: 'ttyS1',
      type: 'file',
      backend: `file:${TMP}/1`,
      server: undefined,
      console: false,
      inConfig: false,
      live: undefined,
    },
  });
  assert.deepEqual(log, ["Removing serial port 1 from a's definition"]);
  fake.done();
});
