import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test, type TestContext } from 'node:test';
import type { Context } from '../../../src/core/context.js';
import type { Progress, TransferStatus } from '../../../src/core/progress.js';
import {
  ARCH_KEY_UID,
  ARCH_RELEASE_KEY,
  fetchIso,
  listIsos,
  type FetchResult,
} from '../../../src/core/storage/iso-fetch.js';
import { ARCH_ISO } from '../../../src/core/storage/iso.js';
import { VmsError } from '../../../src/errors.js';
import type { RunOptions } from '../../../src/runner.js';
import type { Expected } from '../../helpers/fake-runner.js';
import { fakeContext } from '../../helpers/virsh-fake.js';

// fetchIso against a mirror of the test's own on 127.0.0.1 (port 0): a few hundred KB of random bytes as the ISO, its
// sha256sums.txt and signature, Range requests, and faults on demand; gpg is the strict fake runner, found on a PATH
// of the test's own. Every test checks the files the ISO dir holds afterwards.

const iso = randomBytes(300_000 + 123);
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const SIG = Buffer.from('a detached signature');
const MIRRORS_HINT = 'pick another mirror (its iso/latest/ directory; list: https://archlinux.org/download/)';

interface Seen {
  url: string;
  range?: string;
  encoding?: string;
}

const mirror = {
  seen: [] as Seen[],
  /** sha256sums.txt; undefined: a 404. */
  sums: undefined as string | undefined,
  sig: undefined as Buffer | undefined,
  /** Another answer to the ISO request, instead of serving the file with Range support. */
  isoAnswer: undefined as ((req: IncomingMessage, res: ServerResponse) => void) | undefined,
  open: new Set<ServerResponse>(),
};
const sumsFor = (sha256: string) =>
  `${sha('x')}  archlinux-2026.11.01-x86_64.iso\n${sha256}  ${ARCH_ISO}\n${sha('y')}  archlinux-bootstrap-x86_64.tar.zst\n`;

function serveIso(req: IncomingMessage, res: ServerResponse): void {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = m ? Number(m[1]) : 0;
  if (start >= iso.length) return void res.writeHead(416, { 'content-range': `bytes */${iso.length}` }).end();
  const headers = { 'content-length': String(iso.length - start) };
  if (m) res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${iso.length - 1}/${iso.length}` });
  else res.writeHead(200, headers);
  // in pieces, a moment apart: the download reports its progress on the way
  res.write(iso.subarray(start, start + 1000), () => setTimeout(() => res.end(iso.subarray(start + 1000)), 250));
}

const server = createServer((req, res) => {
  mirror.seen.push({ url: req.url!, range: req.headers.range, encoding: req.headers['accept-encoding'] });
  if (req.url === '/iso/latest/sha256sums.txt' && mirror.sums !== undefined) return void res.end(mirror.sums);
  if (req.url === `/iso/latest/${ARCH_ISO}`) return (mirror.isoAnswer ?? serveIso)(req, res);
  if (req.url === `/iso/latest/${ARCH_ISO}.sig` && mirror.sig) return void res.end(mirror.sig);
  res.writeHead(404).end('not found');
});
let url = '';
let origin = '';

before(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  url = `${origin}/iso/latest/`;
});
after(async () => {
  for (const res of mirror.open) res.socket?.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});
beforeEach(() => {
  mirror.seen = [];
  mirror.sums = sumsFor(sha(iso));
  mirror.sig = undefined;
  mirror.isoAnswer = undefined;
});

/**
 * An ISO dir and a Context on the strict fake runner (`gpg`: its answers; a PATH with a gpg on it when given), with a
 * Progress that keeps every step, note and transfer report, and the options each run got.
 */
function setup(t: TestContext, gpg?: Expected[]) {
  const dir = join(mkdtempSync(join(tmpdir(), 'vms-unit-isofetch-')), 'iso');
  const { ctx, runner } = fakeContext(gpg ?? [], { VMS_ISO_DIR: dir });
  t.after(() => runner.done());
  const bin = mkdtempSync(join(tmpdir(), 'vms-unit-bin-'));
  if (gpg) {
    writeFileSync(join(bin, 'gpg'), '#!/bin/sh\nexit 1\n');
    chmodSync(join(bin, 'gpg'), 0o755);
  }
  const steps: string[] = [];
  const notes: string[] = [];
  const transfers: TransferStatus[] = [];
  const progress: Progress = {
    step: (title, fn) => (steps.push(title), fn()),
    note: (m) => notes.push(m),
    transfer: (s) => transfers.push(s),
  };
  const runOptions: (RunOptions | undefined)[] = [];
  const run = runner.run.bind(runner);
  runner.run = (cmd, args, opts) => (runOptions.push(opts), run(cmd, args, opts));
  const abort = new AbortController();
  const c: Context = { ...ctx, progress, signal: abort.signal, host: { ...ctx.host, env: { PATH: bin } } };
  const path = join(dir, ARCH_ISO);
  return {
    ctx: c,
    abort,
    dir,
    path,
    part: `${path}.part`,
    record: `${path}.part.sha256`,
    steps,
    notes,
    transfers,
    runOptions,
    /** An earlier fetch's .part with these bytes, and its record of the checksum it was for (null: no record). */
    leavePart: (bytes: Buffer, forSha: string | null = sha(iso)) => {
      mkdirSync(dir, { recursive: true });
      writeFileSync(`${path}.part`, bytes);
      if (forSha) writeFileSync(`${path}.part.sha256`, `${forSha}  ${ARCH_ISO}\n`);
    },
    /** The names in the ISO dir now. */
    files: () => (existsSync(dir) ? readdirSync(dir).sort() : []),
  };
}

const result = (over: Partial<FetchResult> & { path: string }): FetchResult => ({
  sha256: sha(iso),
  bytes: iso.length,
  resumedFrom: 0,
  verified: 'sha256',
  alreadyCurrent: false,
  mirror: url,
  ...over,
});
const isoUrl = () => `${url}${ARCH_ISO}`;
/** Runs `fn` once the client has written `bytes` bytes to `part` (a busy machine may take its time to). */
const whenPartHolds = (part: string, bytes: number, fn: () => void) => {
  const poll = setInterval(() => {
    if ((existsSync(part) ? statSync(part).size : 0) < bytes) return;
    clearInterval(poll);
    fn();
  }, 20);
};
const gets = () => mirror.seen.map((s) => [s.url.replace('/iso/latest/', ''), s.range ?? '-']);
const NO_GPG = 'gpg is not installed: the ISO was checked by sha256 only';

/** Rejects with exactly this VmsError (code, message, hint; `data` when given). */
async function rejectsWith(
  p: Promise<unknown>,
  want: { code: string; message: string; hint?: string; data?: Record<string, unknown> },
) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof VmsError, String(e));
    assert.deepEqual(
      { code: e.code, message: e.message, hint: e.hint, ...(want.data && { data: e.data }) },
      { hint: undefined, ...want },
    );
    return true;
  });
}

describe('fetchIso: the download', () => {
  test('fresh: the ISO into the ISO dir (made), checked by sha256, no .part, record or lock left', async (t) => {
    const h = setup(t);
    const r = await fetchIso(h.ctx, { mirror: url });
    assert.deepEqual(r, result({ path: h.path }));
    assert.ok(readFileSync(h.path).equals(iso));
    assert.deepEqual(h.files(), [ARCH_ISO]);
    assert.deepEqual(gets(), [
      ['sha256sums.txt', '-'],
      [ARCH_ISO, '-'],
    ]);
    assert.ok(
      mirror.seen.every((s) => s.encoding === 'identity'),
      'no compression: the bytes counted are the bytes on disk',
    );
    assert.deepEqual(h.steps, [`Reading sha256sums.txt from ${url}`, `Downloading ${ARCH_ISO}`]);
    assert.deepEqual(h.notes, [NO_GPG]);
    // reported on the way (the first piece at once, not final), and at the end the whole
    const first = h.transfers[0]!;
    assert.deepEqual([first.done, first.total, first.final], [1000, iso.length, false]);
    const last = h.transfers.at(-1)!;
    assert.deepEqual([last.done, last.total, last.final], [iso.length, iso.length, true]);
    assert.ok(last.rate! > 0, 'a rate over the whole transfer');
    assert.match(last.text, /^293\.1K \/ 293\.1K \(100%\) {2}\d+(\.\d)?[KMG]?\/s$/, 'the last report: no ETA');
    // the rest comes in several pieces at once: one report for them (at most one every 200 ms), then the last
    assert.ok(h.transfers.length <= 4, `a report at most every 200 ms, not ${h.transfers.length}`);
  });

  test('resumes a .part started for this ISO with a Range request, hashing what it had', async (t) => {
    const h = setup(t);
    h.leavePart(iso.subarray(0, 100_000));
    const r = await fetchIso(h.ctx, { mirror: url });
    assert.deepEqual(r, result({ path: h.path, resumedFrom: 100_000 }));
    assert.ok(readFileSync(h.path).equals(iso));
    assert.deepEqual(h.files(), [ARCH_ISO]);
    assert.deepEqual(gets(), [
      ['sha256sums.txt', '-'],
      [ARCH_ISO, 'bytes=100000-'],
    ]);
    assert.deepEqual(h.notes, ['resuming the partial download at 97.7K', NO_GPG]);
    assert.deepEqual(h.steps, [
      `Reading sha256sums.txt from ${url}`,
      'Reading the partial download',
      `Downloading ${ARCH_ISO}`,
    ]);
    assert.deepEqual([h.transfers[0]!.done, h.transfers.at(-1)!.done], [101_000, iso.length]);
  });

  test('a .part of another release (or of no record) starts over, truncated', async (t) => {
    for (const record of [sha('old'), null]) {
      const h = setup(t);
      h.leavePart(randomBytes(500_000), record); // longer than the ISO: it must be truncated
      mirror.seen = [];
      const r = await fetchIso(h.ctx, { mirror: url });
      assert.deepEqual(r, result({ path: h.path }));
      assert.ok(readFileSync(h.path).equals(iso));
      assert.deepEqual(gets()[1], [ARCH_ISO, '-']);
      assert.deepEqual(h.notes, ['the partial download (488.3K) is of another ISO release: starting over', NO_GPG]);
      assert.deepEqual(h.files(), [ARCH_ISO]);
    }
  });

  test('a mirror that ignores the Range: the whole file again, from the start', async (t) => {
    const h = setup(t);
    h.leavePart(iso.subarray(0, 5000));
    mirror.isoAnswer = (_req, res) => res.writeHead(200, { 'content-length': String(iso.length) }).end(iso);
    const r = await fetchIso(h.ctx, { mirror: url });
    assert.deepEqual(r, result({ path: h.path }));
    assert.ok(readFileSync(h.path).equals(iso), 'not appended to the .part');
    assert.deepEqual(h.notes, [
      'resuming the partial download at 4.9K',
      'the mirror does not resume downloads: starting over',
      NO_GPG,
    ]);
  });

  test('a .part that is the whole ISO already (416): nothing more is downloaded', async (t) => {
    const h = setup(t);
    h.leavePart(iso);
    const r = await fetchIso(h.ctx, { mirror: url });
    assert.deepEqual(r, result({ path: h.path, resumedFrom: iso.length }));
    assert.ok(readFileSync(h.path).equals(iso));
    assert.deepEqual(h.files(), [ARCH_ISO]);
    assert.deepEqual(h.transfers, []);
  });

  test('a .part longer than the ISO on the mirror (416): dropped and downloaded again', async (t) => {
    const h = setup(t);
    h.leavePart(Buffer.concat([iso, Buffer.from('more')]));
    const r = await fetchIso(h.ctx, { mirror: url });
    assert.deepEqual(r, result({ path: h.path }));
    assert.ok(readFileSync(h.path).equals(iso));
    assert.deepEqual(gets().slice(1), [
      [ARCH_ISO, `bytes=${iso.length + 4}-`],
      [ARCH_ISO, '-'],
    ]);
    assert.deepEqual(h.notes, [
      'resuming the partial download at 293.1K',
      'the partial download (293.1K) is longer than the ISO on the mirror: starting over',
      NO_GPG,
    ]);
  });

  test('a download whose sha256 is wrong is deleted, .part and record, and nothing is renamed', async (t) => {
    const h = setup(t);
    const wrong = sha('another file');
    mirror.sums = sumsFor(wrong);
    await rejectsWith(fetchIso(h.ctx, { mirror: url }), {
      code: 'failed',
      message: `the downloaded ${ARCH_ISO} does not match the mirror's sha256 (expected ${wrong}, got ${sha(iso)}); it was deleted`,
      hint: `the mirror may be half-way through an update: try again later, or ${MIRRORS_HINT}`,
      data: { otherMirror: 'the mirror may be half-way through an update: try again later, or ' },
    });
    assert.deepEqual(h.files(), []);
  });

  test('a current ISO already there: nothing downloaded, a leftover .part removed', async (t) => {
    const h = setup(t);
    mkdirSync(h.dir);
    writeFileSync(h.path, iso);
    writeFileSync(h.part, 'left over'); // without its record: one missing is no reason to fail
    const r = await fetchIso(h.ctx, { mirror: url });
    assert.deepEqual(r, result({ path: h.path, alreadyCurrent: true }));
    assert.deepEqual(h.files(), [ARCH_ISO]);
    assert.deepEqual(gets(), [['sha256sums.txt', '-']]);
    assert.deepEqual(h.steps, [`Reading sha256sums.txt from ${url}`, `Checking the ${ARCH_ISO} you have`]);
    assert.deepEqual(h.notes, [NO_GPG, `removed a partial download left over (${h.part})`]);

    // without a .part: nothing to say about one
    const again = setup(t);
    mkdirSync(again.dir);
    writeFileSync(again.path, iso);
    assert.deepEqual(await fetchIso(again.ctx, { mirror: url }), result({ path: again.path, alreadyCurrent: true }));
    assert.deepEqual(again.notes, [NO_GPG]);
  });

  test('an ISO that is not the current one is replaced once the new one is verified', async (t) => {
    const h = setup(t);
    mkdirSync(h.dir);
    writeFileSync(h.path, 'last month');
    const r = await fetchIso(h.ctx, { mirror: url });
    assert.deepEqual(r, result({ path: h.path }));
    assert.ok(readFileSync(h.path).equals(iso));
    assert.deepEqual(h.notes, [
      `the ${ARCH_ISO} you have is not the current one: it is replaced once the new one is verified`,
      NO_GPG,
    ]);
  });
});

describe('fetchIso: mirrors that fail', () => {
  test('no sha256sums.txt (404), or none with a line for the ISO: nothing is written', async (t) => {
    const h = setup(t);
    mirror.sums = undefined;
    await rejectsWith(fetchIso(h.ctx, { mirror: url }), {
      code: 'failed',
      message: `the mirror has no sha256sums.txt: ${url}sha256sums.txt answered HTTP 404 Not Found`,
      hint: `is it an Arch ISO directory (one that holds sha256sums.txt)? Or ${MIRRORS_HINT}`,
    });
    mirror.sums = `${sha('x')}  archlinux-bootstrap-x86_64.tar.zst\n`;
    await rejectsWith(fetchIso(h.ctx, { mirror: url }), {
      code: 'failed',
      message: `${url}sha256sums.txt has no line for ${ARCH_ISO}`,
      hint: `is the mirror's iso/latest/ directory complete? Or ${MIRRORS_HINT}`,
    });
    assert.equal(existsSync(h.dir), false);
  });

  test('the ISO missing (404) or an HTTP error: the lock is released, no file is left', async (t) => {
    const h = setup(t);
    mirror.isoAnswer = (_req, res) => res.writeHead(404).end('gone');
    await rejectsWith(fetchIso(h.ctx, { mirror: url }), {
      code: 'failed',
      message: `the mirror has no ${ARCH_ISO}: ${isoUrl()} answered HTTP 404 Not Found`,
      hint: `is it an Arch ISO directory (one that holds sha256sums.txt)? Or ${MIRRORS_HINT}`,
    });
    assert.deepEqual(h.files(), [`${ARCH_ISO}.part.sha256`]);
    mirror.isoAnswer = (_req, res) => res.writeHead(503).end('busy');
    await rejectsWith(fetchIso(h.ctx, { mirror: url }), {
      code: 'failed',
      message: `cannot download ${isoUrl()}: HTTP 503`,
      hint: `try again later, or ${MIRRORS_HINT}`,
    });
    assert.deepEqual(h.files(), [`${ARCH_ISO}.part.sha256`]);
  });

  test('a resume answered with another range fails and keeps the .part as it was', async (t) => {
    const h = setup(t);
    h.leavePart(iso.subarray(0, 100));
    mirror.isoAnswer = (_req, res) =>
      res.writeHead(206, { 'content-range': `bytes 0-99/${iso.length}` }).end(iso.subarray(0, 100));
    await rejectsWith(fetchIso(h.ctx, { mirror: url }), {
      code: 'failed',
      message: `cannot download ${isoUrl()}: the mirror answered a resume from byte 100 with the range 'bytes 0-99/${iso.length}'`,
      hint: `try again later, or ${MIRRORS_HINT}`,
    });
    assert.ok(readFileSync(h.part).equals(iso.subarray(0, 100)));
  });

  test('a mirror that cannot be connected to is unreachable', async (t) => {
    const h = setup(t);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await rejectsWith(fetchIso(h.ctx, { mirror: `http://127.0.0.1:${port}/iso/latest/` }), {
      code: 'unreachable',
      message: `cannot reach the mirror at http://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}`,
      hint: `check the network, or ${MIRRORS_HINT}`,
    });
  });

  test('a download that breaks off keeps the .part to resume from, and says how far it got', async (t) => {
    const h = setup(t);
    mirror.isoAnswer = (_req, res) => {
      res.writeHead(200, { 'content-length': String(iso.length) });
      res.write(iso.subarray(0, 2048), () => whenPartHolds(h.part, 2048, () => res.socket?.destroy()));
    };
    await assert.rejects(fetchIso(h.ctx, { mirror: url }), (e: unknown) => {
      assert.ok(e instanceof VmsError);
      assert.equal(e.code, 'failed');
      assert.match(
        e.message,
        new RegExp(`^the download of ${ARCH_ISO} broke off after 2K of 293.1K: other side closed$`),
      );
      assert.equal(
        e.hint,
        `run \`vms iso fetch\` again to resume from 2K (the partial download is kept in ${h.part}), or ${MIRRORS_HINT}`,
      );
      return true;
    });
    assert.ok(readFileSync(h.part).equals(iso.subarray(0, 2048)));
    assert.equal(readFileSync(h.record, 'utf8'), `${sha(iso)}  ${ARCH_ISO}\n`);
    assert.deepEqual(h.files(), [`${ARCH_ISO}.part`, `${ARCH_ISO}.part.sha256`]);
  });

  test('a download that ends short of its length, or breaks off before a byte, fails', async (t) => {
    const h = setup(t);
    // no content-length to check against, the connection cut before any byte: nothing to resume
    mirror.isoAnswer = (_req, res) => {
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      setTimeout(() => res.socket?.destroy(), 100);
    };
    await assert.rejects(fetchIso(h.ctx, { mirror: url }), (e: unknown) => {
      assert.ok(e instanceof VmsError);
      assert.match(e.message, new RegExp(`^the download of ${ARCH_ISO} broke off after 0B: \\S`));
      assert.equal(e.hint, `try again, or ${MIRRORS_HINT}`);
      return true;
    });
  });

  test('a mirror that goes silent: a timeout, the .part kept', async (t) => {
    const h = setup(t);
    mirror.isoAnswer = (_req, res) => {
      mirror.open.add(res);
      res.writeHead(200, { 'content-length': String(iso.length) });
      res.write(iso.subarray(0, 4096));
    };
    await rejectsWith(fetchIso(h.ctx, { mirror: url, idleTimeoutMs: 1500 }), {
      code: 'timeout',
      message: `the mirror sent nothing for 2s (${isoUrl()})`,
      hint: `run \`vms iso fetch\` again to resume from 4K (the partial download is kept in ${h.part}), or ${MIRRORS_HINT}`,
    });
    assert.ok(readFileSync(h.part).equals(iso.subarray(0, 4096)));
  });

  test('Ctrl-C during the download: interrupted, the .part kept for the next fetch', async (t) => {
    const h = setup(t);
    mirror.isoAnswer = (_req, res) => {
      mirror.open.add(res);
      res.writeHead(200, { 'content-length': String(iso.length) });
      res.write(iso.subarray(0, 4096), () => whenPartHolds(h.part, 4096, () => h.abort.abort()));
    };
    await rejectsWith(fetchIso(h.ctx, { mirror: url }), {
      code: 'interrupted',
      message: 'interrupted',
      hint: `the partial download is kept (${h.part}): \`vms iso fetch\` resumes it`,
    });
    assert.ok(readFileSync(h.part).equals(iso.subarray(0, 4096)));
    assert.ok(!existsSync(`${h.path}.part.lock`), 'the lock is released');
  });

  test('Ctrl-C before a byte came: interrupted, nothing kept to speak of; Ctrl-C before anything: no request', async (t) => {
    const h = setup(t);
    mirror.isoAnswer = (_req, res) => {
      mirror.open.add(res);
      h.abort.abort();
    };
    await rejectsWith(fetchIso(h.ctx, { mirror: url }), { code: 'interrupted', message: 'interrupted' });
    assert.deepEqual(h.files(), [`${ARCH_ISO}.part.sha256`]);

    const early = setup(t);
    early.abort.abort();
    mirror.seen = [];
    await assert.rejects(fetchIso(early.ctx, { mirror: url }), (e: unknown) => (e as Error).name === 'AbortError');
    assert.deepEqual(mirror.seen, []);
  });

  test('a resume answered with less than the range it announced fails, the .part kept', async (t) => {
    const h = setup(t);
    h.leavePart(iso.subarray(0, 100));
    mirror.isoAnswer = (_req, res) =>
      res
        .writeHead(206, { 'content-range': `bytes 100-1099/${iso.length}`, 'content-length': '1000' })
        .end(iso.subarray(100, 1100));
    await rejectsWith(fetchIso(h.ctx, { mirror: url }), {
      code: 'failed',
      message: `the download of ${ARCH_ISO} broke off after 1.1K of 293.1K: the mirror sent 1100 bytes of ${iso.length}`,
      hint: `run \`vms iso fetch\` again to resume from 1.1K (the partial download is kept in ${h.part}), or ${MIRRORS_HINT}`,
    });
    assert.ok(readFileSync(h.part).equals(iso.subarray(0, 1100)));
  });

  test('without a Ctrl-C signal or a transfer display at all (a library caller): the same download', async (t) => {
    const h = setup(t);
    const { signal: _none, ...noSignal } = h.ctx;
    const { transfer: _no, ...noTransfer } = h.ctx.progress;
    assert.deepEqual(await fetchIso({ ...noSignal, progress: noTransfer }, { mirror: url }), result({ path: h.path }));
  });

  test('a .part that cannot be written (the disk is full) says so and how to go on', async (t) => {
    const h = setup(t);
    mkdirSync(h.dir);
    symlinkSync('/dev/full', h.part);
    await rejectsWith(fetchIso(h.ctx, { mirror: url }), {
      code: 'failed',
      message: `cannot write ${h.part}: ENOSPC: no space left on device, write`,
      hint: 'free some space there, then run `vms iso fetch` again: it resumes',
    });
  });

  test('an ISO dir that cannot be made is an error of its own', async (t) => {
    const h = setup(t);
    writeFileSync(h.dir, 'a file where the dir should be');
    await assert.rejects(fetchIso(h.ctx, { mirror: url }), (e: unknown) => {
      assert.ok(e instanceof VmsError);
      assert.equal(e.code, 'failed');
      assert.match(e.message, new RegExp(`^cannot write ${h.dir}: EEXIST`));
      assert.equal(e.hint, undefined);
      return true;
    });
  });
});

describe('fetchIso: the PGP signature', () => {
  const listKeys: Expected = {
    cmd: 'gpg',
    args: ['--batch', '--with-colons', '--list-keys', ARCH_KEY_UID, ARCH_RELEASE_KEY],
    result: {
      stdout: `pub:-:255:22:76A5EF9054449A5C:1616284800:::-:::scSC::::::23::0:\nfpr:::::::::${ARCH_RELEASE_KEY}:\n`,
    },
  };
  const validSig = (primary: string) =>
    `[GNUPG:] GOODSIG 76A5EF9054449A5C Pierre\n[GNUPG:] VALIDSIG ${primary} 2026-11-01 1 0 4 0 22 10 00 ${primary}\n`;
  /** gpg --verify of the signature the mirror served (in a temp file of its own) against `file` when it holds the ISO. */
  const verify = (file: () => string, stdout: string, seen: string[], extra: { stderr?: string } = {}): Expected => ({
    cmd: 'gpg',
    args: (a) => {
      seen.push(a[4]!);
      return (
        a.length === 6 &&
        ['--batch', '--status-fd', '1', '--verify'].every((x, i) => a[i] === x) &&
        readFileSync(a[4]!).equals(SIG) &&
        a[5] === file() &&
        readFileSync(a[5]).equals(iso)
      );
    },
    result: { stdout, ...extra },
  });

  test('a good signature by the Arch key: verified by both, the signature file removed, gpg given time', async (t) => {
    const sigFiles: string[] = [];
    const part = () => join(h.dir, `${ARCH_ISO}.part`);
    const h = setup(t, [listKeys, verify(part, validSig(ARCH_RELEASE_KEY), sigFiles)]);
    mirror.sig = SIG;
    const r = await fetchIso(h.ctx, { mirror: url });
    assert.deepEqual(r, result({ path: h.path, verified: 'sha256+pgp' }));
    assert.deepEqual(h.files(), [ARCH_ISO]);
    assert.deepEqual(h.notes, []);
    assert.deepEqual(h.steps.at(-1), 'Checking the PGP signature');
    assert.equal(existsSync(sigFiles[0]!), false, 'the signature is written to a temp dir that goes afterwards');
    assert.match(sigFiles[0]!, /\/vms-sig-[^/]+\/iso\.sig$/);
    assert.deepEqual(
      h.runOptions.map((o) => [o?.signal === h.ctx.signal, o?.timeoutMs]),
      [
        [true, 30_000],
        [true, 600_000],
      ],
    );
    assert.deepEqual(gets().at(-1), [`${ARCH_ISO}.sig`, '-']);
  });

  test('the current ISO already there is checked by its signature too; a bad one fails but keeps the file', async (t) => {
    const sigFiles: string[] = [];
    const h = setup(t, [listKeys, verify(() => h.path, '[GNUPG:] BADSIG 76A5EF9054449A5C Pierre\n', sigFiles)]);
    mkdirSync(h.dir);
    writeFileSync(h.path, iso);
    mirror.sig = SIG;
    await rejectsWith(fetchIso(h.ctx, { mirror: url }), {
      code: 'failed',
      message: `the PGP signature of ${ARCH_ISO} from ${url} is bad: it does not match the file (key 76A5EF9054449A5C)`,
      hint: `the mirror may serve a tampered file: ${MIRRORS_HINT}`,
    });
    assert.deepEqual(h.files(), [ARCH_ISO], "the user's file stays");
    assert.equal(existsSync(sigFiles[0]!), false);
  });

  test('a bad signature of a download deletes it, .part and record', async (t) => {
    const sigFiles: string[] = [];
    const part = () => join(h.dir, `${ARCH_ISO}.part`);
    const h = setup(t, [listKeys, verify(part, validSig('F'.repeat(40)), sigFiles)]);
    mirror.sig = SIG;
    await rejectsWith(fetchIso(h.ctx, { mirror: url }), {
      code: 'failed',
      message:
        `the PGP signature of ${ARCH_ISO} from ${url} is bad: it is good but made by ${'F'.repeat(40)}, ` +
        'which is not the Arch release key; the download was deleted',
      hint: `the mirror may serve a tampered file: ${MIRRORS_HINT}`,
    });
    assert.deepEqual(h.files(), []);
  });

  test('gpg that cannot check it: the error says why, with what gpg said', async (t) => {
    const part = () => join(h.dir, `${ARCH_ISO}.part`);
    const h = setup(t, [listKeys, verify(part, '', [], { stderr: 'gpg: keydb broken\n' })]);
    mirror.sig = SIG;
    await rejectsWith(fetchIso(h.ctx, { mirror: url }), {
      code: 'failed',
      message: `the PGP signature of ${ARCH_ISO} from ${url} is bad: gpg could not check it: gpg: keydb broken; the download was deleted`,
      hint: `the mirror may serve a tampered file: ${MIRRORS_HINT}`,
    });
    assert.deepEqual(h.files(), []);
  });

  test('without the Arch key, without a signature on the mirror, by a key not in the keyring: sha256 only', async (t) => {
    const noKey = setup(t, [{ ...listKeys, result: { stdout: '' } }]);
    mirror.sig = SIG;
    assert.equal((await fetchIso(noKey.ctx, { mirror: url })).verified, 'sha256');
    assert.deepEqual(noKey.notes, [
      `the Arch signing key (${ARCH_KEY_UID}) is not in your gpg keyring: the ISO was checked by sha256 only ` +
        `(to add it: gpg --auto-key-locate clear,wkd --locate-external-keys ${ARCH_KEY_UID})`,
    ]);
    assert.ok(!mirror.seen.some((s) => s.url.endsWith('.sig')), 'no signature fetched');

    mirror.sig = undefined;
    const noSig = setup(t, [listKeys]);
    assert.equal((await fetchIso(noSig.ctx, { mirror: url })).verified, 'sha256');
    assert.deepEqual(noSig.notes, [`the mirror has no ${ARCH_ISO}.sig: the ISO was checked by sha256 only`]);
    assert.deepEqual(noSig.files(), [ARCH_ISO]);

    mirror.sig = SIG;
    const part = () => join(other.dir, `${ARCH_ISO}.part`);
    const other = setup(t, [listKeys, verify(part, '[GNUPG:] NO_PUBKEY 1234567890ABCDEF\n', [])]);
    assert.equal((await fetchIso(other.ctx, { mirror: url })).verified, 'sha256');
    assert.deepEqual(other.notes, [
      'the signature is by key 1234567890ABCDEF, which is not in your gpg keyring: the ISO was checked by sha256 only',
    ]);
    assert.deepEqual(other.files(), [ARCH_ISO]);
  });
});

describe('listIsos', () => {
  test('the ISOs in the ISO dir, the default first, with sizes and ages; a .part as partial', async (t) => {
    const h = setup(t);
    mkdirSync(h.dir);
    const now = Date.parse('2026-12-01T12:00:00Z');
    const write = (name: string, bytes: number, daysOld: number) => {
      writeFileSync(join(h.dir, name), Buffer.alloc(bytes));
      const when = new Date(now - daysOld * 86_400_000 - 1000);
      utimesSync(join(h.dir, name), when, when);
    };
    write('b.iso', 10, 0);
    write('A.ISO', 20, 3);
    write(ARCH_ISO, 30, 12);
    write('notes.txt', 5, 0);
    write(`${ARCH_ISO}.part`, 7, 0);
    mkdirSync(join(h.dir, 'dir.iso'));
    const list = await listIsos(h.ctx, now);
    const entry = (name: string, bytes: number, days: number, isDefault = false) => ({
      name,
      path: join(h.dir, name),
      bytes,
      modified: new Date(now - days * 86_400_000 - 1000).toISOString(),
      ageDays: days,
      default: isDefault,
    });
    assert.deepEqual(list, {
      dir: h.dir,
      isos: [entry(ARCH_ISO, 30, 12, true), entry('A.ISO', 20, 3), entry('b.iso', 10, 0)],
      partial: { path: h.part, bytes: 7 },
    });
  });

  test('a missing ISO dir is an empty list; one that cannot be read is an error', async (t) => {
    const h = setup(t);
    assert.deepEqual(await listIsos(h.ctx), { dir: h.dir, isos: [] });
    writeFileSync(h.dir, 'not a dir');
    await rejectsWith(listIsos(h.ctx), {
      code: 'failed',
      message: `cannot read the ISO dir ${h.dir}: ENOTDIR: not a directory, scandir '${h.dir}'`,
    });
  });
});
