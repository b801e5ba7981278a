import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SerialSession } from '../../../src/console/serial.js';
import { VmsError } from '../../../src/errors.js';
import { begin, end, MARKED, pushShell, startGuest, tableShell, type Guest } from '../../helpers/fake-guest.js';

// The fake guest (test/helpers/fake-guest.ts) is a unix socket, as libvirt exposes a serial console: a getty, then a
// shell that echoes what is typed (like a terminal) and evaluates SerialSession's marker line the way sh would.

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

/** A logged-in session on a guest whose shell runs `shell` (the COMMANDS table for what it returns false on). */
async function withShell(
  shell: (command: string, id: string, write: (text: string) => void) => boolean,
  fn: (session: SerialSession, guest: Guest) => Promise<void>,
) {
  const guest = await startGuest({
    loggedIn: true,
    shell: (command, id, write) => void (shell(command, id, write) || tableShell(command, id, write)),
  });
  const session = await SerialSession.open(guest.path, { timeoutMs: 2000 });
  try {
    await session.login({ user: 'root', timeoutMs: 2000 });
    await fn(session, guest);
  } finally {
    session.close();
    await guest.stop();
  }
}

/** Writes each piece of guest output after its delay (counted from the previous piece). */
function play(write: (text: string) => void, pieces: [delayMs: number, text: string][]) {
  let at = 0;
  for (const [delay, text] of pieces) {
    at += delay;
    setTimeout(() => write(text), at);
  }
}

const INSTALL = 'sh /root/install.sh /root/settings.sh';

test('runPhased reports each phase in order, and returns the exit status and the last phase', async () => {
  for (const status of [0, 4]) {
    await withShell(
      (command, id, write) => {
        if (command !== INSTALL) return false;
        play(write, [
          [10, `${begin(id)}::vms-phase partition 5\r\n`],
          [10, 'some output\r\n::vms-ph'], // a phase line cut between two chunks
          [20, 'ase pacstrap 60\r\n\x1b[1minstalling\x1b[0m\r\n'],
          [10, `not a ::vms-phase fake 1\r\n::vms-phase bootloader 5\r\n`],
          [10, end(id, status)],
        ]);
        return true;
      },
      async (session) => {
        const phases: [string, number][] = [];
        const result = await session.runPhased(INSTALL, {
          label: 'the script',
          firstTimeoutMs: 2000,
          onPhase: (name, seconds) => phases.push([name, seconds]),
        });
        assert.deepEqual(phases, [
          ['partition', 5],
          ['pacstrap', 60],
          ['bootloader', 5],
        ]);
        assert.deepEqual(result, {
          output:
            '::vms-phase partition 5\nsome output\n::vms-phase pacstrap 60\ninstalling\nnot a ::vms-phase fake 1\n::vms-phase bootloader 5\n',
          exitCode: status,
          phase: 'bootloader',
        });
        assert.deepEqual(
          await session.run('uname -r', 2000),
          { output: '6.6.1-tiny\n', exitCode: 0 },
          'the session goes on',
        );
      },
    );
  }
});

test('runPhased: each phase has its own time, counted from its start', async () => {
  // 1.8 s in all: longer than the first timeout and than any phase's, but each phase ends in time.
  await withShell(
    (command, id, write) => {
      if (command !== INSTALL) return false;
      play(write, [
        [0, begin(id)],
        [600, '::vms-phase a 1\r\n'],
        [600, '::vms-phase b 1\r\n'],
        [600, end(id, 0)],
      ]);
      return true;
    },
    async (session) => {
      assert.deepEqual(await session.runPhased(INSTALL, { label: 'the script', firstTimeoutMs: 800 }), {
        output: '::vms-phase a 1\n::vms-phase b 1\n',
        exitCode: 0,
        phase: 'b',
      });
    },
  );
});

/** Waits until the guest has received `text` (or fails after a second). */
async function received(guest: Guest, text: string) {
  for (let i = 0; i < 100 && !guest.received().includes(text); i++) await sleep(10);
  assert.ok(guest.received().includes(text), `the guest never got ${JSON.stringify(text)}`);
}

test('runPhased: a phase that overruns its own time is a timeout naming it, and the command is interrupted', async () => {
  await withShell(
    (command, id, write) => {
      if (command !== INSTALL) return false;
      play(write, [
        [0, `${begin(id)}::vms-phase fast 30\r\n`],
        [50, '::vms-phase slow 1\r\nworking…\r\n'],
      ]); // and never ends
      return true;
    },
    async (session, guest) => {
      const phases: string[] = [];
      const started = Date.now();
      await assert.rejects(
        session.runPhased(INSTALL, { label: 'the script', firstTimeoutMs: 5000, onPhase: (name) => phases.push(name) }),
        (err: unknown) => {
          assert.ok(err instanceof VmsError, String(err));
          assert.equal(err.code, 'timeout');
          assert.equal(err.message, "the script did not finish phase 'slow' within 1s");
          assert.match(err.details ?? '', /working…/, 'the console tail comes along');
          return true;
        },
      );
      const took = Date.now() - started;
      assert.ok(took >= 1000 && took < 3000, `timed out after ${took} ms: the phase's 1 s, not the first phase's 5 s`);
      assert.deepEqual(phases, ['fast', 'slow']);
      await received(guest, '\x03');
    },
  );
});

test('runPhased: no first phase within firstTimeoutMs is a timeout too, with Ctrl-C', async () => {
  await withShell(
    (command, id, write) => {
      if (command !== INSTALL) return false;
      write(begin(id)); // started, then silence
      return true;
    },
    async (session, guest) => {
      await assert.rejects(session.runPhased(INSTALL, { label: 'the script', firstTimeoutMs: 600 }), (err: unknown) => {
        assert.ok(err instanceof VmsError, String(err));
        assert.equal(err.code, 'timeout');
        assert.equal(err.message, 'the script did not finish its first phase within 1s');
        return true;
      });
      await received(guest, '\x03');
    },
  );
});

test('pushFile: the file arrives whole, in lines short enough for any shell, with its mode', async () => {
  const content = Buffer.concat([randomBytes(5000), Buffer.from('it\'s "quoted" $HOME `x` \\ ü\n')]);
  const files = new Map<string, Buffer>();
  const log: string[] = [];
  await withShell(pushShell(files, log), async (session, guest) => {
    await session.pushFile('/root/vms/profiles/some-profile-name.sh', content, 0o755);
    assert.deepEqual([...files.keys()], ['/root/vms/profiles/some-profile-name.sh'], 'the .vms-b64 part is gone');
    assert.ok(files.get('/root/vms/profiles/some-profile-name.sh')!.equals(content));
    assert.ok(
      log.filter((c) => c.startsWith('printf')).length > 5,
      `${log.length} commands: the content went in many chunks`,
    );
    const typed = guest.lines.filter((l) => MARKED.test(l));
    assert.ok(
      typed.some((l) => l.includes("chmod 755 '/root/vms/profiles/some-profile-name.sh'")),
      'mode 0o755 is chmod 755',
    );
    const longest = Math.max(...guest.lines.map((l) => l.length));
    assert.ok(longest < 1000, `a line of ${longest} characters: busybox ash keeps 1024`);

    await session.pushFile('/root/empty', '');
    assert.equal(files.get('/root/empty')?.length, 0, 'an empty file is pushed too');
    await session.pushFile('/root/text', 'ünïcode ✓\n');
    assert.equal(files.get('/root/text')?.toString(), 'ünïcode ✓\n');
  });
});

test('pushFile: a chunk damaged on the way is caught by the sha256 check', async () => {
  const files = new Map<string, Buffer>();
  const dropOne = (chunk: string, i: number) => (i === 1 ? chunk.slice(0, 100) + chunk.slice(101) : chunk); // a character lost
  await withShell(pushShell(files, [], { damage: dropOne }), async (session) => {
    await assert.rejects(session.pushFile('/root/settings.sh', randomBytes(3000)), (err: unknown) => {
      assert.ok(err instanceof VmsError, String(err));
      assert.equal(err.code, 'failed');
      assert.equal(err.message, '/root/settings.sh arrived damaged in the guest (sha256 differs)');
      assert.match(err.details ?? '', /^[0-9a-f]{64} {2}\/root\/settings\.sh$/);
      return true;
    });
  });
});

test('pushFile: a write that fails in the guest stops the push with its exit status', async () => {
  const files = new Map<string, Buffer>();
  const log: string[] = [];
  await withShell(pushShell(files, log, { failChunk: 1 }), async (session) => {
    await assert.rejects(session.pushFile('/root/settings.sh', randomBytes(3000)), (err: unknown) => {
      assert.ok(err instanceof VmsError, String(err));
      assert.equal(err.message, 'cannot write /root/settings.sh in the guest (exit status 1)');
      assert.match(err.details ?? '', /No space left on device/);
      return true;
    });
    assert.ok(!log.some((c) => c.startsWith('base64 -d')), 'nothing is decoded after a failed write');
    assert.ok(!files.has('/root/settings.sh'));
  });
});
