import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { testbed } from '../helpers/testbed.js';

// Extra serial ports on a tiny guest: added while it is shut off, then checked from both ends after it starts (the
// guest writes to /dev/ttySN; the test reads the host file, or reads the socket with node:net).

const bed = testbed('serial');
after(() => bed.cleanup());

const vm = bed.name('s');
const config = () => bed.virsh('dumpxml', vm, '--inactive');
const file = join(bed.dir, 'ttyS1.log');
const sock = join(bed.dir, 'ttyS2.sock');
const OWNED = `\\s*<seclabel model='dac' relabel='yes'>\\s*<label>\\+0:\\+${statSync(bed.env.VMS_STATE_DIR!).gid}</label>\\s*</seclabel>\\s*</source>`;

/** A TCP port nobody listens on right now (the kernel's pick). */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Connects to a serial port's socket and collects what arrives. */
async function reader(target: { port: number; host: string } | { path: string }) {
  const socket: Socket = connect(target as never);
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let text = '';
  socket.on('data', (d) => (text += d));
  return {
    async waitFor(marker: string) {
      for (let i = 0; i < 50 && !text.includes(marker); i++) await sleep(200);
      return text;
    },
    close: () => socket.destroy(),
  };
}

/** Runs a command that must fail with `code` and `message`, and checks the saved definition did not change. */
async function refused(args: string[], code: number, message: RegExp) {
  const before = config();
  const r = await bed.refused(args); // no VM, state or file changed either
  assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.equal(config(), before, `${args.join(' ')} changed the definition`);
}

describe('vms serial', () => {
  let tcpPort = 0;
  before(async () => {
    await bed.createTiny(vm);
    tcpPort = await freePort();
  });

  test('bad backends, the console port and unknown VMs are refused; nothing changed', async () => {
    for (const spec of [
      'foo:/x',
      'file:relative.log',
      'file:',
      'unix:sock',
      'tcp:127.0.0.1',
      'tcp:127.0.0.1:0',
      'tcp:127.0.0.1:70000',
      'tcp:bad_host:4000',
    ]) {
      await refused(
        ['serial', 'add', vm, '--backend', spec],
        2,
        new RegExp(`error: invalid serial backend '${spec.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'`),
      );
    }
    await refused(['serial', 'add', vm, '--backend', `file:${file}`, '--server'], 2, /--server is for unix: and tcp:/);
    await refused(
      ['serial', 'add', vm, '--backend', `file:${bed.dir}/no/such/dir.log`],
      3,
      /error: no directory .*\/no\/such/,
    );
    await refused(['serial', 'add', vm], 2, /required option '--backend <spec>'/);
    await refused(['serial', 'del', vm, '0'], 2, /error: serial port 0 is vms's console and stays/);
    await refused(['serial', 'del', vm, '1'], 3, new RegExp(`error: ${vm} has no serial port 1`));
    for (const args of [
      ['add', bed.name('ghost'), '--backend', `file:${file}`],
      ['del', bed.name('ghost'), '1'],
      ['list', bed.name('ghost')],
    ]) {
      const r = await bed.refused(['serial', ...args]);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /error: no VM named '.*-ghost'/);
    }
  });

  test('add file:, unix: --server and tcp: --server to the shut-off VM: ports 1, 2, 3 in its config; list shows them and the console', async () => {
    const specs = [`file:${file}`, `unix:${sock}`, `tcp:127.0.0.1:${tcpPort}`];
    for (const [i, spec] of specs.entries()) {
      const r = await bed.vms(['serial', 'add', vm, '--backend', spec, ...(i > 0 ? ['--server'] : []), '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.json.port.port, i + 1);
      assert.equal(r.json.port.backend, spec);
      assert.equal(r.json.pendingRestart, false);
    }
    const xml = config();
    // The file and the listening socket are the user's (root here), with the state dir's group.
    assert.match(
      xml,
      new RegExp(
        `<serial type='file'>\\s*<source path='${file}' append='on'>${OWNED}\\s*<target type='isa-serial' port='1'>`,
      ),
    );
    assert.match(
      xml,
      new RegExp(
        `<serial type='unix'>\\s*<source mode='bind' path='${sock}'>${OWNED}\\s*<target type='isa-serial' port='2'>`,
      ),
    );
    assert.match(
      xml,
      new RegExp(
        `<serial type='tcp'>\\s*<source mode='bind' host='127.0.0.1' service='${tcpPort}'/>\\s*<protocol type='raw'/>\\s*<target type='isa-serial' port='3'>`,
      ),
    );

    const list = await bed.vms(['serial', 'list', vm]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^PORT\s+GUEST\s+BACKEND$/m);
    assert.match(
      list.stdout,
      new RegExp(`^0\\s+ttyS0\\s+unix:${bed.dir}/vms/${vm}/serial\\.sock \\(server\\)\\s+vms console$`, 'm'),
    );
    assert.match(list.stdout, new RegExp(`^1\\s+ttyS1\\s+file:${file}$`, 'm'));
    assert.match(list.stdout, new RegExp(`^2\\s+ttyS2\\s+unix:${sock} \\(server\\)$`, 'm'));
    assert.match(list.stdout, new RegExp(`^3\\s+ttyS3\\s+tcp:127\\.0\\.0\\.1:${tcpPort} \\(server\\)$`, 'm'));
    await refused(['serial', 'add', vm, '--backend', `file:${bed.dir}/fourth.log`], 4, /no free serial port/);
  });

  test('after the start: the guest has UARTs at ttyS1-3, the unix socket is there, and what the guest writes arrives', async () => {
    assert.ok(!existsSync(sock), 'no socket before the VM runs');
    assert.equal((await bed.vms(['start', vm])).code, 0);
    assert.ok(statSync(sock).isSocket(), 'QEMU listens on the unix socket');
    const uarts = await bed.guest(vm, 'cat /proc/tty/driver/serial');
    for (const [n, io] of [
      [1, '2F8'],
      [2, '3E8'],
      [3, '2E8'],
    ])
      assert.match(uarts, new RegExp(`^${n}: uart:16550A port:00000${io} `, 'm'));

    await bed.guest(vm, 'echo to-the-file > /dev/ttyS1');
    // The UART drains on its own time (TCG): the echo returns before QEMU has written everything to the file.
    for (let i = 0; i < 50 && !readFileSync(file, 'utf8').includes('to-the-file'); i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.match(readFileSync(file, 'utf8'), /to-the-file/);

    for (const [device, target] of [
      ['ttyS2', { path: sock }],
      ['ttyS3', { host: '127.0.0.1', port: tcpPort }],
    ] as const) {
      const r = await reader(target);
      try {
        await bed.guest(vm, `echo over-${device} > /dev/${device}`);
        assert.match(await r.waitFor(`over-${device}`), new RegExp(`over-${device}`));
      } finally {
        r.close();
      }
    }
  });

  test('on the running VM: del and add change the config only, and say a restart is pending', async () => {
    const del = await bed.vms(['serial', 'del', vm, '1']);
    assert.equal(del.code, 0, del.stderr);
    assert.equal(
      del.stdout,
      `removed serial port 1 (file:${file}) from ${vm}'s config\nnote: ${vm} is running: ttyS1 stays in the running VM until it stops\n`,
    );
    assert.doesNotMatch(config(), /<serial type='file'>/);
    assert.match(bed.virsh('dumpxml', vm), /<serial type='file'>/, 'the running VM keeps it (QEMU cannot unplug it)');

    const other = join(bed.dir, 'other.log');
    const add = await bed.vms(['serial', 'add', vm, '--backend', `file:${other}`, '--json']);
    assert.equal(add.code, 0, add.stderr);
    assert.equal(add.json.pendingRestart, true);
    assert.deepEqual(add.json.port, {
      port: 1,
      device: 'ttyS1',
      type: 'file',
      backend: `file:${other}`,
      console: false,
      inConfig: true,
      live: false,
    });
    assert.match(config(), new RegExp(`<source path='${other}' append='on'>${OWNED}`));

    const list = await bed.vms(['serial', 'list', vm, '--json']);
    const port1 = list.json.ports
      .filter((p: { port: number }) => p.port === 1)
      .map((p: { backend: string; inConfig: boolean; live: boolean }) => [p.backend, p.inConfig, p.live]);
    assert.deepEqual(
      port1,
      [
        [`file:${other}`, true, false],
        [`file:${file}`, false, true],
      ],
      'the new port from the next start, the old one until the VM stops',
    );
  });

  test('del on a shut-off VM: gone from the config; the console port stays', async () => {
    await bed.vms(['kill', vm]);
    for (const port of ['3', '2', '1']) {
      const r = await bed.vms(['serial', 'del', vm, port, '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.json.pendingRestart, false);
    }
    const ports = (await bed.vms(['serial', 'list', vm, '--json'])).json.ports;
    assert.deepEqual(
      ports.map((p: { port: number; console: boolean }) => [p.port, p.console]),
      [[0, true]],
    );
    assert.equal(config().match(/<serial /g)?.length, 1);
  });
});
