import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { Expect, cleanTerminalText } from '../../../src/console/expect.js';
import { VmsError } from '../../../src/errors.js';

/** A console stream: `feed` is what the guest prints, `written` what Expect typed. */
function fakeConsole() {
  const written: string[] = [];
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer | string, _enc, cb) {
      written.push(chunk.toString());
      cb();
    },
  });
  const feed = (...chunks: (string | Buffer)[]) => {
    for (const c of chunks) stream.push(c);
  };
  return { stream, written, feed, console: new Expect(stream) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LONG = { timeoutMs: 2000 };

test('cleanTerminalText strips escapes and control characters and normalises newlines', () => {
  const cases: [string, string][] = [
    ['tiny login: \x1b[6n', 'tiny login: '],
    ['\x1b[1;32mgreen\x1b[0m plain', 'green plain'],
    ['\x1b[?2004h# ', '# '],
    ['\x1b]0;root@tiny:~\x07# ', '# '],
    ['\x1b]0;title\x1b\\$ ', '$ '],
    ['\x1bMup \x1bDdown', 'up down'], // two-character escapes
    ['a\r\nb\rc\n', 'a\nb\nc\n'],
    ['bell\x07 nul\x00 del\x7f tab\tend', 'bell nul del tab\tend'], // tabs stay
    ['plain text: ok', 'plain text: ok'],
  ];
  for (const [raw, clean] of cases) assert.equal(cleanTerminalText(raw), clean, JSON.stringify(raw));
});

test('two-character escapes other than ESC @…_ are stripped too', () => {
  const cases: [string, string][] = [
    ['\x1b7saved\x1b8', 'saved'],
    ['\x1b=keypad\x1b>', 'keypad'],
    ['\x1bcreset', 'reset'],
  ];
  assert.deepEqual(
    cases.map(([raw]) => cleanTerminalText(raw)),
    cases.map(([, clean]) => clean),
  );
});

test('a prompt split over two chunks is found, with the output before it', async () => {
  const { feed, console } = fakeConsole();
  const waiting = console.expect(/login: *$/, LONG);
  feed('Arch Linux 6.6 (ttyS0)\r\n\r\ntiny lo');
  await sleep(10);
  feed('gin: ');
  const { before, match } = await waiting;
  assert.equal(before, 'Arch Linux 6.6 (ttyS0)\n\ntiny ');
  assert.equal(match[0], 'login: ');
});

test('terminal noise is stripped before matching, the transcript keeps the raw bytes', async () => {
  const { feed, console } = fakeConsole();
  const raw = '\x1b[1;32mtiny\x1b[0m login: \x1b[6n';
  feed(raw);
  const { before, match } = await console.expect(/tiny login: $/, LONG);
  assert.equal(before, '');
  assert.equal(match[0], 'tiny login: ');
  assert.equal(console.transcript, raw);
});

test('a match consumes its output: the next expect only sees what came after', async () => {
  const { feed, console } = fakeConsole();
  feed('ok 1\r\n# ');
  assert.equal((await console.expect(/# /, LONG)).before, 'ok 1\n');
  const next = console.expect(/ok \d/, LONG);
  await sleep(10);
  feed('ok 2\r\n');
  const { before, match } = await next;
  assert.equal(match[0], 'ok 2');
  assert.equal(before, '');
  // Already received output is matched at once, without waiting for more.
  feed('a b c');
  assert.equal((await console.expect(/b/, LONG)).before, '\na '); // the "\r\n" after "ok 2" was left
  assert.equal((await console.expect(/c$/, LONG)).before, ' ');
});

test('poke text is written at once and again while waiting, and no more after the match', async () => {
  const { feed, written, console } = fakeConsole();
  const waiting = console.expect(/login: $/, { timeoutMs: 2000, poke: { text: '\r', everyMs: 20 } });
  assert.deepEqual(written, ['\r']);
  await sleep(110);
  assert.ok(written.length >= 3, `poked ${written.length} times`);
  assert.ok(written.every((w) => w === '\r'));
  feed('login: ');
  await waiting;
  const count = written.length;
  await sleep(60);
  assert.equal(written.length, count);
});

test('a timeout rejects with code timeout and the last output in the details', async () => {
  const { feed, written, console } = fakeConsole();
  feed('booting\r\n[  OK  ] Reached target Multi-User System.\r\n');
  const started = Date.now();
  await assert.rejects(
    console.expect(/login:/, { timeoutMs: 50, poke: { text: '\r', everyMs: 10 } }),
    (err: unknown) => {
      assert.ok(err instanceof VmsError);
      assert.equal(err.code, 'timeout');
      assert.match(err.message, /^no \/login:\/ on the console within/);
      assert.match(err.details ?? '', /booting\n\[ {2}OK {2}\] Reached target Multi-User System\./);
      return true;
    },
  );
  assert.ok(Date.now() - started >= 45);
  const count = written.length;
  await sleep(40);
  assert.equal(written.length, count, 'no more pokes after the timeout');
});

test('the stream closing rejects a pending expect', async () => {
  const { feed, stream, console } = fakeConsole();
  feed('reboot: Power down\r\n');
  const waiting = console.expect(/# $/, LONG);
  stream.destroy();
  await assert.rejects(waiting, (err: unknown) => {
    assert.ok(err instanceof VmsError);
    assert.equal(err.code, 'failed');
    assert.match(err.message, /^the console closed: the VM stopped/);
    assert.match(err.hint ?? '', /vms info/);
    assert.match(err.details ?? '', /reboot: Power down/);
    return true;
  });
});

test('an abort rejects with the signal reason', async () => {
  const { console } = fakeConsole();
  const ac = new AbortController();
  const reason = new Error('interrupted by the user');
  const waiting = console.expect(/# $/, { timeoutMs: 2000, signal: ac.signal });
  setTimeout(() => ac.abort(reason), 10);
  await assert.rejects(waiting, (err: unknown) => err === reason);
});

test('an already aborted signal rejects at once', async () => {
  const { console } = fakeConsole();
  const ac = new AbortController();
  const reason = new Error('interrupted by the user');
  ac.abort(reason);
  await assert.rejects(console.expect(/# $/, { timeoutMs: 300, signal: ac.signal }), (err: unknown) => err === reason);
});

test('output split anywhere across chunks matches as if it came whole', async () => {
  const e = Buffer.from('é');
  const cases: [(string | Buffer)[], RegExp][] = [
    [['tiny login: \x1b[', '6n'], /login: $/],
    [['line one\r', '\nline two'], /one\nline two/],
    [[Buffer.from('caf'), e.subarray(0, 1), e.subarray(1)], /café/],
  ];
  const failures: string[] = [];
  for (const [chunks, pattern] of cases) {
    const { feed, console } = fakeConsole();
    for (const c of chunks) feed(c);
    await console.expect(pattern, { timeoutMs: 100 }).catch(() => failures.push(String(pattern)));
  }
  assert.deepEqual(failures, []);
});
