import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterEach, test } from 'node:test';
import {
  loginAsRoot,
  openTranscript,
  powerOffFromGuest,
  pushFiles,
  rebootAndWait,
  runProfiles,
  scriptFailed,
} from '../../../src/core/guest/guest-session.js';
import { pollUntil } from '../../../src/core/ops/poll.js';
import { vmFiles } from '../../../src/core/vm/vm-files.js';
import { VmsError } from '../../../src/errors.js';
import type { Runner } from '../../../src/runner.js';
import { GuestVm, type ScriptRun } from '../../helpers/guest-vm.js';
import { contextOn, virshCall } from '../../helpers/virsh-fake.js';
import { listedLater, recordingProgress } from '../../helpers/vm-fake.js';

// Driving a guest over its console (guest-session.ts) against the fake guest: the login and the shell made plain,
// files pushed into a private directory, the power-off from inside and its fallback, the reboot, the transcript, and
// what a failed guest script reports.

const VM = 'gs';
const guests: GuestVm[] = [];
afterEach(async () => {
  for (const g of guests.splice(0)) await g.stop();
});

/** What the guest was sent arrives a moment after the console is let go. */
const typedAtGuest = (guest: GuestVm, line: string) =>
  pollUntil(async () => guest.typed.includes(line), { timeoutMs: 2000, intervalMs: 10 });

/** A context, the VM's files and transcript, and a booted fake guest on its console with root's `password`. */
async function session(password?: string, runs: Record<string, ScriptRun> = {}) {
  const later = listedLater();
  const { ctx } = contextOn(later.runner, { VMS_BOOT_TIMEOUT: '5' });
  const rec = recordingProgress();
  const seen: string[] = [];
  ctx.progress = { ...rec.progress, transcript: (text) => void seen.push(text) };
  const files = vmFiles(ctx.config, VM);
  mkdirSync(files.dir, { recursive: true });
  const guest = new GuestVm(files.serialSocket, runs);
  guest.password = password;
  guests.push(guest);
  await guest.boot();
  const transcript = openTranscript(ctx, files.installLog, 'test');
  return { ctx, later, files, guest, transcript, seen, ...rec };
}

test('loginAsRoot: logs in as root with the password, then makes the shell plain (bash, no prompt games)', async () => {
  const s = await session('pw1');
  const console = await loginAsRoot(s.ctx, s.files, s.transcript, 'pw1');
  try {
    assert.match(s.guest.typed[0]!, /^command -v bash >\/dev\/null 2>&1 && exec bash --norc --noprofile --noediting$/);
    assert.match(s.guest.ran[0]!, /^PS1='\[vms\]# '; PS2=''; export TERM=dumb; unset PROMPT_COMMAND; dmesg -n 1/);
    assert.ok(s.seen.join('').includes('tiny login:'), 'what the guest printed went to the transcript and progress');
  } finally {
    console.close();
  }
  await s.transcript.close();
  assert.match(readFileSync(s.files.installLog, 'utf8'), /tiny login:/);
});

test('loginAsRoot: a refused password fails with its error (and the console is let go)', async () => {
  const s = await session('right');
  await assert.rejects(
    loginAsRoot(s.ctx, s.files, s.transcript, 'wrong'),
    (e: unknown) => e instanceof VmsError && e.message === "the guest refused root's password on the console",
  );
  await s.transcript.close();
});

test('pushFiles: a private directory (700), then each file 0600, in order', async () => {
  const s = await session();
  const console = await loginAsRoot(s.ctx, s.files, s.transcript);
  try {
    await pushFiles(console, '/root/x', { 'a.sh': 'echo a\n', 'b.sh': 'echo b\n' });
  } finally {
    console.close();
  }
  const ran = s.guest.ran.slice(1);
  assert.equal(ran[0], "mkdir -p '/root/x' && chmod 700 '/root/x'");
  const decodes = ran.filter((c) => c.startsWith('base64 -d'));
  assert.deepEqual(
    decodes.map((c) => /chmod (\d+) '([^']+)'/.exec(c)!.slice(1)),
    [
      ['600', '/root/x/a.sh'],
      ['600', '/root/x/b.sh'],
    ],
  );
  assert.equal(s.guest.files.get('/root/x/b.sh')?.toString(), 'echo b\n');
  await s.transcript.close();
});

test('powerOffFromGuest: sync, poweroff typed, off at the first question: no virsh destroy, no note', async () => {
  const s = await session();
  const console = await loginAsRoot(s.ctx, s.files, s.transcript);
  s.later.expect([virshCall(['domstate', VM], 'shut off\n')]);
  await powerOffFromGuest(s.ctx, console, VM);
  s.later.done();
  assert.ok(await typedAtGuest(s.guest, 'poweroff'));
  assert.deepEqual(s.guest.ran.slice(1), ['sync']);
  assert.deepEqual(s.guest.typed.slice(1), ['poweroff']);
  assert.deepEqual(s.notes, []);
  await s.transcript.close();
});

test('powerOffFromGuest: a guest still running after the wait is powered off (virsh destroy), said so', async () => {
  const s = await session();
  const console = await loginAsRoot(s.ctx, s.files, s.transcript);
  s.later.expect([virshCall(['domstate', VM], 'running\n'), virshCall(['destroy', VM])]);
  await powerOffFromGuest(s.ctx, console, VM, 0);
  s.later.done();
  assert.ok(await typedAtGuest(s.guest, 'poweroff'), 'asked to power off first');
  assert.deepEqual(s.notes, ['gs did not power off within 0s after sync: powering it off']);
  await s.transcript.close();
});

test('rebootAndWait: reboot typed, done when the login prompt is back', async () => {
  const s = await session();
  const console = await loginAsRoot(s.ctx, s.files, s.transcript);
  try {
    await rebootAndWait(s.ctx, console);
    assert.deepEqual(s.guest.typed.slice(1), ['reboot']);
    assert.match(console.console.transcript, /reboot: Restarting system\r?\n\r?\n?tiny login: $/);
  } finally {
    console.close();
  }
  await s.transcript.close();
});

test('openTranscript appends (0600) under a header; scriptFailed: the status, phase and last 15 lines', async () => {
  const s = await session();
  await s.transcript.close();
  writeFileSync(s.files.applyLog, 'earlier\n', { mode: 0o600 });
  const t = openTranscript(s.ctx, s.files.applyLog, 'vms apply gs x');
  t.write('hello\n');
  await t.close();
  assert.match(
    readFileSync(s.files.applyLog, 'utf8'),
    /^earlier\n\n----- vms apply gs x, \d{4}-\d\d-\d\dT[\d:.]+Z -----\nhello\n$/,
  );
  assert.equal(statSync(s.files.installLog).mode & 0o777, 0o600);

  const output = Array.from({ length: 20 }, (_, i) => `line ${i + 1}`).join('\n') + '\n\n';
  const e = scriptFailed('profile dev', 5, output, t, 'packages');
  assert.deepEqual(
    [e.code, e.message, e.hint, e.details],
    [
      'failed',
      "profile dev failed with exit status 5 in phase 'packages'",
      `the whole transcript is in ${s.files.applyLog}`,
      Array.from({ length: 15 }, (_, i) => `line ${i + 6}`).join('\n'),
    ],
  );
  assert.equal(scriptFailed('install.sh', 1, 'x', t).message, 'install.sh failed with exit status 1');
});

/** Logged in on a fresh guest; `fn` gets the session, which is closed after it, and the transcript too. */
async function loggedIn(
  fn: (s: Awaited<ReturnType<typeof session>>, console: Awaited<ReturnType<typeof loginAsRoot>>) => Promise<void>,
  runs: Record<string, ScriptRun> = {},
) {
  const s = await session(undefined, runs);
  const console = await loginAsRoot(s.ctx, s.files, s.transcript);
  try {
    await fn(s, console);
  } finally {
    console.close();
    await s.transcript.close();
  }
  return s;
}

/** The VmsError `promise` rejects with, as [code, message]. */
async function failure(promise: Promise<unknown>): Promise<[string, string]> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof VmsError, String(err));
    return [err.code, err.message];
  }
  return assert.fail('no error');
}

test('pushFiles: a directory the guest will not make fails naming it, before any file is sent', async () => {
  await loggedIn(async (s, console) => {
    s.guest.fails = /^mkdir /;
    assert.deepEqual(await failure(pushFiles(console, '/root/x', { 'a.sh': 'echo a\n' })), [
      'failed',
      'cannot make /root/x in the guest (exit status 1)',
    ]);
    assert.deepEqual(s.guest.files.size, 0);
  });
});

test('runProfiles: a sync that fails after the profiles fails the run, naming it', async () => {
  await loggedIn(async (s, console) => {
    s.guest.fails = /^sync$/;
    const p = { name: 'p', text: 'echo p\n', from: 'test' };
    assert.deepEqual(await failure(runProfiles(s.ctx, console, [p], new Map(), "VMS_USER='u'\n", s.transcript)), [
      'failed',
      'sync in the guest (exit status 1)',
    ]);
    assert.deepEqual(s.guest.scripts, ['p.sh']);
  });
});

test('runProfiles: a profile that overruns its phase is a timeout naming the profile and the phase', async () => {
  const runs = { 'slow.sh': { phases: [['packages', 1]], hangs: true } } satisfies Record<string, ScriptRun>;
  await loggedIn(async (s, console) => {
    const p = { name: 'slow', text: 'sleep 9\n', from: 'test' };
    assert.deepEqual(await failure(runProfiles(s.ctx, console, [p], new Map(), "VMS_USER='u'\n", s.transcript)), [
      'timeout',
      "profile slow did not finish phase 'packages' within 1s",
    ]);
  }, runs);
});

test('powerOffFromGuest: a sync that fails stops it before the poweroff, naming it', async () => {
  await loggedIn(async (s, console) => {
    s.guest.fails = /^sync$/;
    assert.deepEqual(await failure(powerOffFromGuest(s.ctx, console, VM, 0)), [
      'failed',
      'sync in the guest (exit status 1)',
    ]);
    assert.deepEqual(s.guest.typed.slice(1), [], 'no poweroff typed');
  });
});

test('powerOffFromGuest: the note gives the wait in seconds', async () => {
  await loggedIn(async (s, console) => {
    // However often the wait asks (the clock decides), the guest runs on; then it is destroyed, once.
    const asked: string[] = [];
    const runner: Runner = {
      run: async (_cmd, args) => {
        asked.push(args[2]!);
        return { stdout: args[2] === 'domstate' ? 'running\n' : '', stderr: '', exitCode: 0 };
      },
      interactive: async () => 0,
    };
    const ctx = { ...contextOn(runner, {}).ctx, progress: s.ctx.progress };
    await powerOffFromGuest(ctx, console, VM, 1);
    assert.deepEqual(asked.at(-1), 'destroy');
    assert.ok(asked.slice(0, -1).every((a) => a === 'domstate') && asked.length >= 2, asked.join(' '));
    assert.deepEqual(s.notes, ['gs did not power off within 0.001s after sync: powering it off']);
  });
});

test('rebootAndWait: done at the login prompt at the end of the output (no space after it needed), not before', async () => {
  await loggedIn(async (s, console) => {
    s.guest.rebootOutput = [
      [10, '\r\nreboot: Restarting system\r\nLast login: yesterday\r\n'],
      [300, 'tiny login:'],
    ];
    const started = Date.now();
    await rebootAndWait(s.ctx, console);
    assert.ok(Date.now() - started >= 250, 'not done at "Last login: "');
    assert.match(console.console.transcript, /tiny login:$/);
  });
});
