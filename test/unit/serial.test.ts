import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialSession } from '../../src/console/serial.js';
import { VmsError } from '../../src/errors.js';

// A fake guest on a unix socket, as libvirt exposes a serial console: a getty, then a shell that echoes what is
// typed (like a terminal) and evaluates SerialSession's marker line the way sh would.

const COMMANDS: Record<string, [output: string, status: number]> = {
  'uname -r': ['6.6.1-tiny\r\n', 0],
  false: ['', 1],
  'cat /nope': ["cat: can't open '/nope': No such file or directory\r\n", 1],
  'ls /': ['\x1b[1;34mbin\x1b[0m  \x1b[1;34metc\x1b[0m\r\nREADME\r\n', 0],
};
const MARKED = /^echo __VMS_B''EGIN_(\w+); (.*); echo __VMS_E''ND_\1=\$\?$/;

interface Guest { path: string; lines: string[]; stop(): Promise<void> }

function startGuest(opts: { password?: string; loggedIn?: boolean; listenAfterMs?: number } = {}): Promise<Guest> {
  const dir = mkdtempSync(join(tmpdir(), 'vms-serial-'));
  const path = join(dir, 'serial.sock');
  const lines: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    let state: 'login' | 'password' | 'shell' = opts.loggedIn ? 'shell' : 'login';
    let buffer = '';
    if (!opts.loggedIn) s.write('\r\nArch Linux 6.6.1-tiny (ttyS0)\r\n\r\ntiny login: \x1b[6n');
    const onLine = (line: string) => {
      lines.push(line);
      if (state === 'login') {
        if (line === '') return void s.write('\r\ntiny login: ');
        s.write(`${line}\r\n`);
        if (opts.password !== undefined) {
          state = 'password';
          return void s.write('Password: ');
        }
        state = 'shell';
        return void s.write('\x1b[1;31mroot@tiny\x1b[0m:~# ');
      }
      if (state === 'password') {
        if (line !== opts.password) {
          state = 'login';
          return void s.write('\r\nLogin incorrect\r\ntiny login: ');
        }
        state = 'shell';
        return void s.write('\r\n# ');
      }
      s.write(`${line}\r\n`); // the terminal's echo, in its own chunk
      const m = MARKED.exec(line);
      if (!m) return void s.write(line === '' ? '# ' : `sh: ${line.split(' ')[0]}: not found\r\n# `);
      const [output, status] = COMMANDS[m[2]!] ?? [`sh: ${m[2]}: not found\r\n`, 127];
      setTimeout(() => s.write(`__VMS_BEGIN_${m[1]}\r\n${output}__VMS_END_${m[1]}=${status}\r\n# `), 30);
    };
    s.on('data', (chunk) => {
      buffer += chunk.toString();
      let i: number;
      while ((i = buffer.indexOf('\r')) >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        onLine(line);
      }
    });
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => {
        rmSync(dir, { recursive: true, force: true });
        resolve();
      });
    });
  const listen = () => new Promise<void>((resolve) => server.listen(path, resolve));
  if (opts.listenAfterMs) {
    setTimeout(() => void listen(), opts.listenAfterMs);
    return Promise.resolve({ path, lines, stop });
  }
  return listen().then(() => ({ path, lines, stop }));
}

test('open + login at a getty + run: output and exit status of each command', async () => {
  const guest = await startGuest();
  const session = await SerialSession.open(guest.path, { timeoutMs: 2000 });
  try {
    await session.login({ user: 'root', timeoutMs: 2000 });
    assert.ok(guest.lines.includes('root'), `typed: ${JSON.stringify(guest.lines)}`);
    const cases: [string, string, number][] = [
      ['uname -r', '6.6.1-tiny\n', 0],
      ['false', '', 1],
      ['cat /nope', "cat: can't open '/nope': No such file or directory\n", 1],
      ['ls /', 'bin  etc\nREADME\n', 0],
      ['frobnicate', 'sh: frobnicate: not found\n', 127],
    ];
    for (const [command, output, exitCode] of cases) {
      assert.deepEqual(await session.run(command, 2000), { output, exitCode }, command);
    }
  } finally {
    session.close();
    await guest.stop();
  }
});

test('the echoed command line never counts as a marker', async () => {
  const guest = await startGuest({ loggedIn: true });
  const session = await SerialSession.open(guest.path, { timeoutMs: 2000 });
  try {
    await session.login({ user: 'root', timeoutMs: 2000 });
    assert.equal(guest.lines[0], '', 'Enter, for a fresh prompt');
    assert.match(guest.lines[1]!, MARKED, 'then a probe that the shell answers; no user name is typed');
    assert.equal(guest.lines.length, 2);
    const result = await session.run('uname -r', 2000);
    // The echo (received 30 ms before the output) holds no marker: only the shell's own output ends the wait.
    assert.deepEqual(result, { output: '6.6.1-tiny\n', exitCode: 0 });
    const typed = guest.lines.at(-1)!;
    assert.match(typed, MARKED);
    assert.ok(!typed.includes('__VMS_BEGIN_') && !typed.includes('__VMS_END_'), typed);
    assert.ok(session.console.transcript.includes(`${typed}\r\n`), 'the guest did echo the line');
  } finally {
    session.close();
    await guest.stop();
  }
});

test('login answers a password prompt', async () => {
  const guest = await startGuest({ password: 'hunter2' });
  const session = await SerialSession.open(guest.path, { timeoutMs: 2000 });
  try {
    await session.login({ user: 'root', password: 'hunter2', timeoutMs: 2000 });
    assert.deepEqual(guest.lines.filter(Boolean), ['root', 'hunter2']);
    assert.deepEqual(await session.run('false', 2000), { output: '', exitCode: 1 });
  } finally {
    session.close();
    await guest.stop();
  }
});

test('open waits for the socket to appear, and times out when it never does', async () => {
  const late = await startGuest({ listenAfterMs: 300 });
  const started = Date.now();
  const session = await SerialSession.open(late.path, { timeoutMs: 3000 });
  assert.ok(Date.now() - started >= 250);
  session.close();
  await late.stop();

  const missing = join(tmpdir(), `vms-serial-missing-${process.pid}.sock`);
  await assert.rejects(SerialSession.open(missing, { timeoutMs: 300 }), (err: unknown) => {
    assert.ok(err instanceof VmsError);
    assert.equal(err.code, 'timeout');
    assert.match(err.message, /^cannot connect to the serial console .*vms-serial-missing-\d+\.sock: .*ENOENT/);
    return true;
  });
});
