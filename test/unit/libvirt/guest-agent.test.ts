import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeRunner, type Expected } from '../../helpers/fake-runner.js';
import { VmsError } from '../../../src/errors.js';
import { GuestAgent, READ_CHUNK, WRITE_CHUNK, agentReturn } from '../../../src/libvirt/guest-agent.js';
import { Virsh } from '../../../src/libvirt/virsh.js';

// Every GuestAgent method: the QMP JSON it sends through `virsh qemu-agent-command` and what it makes of the answer.

const URI = 'qemu:///test';

/** One agent command: the JSON vms sends (compared as data) and the JSON the agent answers. */
function agentCall(sent: unknown, answer: unknown, timeout = 2): Expected {
  return {
    cmd: 'virsh',
    args: (a) =>
      a.length === 7 &&
      a[0] === '-c' &&
      a[1] === URI &&
      a[2] === 'qemu-agent-command' &&
      a[3] === 'vm' &&
      a[5] === '--timeout' &&
      a[6] === String(timeout) &&
      isDeepEqual(JSON.parse(a[4]!), sent),
    result: { stdout: `${typeof answer === 'string' ? answer : JSON.stringify(answer)}\n` },
  };
}

function isDeepEqual(a: unknown, b: unknown): boolean {
  try {
    assert.deepEqual(a, b);
    return true;
  } catch {
    return false;
  }
}

async function withAgent<T>(expected: Expected[], use: (agent: GuestAgent) => Promise<T>): Promise<T> {
  const runner = new FakeRunner(expected);
  const out = await use(new GuestAgent(new Virsh(runner, URI), 'vm'));
  runner.done();
  return out;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

test('ping sends exactly what virsh always got for it; answers is false when no agent answers', async () => {
  const runner = new FakeRunner([
    {
      cmd: 'virsh',
      args: ['-c', URI, 'qemu-agent-command', 'vm', '{"execute":"guest-ping"}', '--timeout', '2'],
      result: { stdout: '{"return":{}}\n' },
    },
  ]);
  assert.equal(await new GuestAgent(new Virsh(runner, URI), 'vm').answers(), true);
  runner.done();
  const noAgent = new FakeRunner([
    {
      cmd: 'virsh',
      args: (a) => a[2] === 'qemu-agent-command',
      result: { exitCode: 1, stderr: 'error: Guest agent is not responding: QEMU guest agent is not connected\n' },
    },
  ]);
  const agent = new GuestAgent(new Virsh(noAgent, URI), 'vm');
  assert.equal(await agent.answers(), false);
  noAgent.done();
});

test('no agent, not connected, not responding: reason agent.unavailable', async () => {
  for (const stderr of [
    'error: argument unsupported: QEMU guest agent is not configured\n',
    'error: Guest agent is not responding: QEMU guest agent is not connected\n',
    'error: Guest agent is not responding: Guest agent not available for now\n',
  ]) {
    const runner = new FakeRunner([{ cmd: 'virsh', args: () => true, result: { exitCode: 1, stderr } }]);
    await assert.rejects(
      new GuestAgent(new Virsh(runner, URI), 'vm').ping(),
      (err: unknown) => err instanceof VmsError && err.reason === 'agent.unavailable',
    );
  }
});

test('virsh hanging past its own wait is agent.unavailable too (a timeout)', async () => {
  const virsh = new Virsh(new FakeRunner([]), URI);
  virsh.agentCommand = async () => {
    throw new VmsError('timeout', 'virsh did not finish within 32s');
  };
  await assert.rejects(
    new GuestAgent(virsh, 'vm').ping(),
    (err: unknown) => err instanceof VmsError && err.code === 'timeout' && err.reason === 'agent.unavailable',
  );
});

test('an answer that is not QMP is agent.badReply', () => {
  for (const json of ['not json', '{}', 'null', '[1]']) {
    assert.throws(
      () => agentReturn('guest-info', json),
      (err: unknown) => err instanceof VmsError && err.reason === 'agent.badReply',
    );
  }
  assert.deepEqual(agentReturn('guest-info', '{"return":{"version":"8.0"}}'), { version: '8.0' });
});

test("info: the version and which commands are enabled; a timeout of the caller's choosing", async () => {
  const answer = {
    return: {
      version: '7.2.0',
      supported_commands: [
        { name: 'guest-exec', enabled: true, 'success-response': true },
        { name: 'guest-shutdown', enabled: false },
      ],
    },
  };
  const info = await withAgent([agentCall({ execute: 'guest-info' }, answer, 10)], (a) => a.info(10));
  assert.deepEqual(info, {
    version: '7.2.0',
    commands: [
      { name: 'guest-exec', enabled: true },
      { name: 'guest-shutdown', enabled: false },
    ],
  });
});

test('networkInterfaces: names, lower-case MACs, addresses', async () => {
  const answer = {
    return: [
      {
        name: 'lo',
        'hardware-address': '00:00:00:00:00:00',
        'ip-addresses': [{ 'ip-address-type': 'ipv4', 'ip-address': '127.0.0.1', prefix: 8 }],
      },
      { name: 'enp1s0', 'hardware-address': '52:54:00:AA:BB:CC' },
      { name: 'sit0' },
      { 'hardware-address': '52:54:00:00:00:01' },
    ],
  };
  const list = await withAgent([agentCall({ execute: 'guest-network-get-interfaces' }, answer)], (a) =>
    a.networkInterfaces(),
  );
  assert.deepEqual(list, [
    { name: 'lo', mac: '00:00:00:00:00:00', addresses: [{ type: 'ipv4', address: '127.0.0.1', prefix: 8 }] },
    { name: 'enp1s0', mac: '52:54:00:aa:bb:cc', addresses: [] },
    { name: 'sit0', addresses: [] },
  ]);
  await assert.rejects(
    withAgent([agentCall({ execute: 'guest-network-get-interfaces' }, { return: {} })], (a) => a.networkInterfaces()),
    (err: unknown) => err instanceof VmsError && err.reason === 'agent.badReply',
  );
});

test('osInfo in camelCase', async () => {
  const answer = {
    return: {
      id: 'arch',
      name: 'Arch Linux',
      'pretty-name': 'Arch Linux',
      'kernel-release': '6.12.1-arch1-1',
      'kernel-version': '#1 SMP',
      machine: 'x86_64',
    },
  };
  assert.deepEqual(await withAgent([agentCall({ execute: 'guest-get-osinfo' }, answer)], (a) => a.osInfo()), {
    id: 'arch',
    name: 'Arch Linux',
    prettyName: 'Arch Linux',
    version: undefined,
    versionId: undefined,
    kernelRelease: '6.12.1-arch1-1',
    kernelVersion: '#1 SMP',
    machine: 'x86_64',
  });
});

test('exec sends argv, env and the input in base64, with output captured; execStatus decodes the output', async () => {
  const sent = {
    execute: 'guest-exec',
    arguments: {
      path: '/bin/sh',
      arg: ['-c', 'cat; echo err >&2'],
      env: ['A=1'],
      'input-data': b64('héllo'),
      'capture-output': true,
    },
  };
  const pid = await withAgent([agentCall(sent, { return: { pid: 42 } })], (a) =>
    a.exec({ argv: ['/bin/sh', '-c', 'cat; echo err >&2'], env: ['A=1'], input: 'héllo' }),
  );
  assert.equal(pid, 42);
  const running = await withAgent(
    [agentCall({ execute: 'guest-exec-status', arguments: { pid: 42 } }, { return: { exited: false } })],
    (a) => a.execStatus(42),
  );
  assert.deepEqual(running, { exited: false, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), truncated: false });
  const done = await withAgent(
    [
      agentCall(
        { execute: 'guest-exec-status', arguments: { pid: 42 } },
        { return: { exited: true, exitcode: 0, 'out-data': b64('héllo'), 'err-data': b64('err\n') } },
      ),
    ],
    (a) => a.execStatus(42),
  );
  assert.equal(done.exitCode, 0);
  assert.equal(done.stdout.toString(), 'héllo');
  assert.equal(done.stderr.toString(), 'err\n');
  const killed = await withAgent(
    [
      agentCall(
        { execute: 'guest-exec-status', arguments: { pid: 7 } },
        { return: { exited: true, signal: 9, 'out-truncated': true } },
      ),
    ],
    (a) => a.execStatus(7),
  );
  assert.equal(killed.signal, 9);
  assert.equal(killed.exitCode, undefined);
  assert.equal(killed.truncated, true);
});

test('exec: no argv, or more input than one argument can carry, is refused before asking the agent', async () => {
  await assert.rejects(
    withAgent([], (a) => a.exec({ argv: [] })),
    (err: unknown) => err instanceof VmsError && err.code === 'usage',
  );
  await assert.rejects(
    withAgent([], (a) => a.exec({ argv: ['cat'], input: Buffer.alloc(WRITE_CHUNK + 1) })),
    (err: unknown) => err instanceof VmsError && err.code === 'usage',
  );
  const sent = { execute: 'guest-exec', arguments: { path: 'true', arg: [], 'capture-output': true } };
  assert.equal(await withAgent([agentCall(sent, { return: { pid: 1 } })], (a) => a.exec({ argv: ['true'] })), 1);
});

test('readFile: open, read in chunks until eof, close', async () => {
  const content = 'x'.repeat(10);
  const file = await withAgent(
    [
      agentCall({ execute: 'guest-file-open', arguments: { path: '/etc/hostname', mode: 'r' } }, { return: 5 }),
      agentCall(
        { execute: 'guest-file-read', arguments: { handle: 5, count: READ_CHUNK } },
        { return: { count: 6, 'buf-b64': b64(content.slice(0, 6)), eof: false } },
      ),
      agentCall(
        { execute: 'guest-file-read', arguments: { handle: 5, count: READ_CHUNK } },
        { return: { count: 4, 'buf-b64': b64(content.slice(6)), eof: true } },
      ),
      agentCall({ execute: 'guest-file-close', arguments: { handle: 5 } }, { return: {} }),
    ],
    (a) => a.readFile('/etc/hostname'),
  );
  assert.equal(file.toString(), content);
});

test('readFile closes the file when a read fails', async () => {
  await assert.rejects(
    withAgent(
      [
        agentCall({ execute: 'guest-file-open', arguments: { path: '/f', mode: 'r' } }, { return: 3 }),
        agentCall(
          { execute: 'guest-file-read', arguments: { handle: 3, count: READ_CHUNK } },
          { return: { count: 1 } },
        ),
        agentCall({ execute: 'guest-file-close', arguments: { handle: 3 } }, { return: {} }),
      ],
      (a) => a.readFile('/f'),
    ),
    (err: unknown) => err instanceof VmsError && err.reason === 'agent.badReply',
  );
});

test('writeFile: in chunks of at most WRITE_CHUNK bytes, then close', async () => {
  const data = Buffer.alloc(WRITE_CHUNK + 3, 'a');
  await withAgent(
    [
      agentCall({ execute: 'guest-file-open', arguments: { path: '/f', mode: 'w' } }, { return: 9 }),
      agentCall(
        {
          execute: 'guest-file-write',
          arguments: { handle: 9, 'buf-b64': data.subarray(0, WRITE_CHUNK).toString('base64') },
        },
        { return: { count: WRITE_CHUNK, eof: false } },
      ),
      agentCall(
        { execute: 'guest-file-write', arguments: { handle: 9, 'buf-b64': b64('aaa') } },
        { return: { count: 3, eof: false } },
      ),
      agentCall({ execute: 'guest-file-close', arguments: { handle: 9 } }, { return: {} }),
    ],
    (a) => a.writeFile('/f', data),
  );
  await assert.rejects(
    withAgent([], (a) => a.writeChunk(1, Buffer.alloc(WRITE_CHUNK + 1))),
    RangeError,
  );
});

test('fsfreeze: freeze and thaw count filesystems; status is thawed or frozen', async () => {
  assert.equal(await withAgent([agentCall({ execute: 'guest-fsfreeze-freeze' }, { return: 2 })], (a) => a.freeze()), 2);
  assert.equal(await withAgent([agentCall({ execute: 'guest-fsfreeze-thaw' }, { return: 2 })], (a) => a.thaw()), 2);
  assert.equal(
    await withAgent([agentCall({ execute: 'guest-fsfreeze-status' }, { return: 'frozen' })], (a) => a.freezeStatus()),
    'frozen',
  );
  await assert.rejects(
    withAgent([agentCall({ execute: 'guest-fsfreeze-status' }, { return: 'melting' })], (a) => a.freezeStatus()),
    (err: unknown) => err instanceof VmsError && err.reason === 'agent.badReply',
  );
});

test('setUserPassword sends the password in base64, crypted or not', async () => {
  const sent = {
    execute: 'guest-set-user-password',
    arguments: { username: 'arch', password: b64('s3cret'), crypted: false },
  };
  await withAgent([agentCall(sent, { return: {} })], (a) => a.setUserPassword('arch', 's3cret', false));
});

test('an agent command that fails inside the guest is agent.failed', async () => {
  const runner = new FakeRunner([
    {
      cmd: 'virsh',
      args: () => true,
      result: {
        exitCode: 1,
        stderr:
          "error: internal error: unable to execute QEMU agent command 'guest-file-open': " +
          "Failed to open file '/x': No such file or directory\n",
      },
    },
  ]);
  await assert.rejects(
    new GuestAgent(new Virsh(runner, URI), 'vm').readFile('/x'),
    (err: unknown) => err instanceof VmsError && err.reason === 'agent.failed',
  );
});
