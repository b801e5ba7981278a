import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { testbed } from '../helpers/testbed.js';

// `vms iso fetch` against a mirror of the test's own on 127.0.0.1: a few MB of random bytes as the "ISO", its
// sha256sums.txt, Range requests, and faults on demand (a cut connection, a stall, a wrong checksum).

const ISO = 'archlinux-x86_64.iso';
const bed = testbed('iso');
const iso = randomBytes(3.5 * 2 ** 20 + 12345); // "3.5M"
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const isoPath = join(bed.env.VMS_ISO_DIR!, ISO);
const part = `${isoPath}.part`;
const gpgEmpty = mkdtempSync(join(tmpdir(), 'vms-gpg-empty-'));

interface Seen {
  method: string;
  url: string;
  range?: string;
}

const mirror = {
  seen: [] as Seen[],
  sums: '',
  sig: undefined as Buffer | undefined,
  /** The next ISO request sends this many bytes, then closes the connection (or, with stall, goes silent). */
  cutAfter: undefined as number | undefined,
  stall: false,
  open: new Set<ServerResponse>(),
};
const goodSums = () =>
  `${sha(randomBytes(8))}  archlinux-2026.11.01-x86_64.iso\n${sha(randomBytes(8))}  archlinux-bootstrap-x86_64.tar.zst\n${sha(iso)}  ${ISO}\n`;

function serveIso(req: IncomingMessage, res: ServerResponse): void {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = m ? Number(m[1]) : 0;
  if (start >= iso.length) {
    res.writeHead(416, { 'content-range': `bytes */${iso.length}` }).end();
    return;
  }
  const headers = {
    'content-type': 'application/octet-stream',
    'content-length': String(iso.length - start),
    'accept-ranges': 'bytes',
  };
  if (m) res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${iso.length - 1}/${iso.length}` });
  else res.writeHead(200, headers);
  const cut = mirror.cutAfter;
  if (cut === undefined) return void res.end(iso.subarray(start));
  mirror.cutAfter = undefined;
  mirror.open.add(res);
  // let the client read every byte sent before the connection goes (or stays silent)
  res.write(iso.subarray(start, start + cut), () => {
    if (!mirror.stall) setTimeout(() => res.socket?.destroy(), 300);
  });
}

let server: Server;
let url: string;

before(async () => {
  server = createServer((req, res) => {
    mirror.seen.push({ method: req.method!, url: req.url!, range: req.headers.range });
    if (req.url === '/iso/latest/sha256sums.txt') return void res.end(mirror.sums);
    if (req.url === `/iso/latest/${ISO}`) return serveIso(req, res);
    if (req.url === `/iso/latest/${ISO}.sig` && mirror.sig) return void res.end(mirror.sig);
    res.writeHead(404).end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/iso/latest/`;
});

after(async () => {
  for (const res of mirror.open) res.socket?.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  bed.cleanup();
  rmSync(gpgEmpty, { recursive: true, force: true });
});

beforeEach(() => {
  mirror.seen = [];
  mirror.sums = goodSums();
  mirror.sig = undefined;
  mirror.cutAfter = undefined;
  mirror.stall = false;
});

/** `vms iso fetch` from the test mirror, with a keyring that lacks the Arch key unless told otherwise. */
const fetchIso = (args: string[] = [], env: Record<string, string> = {}) =>
  bed.vms(['iso', 'fetch', '--mirror', url, ...args], { env: { GNUPGHOME: gpgEmpty, ...env } });
const isoGets = () => mirror.seen.filter((s) => s.url.endsWith(`/${ISO}`));
const clean = () => {
  for (const f of [isoPath, part, `${part}.sha256`]) rmSync(f, { force: true });
};

describe('vms iso fetch', () => {
  test('downloads the ISO into the ISO dir, checks its sha256 and keeps no .part', async () => {
    clean();
    const r = await fetchIso(['--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(r.json, {
      path: isoPath,
      sha256: sha(iso),
      bytes: iso.length,
      resumedFrom: 0,
      verified: 'sha256',
      alreadyCurrent: false,
      mirror: url,
    });
    assert.equal(sha(readFileSync(isoPath)), sha(iso));
    assert.equal(existsSync(part), false);
    assert.equal(existsSync(`${part}.sha256`), false);
    assert.equal(r.stderr, '', 'nothing on stderr with --json');
    assert.deepEqual(
      isoGets().map((s) => s.range),
      [undefined],
    );
  });

  test('the current ISO already there: says so and downloads nothing', async () => {
    assert.ok(existsSync(isoPath), 'the first test left the ISO');
    const r = await fetchIso();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /is already the current ISO .*nothing downloaded/);
    assert.deepEqual(isoGets(), [], 'no GET of the ISO');
    assert.deepEqual(
      mirror.seen.map((s) => s.url),
      ['/iso/latest/sha256sums.txt'],
    );
    const j = await fetchIso(['--json']);
    assert.equal(j.json.alreadyCurrent, true);
    assert.equal(j.json.sha256, sha(iso));
  });

  test('plain progress lines on stderr without a terminal; the sha256-only check is said', async () => {
    clean();
    const r = await fetchIso();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^==> Reading sha256sums\.txt from http:\/\/127\.0\.0\.1:\d+\/iso\/latest\/$/m);
    assert.match(r.stderr, /^==> Downloading archlinux-x86_64\.iso$/m);
    assert.match(
      r.stderr,
      /^ {4}3\.5M \/ 3\.5M \(100%\) {2}[\d.]+[KMG]?B?\/s$/m,
      'the last progress line: bytes, total, percent, rate',
    );
    assert.match(
      r.stderr,
      /note: the Arch signing key \(pierre@archlinux\.org\) is not in your gpg keyring: the ISO was checked by sha256 only/,
    );
    assert.match(
      r.stdout,
      new RegExp(
        `^downloaded ${isoPath}\\nsize\\s+3\\.5M\\nsha256\\s+${sha(iso)}\\nverified\\s+sha256 \\(from the mirror\\)`,
      ),
    );
  });

  test('a wrong checksum on the mirror: exit 1, a clear error and hint, no ISO and no .part kept', async () => {
    clean();
    mirror.sums = goodSums().replace(sha(iso), sha(Buffer.from('something else')));
    const r = await fetchIso();
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /error: the downloaded archlinux-x86_64\.iso does not match the mirror's sha256 \(expected [0-9a-f]{64}, got [0-9a-f]{64}\); it was deleted/,
    );
    assert.match(r.stderr, /hint: .*try again later, or pick another mirror with --mirror URL/);
    assert.equal(existsSync(isoPath), false);
    assert.equal(existsSync(part), false);
    assert.equal(existsSync(`${part}.sha256`), false);
  });

  test('a connection cut mid-way keeps the .part; the next fetch resumes with a Range request', async () => {
    clean();
    const cut = 1_234_567;
    mirror.cutAfter = cut;
    const first = await fetchIso();
    assert.notEqual(first.code, 0);
    assert.match(
      first.stderr,
      /error: the download of archlinux-x86_64\.iso broke off after 1\.2M of 3\.5M: other side closed/,
    );
    assert.match(
      first.stderr,
      /hint: run `vms iso fetch` again to resume from 1\.2M \(the partial download is kept in .*archlinux-x86_64\.iso\.part\)/,
    );
    assert.equal(statSync(part).size, cut);
    assert.equal(existsSync(isoPath), false);

    const second = await fetchIso(['--json']);
    assert.equal(second.code, 0, second.stdout + second.stderr);
    assert.deepEqual(
      isoGets().map((s) => s.range),
      [undefined, `bytes=${cut}-`],
    );
    assert.equal(second.json.resumedFrom, cut);
    assert.equal(second.json.sha256, sha(iso));
    assert.equal(sha(readFileSync(isoPath)), sha(iso));
    assert.equal(existsSync(part), false);
  });

  test('a .part of another release is not resumed', async () => {
    clean();
    writeFileSync(part, randomBytes(100));
    writeFileSync(`${part}.sha256`, `${sha(Buffer.from('older'))}  ${ISO}\n`);
    const r = await fetchIso();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /note: the partial download \(100B\) is of another ISO release: starting over/);
    assert.deepEqual(
      isoGets().map((s) => s.range),
      [undefined],
    );
    assert.equal(sha(readFileSync(isoPath)), sha(iso));
  });

  test('a complete .part (interrupted while checking) is finished without downloading again', async () => {
    clean();
    writeFileSync(part, iso);
    writeFileSync(`${part}.sha256`, `${sha(iso)}  ${ISO}\n`);
    const r = await fetchIso(['--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      isoGets().map((s) => s.range),
      [`bytes=${iso.length}-`],
      'asked only for what is missing (the server answers 416)',
    );
    assert.equal(r.json.resumedFrom, iso.length);
    assert.equal(sha(readFileSync(isoPath)), sha(iso));
  });

  test('Ctrl-C stops the download and keeps the .part for a later resume (exit 130)', async () => {
    clean();
    mirror.cutAfter = 500_000;
    mirror.stall = true;
    const child = bed.spawnVms(['iso', 'fetch', '--mirror', url], { GNUPGHOME: gpgEmpty });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    for (let i = 0; i < 100 && !(existsSync(part) && statSync(part).size === 500_000); i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.equal(statSync(part).size, 500_000);
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    assert.match(
      stderr,
      /error: interrupted\nhint: the partial download is kept \(.*archlinux-x86_64\.iso\.part\): `vms iso fetch` resumes it/,
    );
    assert.equal(statSync(part).size, 500_000);
    const r = await fetchIso(['--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.resumedFrom, 500_000);
    assert.equal(sha(readFileSync(isoPath)), sha(iso));
  });

  test('a second fetch while one is downloading: exit 4 naming it, and the .part is left to the first', async () => {
    clean();
    mirror.cutAfter = 500_000;
    mirror.stall = true;
    const first = bed.spawnVms(['iso', 'fetch', '--mirror', url], { GNUPGHOME: gpgEmpty });
    const exited = new Promise<number | null>((resolve) => first.on('exit', (code) => resolve(code)));
    for (let i = 0; i < 100 && !(existsSync(part) && statSync(part).size === 500_000); i++)
      await new Promise((r) => setTimeout(r, 100));
    const second = await fetchIso();
    assert.equal(second.code, 4, second.stderr);
    assert.match(
      second.stderr,
      new RegExp(
        `error: \`vms iso fetch\` is already running \\(pid ${first.pid}\\)\nhint: wait for it to finish; ${part}\\.lock is its lock`,
      ),
    );
    assert.equal(statSync(part).size, 500_000, 'the second fetch did not touch the .part');
    first.kill('SIGINT');
    assert.equal(await exited, 130);
    assert.ok(!existsSync(`${part}.lock`), 'the first released the lock on its way out');
    const r = await fetchIso(['--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.resumedFrom, 500_000);
  });

  test('mirror unreachable: exit 5 with the cause and a hint about --mirror', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve)); // nothing listens there now
    const r = await bed.vms(['iso', 'fetch', '--mirror', `http://127.0.0.1:${port}/iso/latest/`]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`error: cannot reach the mirror at http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`),
    );
    assert.match(r.stderr, /hint: check the network, or pick another mirror with --mirror URL or VMS_MIRROR/);
    const j = await bed.vms(['iso', 'fetch', '--json'], { env: { VMS_MIRROR: `http://127.0.0.1:${port}/` } });
    assert.equal(j.json.error.code, 'unreachable');
  });

  test('a mirror without the ISO or its line in the sums, an ISO dir that cannot be made, a bad --mirror', async () => {
    mirror.sums = goodSums()
      .split('\n')
      .filter((l) => !l.endsWith(`  ${ISO}`))
      .join('\n');
    let r = await fetchIso();
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: http:.*\/sha256sums\.txt has no line for archlinux-x86_64\.iso/);
    r = await bed.vms(['iso', 'fetch', '--mirror', url.replace('/iso/latest/', '/nothing/')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: the mirror has no sha256sums\.txt: .* answered HTTP 404 Not Found/);
    mirror.sums = goodSums();
    r = await fetchIso([], { VMS_ISO_DIR: '/etc/passwd/iso' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: cannot write \/etc\/passwd\/iso: ENOTDIR/);
    r = await bed.vms(['iso', 'fetch', '--mirror', 'ftp://example.org/iso/']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /error: invalid mirror URL 'ftp:\/\/example\.org\/iso\/'/);
  });
});

describe('vms iso fetch: the PGP signature', () => {
  const home = mkdtempSync(join(tmpdir(), 'vms-gpg-'));
  const gpg = (...args: string[]) =>
    execFileSync('gpg', ['--batch', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], {
      env: { ...process.env, GNUPGHOME: home },
      stdio: 'pipe',
    });
  const signed = (data: Buffer) => {
    const file = join(home, 'data');
    writeFileSync(file, data);
    rmSync(`${file}.sig`, { force: true });
    gpg('--detach-sign', file);
    return readFileSync(`${file}.sig`);
  };

  before(() => {
    // a stand-in for the Arch key: a key of the test's own with the Arch uid, in a keyring of its own
    gpg('--quick-gen-key', 'Test Release <pierre@archlinux.org>', 'ed25519', 'sign', 'never');
  });
  after(() => {
    execFileSync('gpgconf', ['--kill', 'gpg-agent'], { env: { ...process.env, GNUPGHOME: home } });
    rmSync(home, { recursive: true, force: true });
  });

  test('with gpg and the key in the keyring, a good signature: verified sha256+pgp', async () => {
    clean();
    mirror.sig = signed(iso);
    const r = await fetchIso(['--json'], { GNUPGHOME: home });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json.verified, 'sha256+pgp');
    assert.ok(mirror.seen.some((s) => s.url.endsWith('.sig')));
    const again = await fetchIso([], { GNUPGHOME: home });
    assert.match(again.stdout, /verified\s+sha256 and PGP signature \(Arch release key\)/);
  });

  test('a bad signature: exit 1, the download deleted', async () => {
    clean();
    mirror.sig = signed(Buffer.from('not the ISO'));
    const r = await fetchIso([], { GNUPGHOME: home });
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /error: the PGP signature of archlinux-x86_64\.iso from .* is bad: it does not match the file .*; the download was deleted/,
    );
    assert.equal(existsSync(isoPath), false);
    assert.equal(existsSync(part), false);
  });

  test('no gpg at all: sha256 only, said in a note, never a failure', async () => {
    clean();
    const r = await fetchIso([], { PATH: '/nonexistent' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /note: gpg is not installed: the ISO was checked by sha256 only/);
  });
});

describe('vms iso list', () => {
  test('shows the ISOs with size, date, age and which is the default; --json', async () => {
    if (!existsSync(isoPath)) writeFileSync(isoPath, iso);
    writeFileSync(join(bed.env.VMS_ISO_DIR!, 'other.iso'), Buffer.alloc(2048));
    writeFileSync(join(bed.env.VMS_ISO_DIR!, 'notes.txt'), 'not an ISO');
    const r = await bed.vms(['iso', 'list']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^NAME\s+SIZE\s+MODIFIED\s+AGE\s+DEFAULT$/m);
    assert.match(r.stdout, /^archlinux-x86_64\.iso\s+3\.5M\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+just now\s+yes$/m);
    assert.match(r.stdout, /^other\.iso\s+2K\s+.*\s+-$/m);
    assert.doesNotMatch(r.stdout, /notes\.txt/);
    const j = await bed.vms(['iso', 'list', '--json']);
    assert.equal(j.json.dir, bed.env.VMS_ISO_DIR);
    assert.deepEqual(
      j.json.isos.map((i: any) => [i.name, i.bytes, i.default, i.ageDays]),
      [
        [ISO, iso.length, true, 0],
        ['other.iso', 2048, false, 0],
      ],
    );
    assert.ok(Math.abs(Date.parse(j.json.isos[0].modified) - statSync(isoPath).mtimeMs) < 1000);
  });

  test('an empty or missing ISO dir is an empty list with the way to fill it', async () => {
    const r = await bed.vms(['iso', 'list'], { env: { VMS_ISO_DIR: join(bed.dir, 'nowhere') } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^no ISOs in .*nowhere: `vms iso fetch` downloads the current Arch ISO\n$/);
    const j = await bed.vms(['iso', 'list', '--json'], { env: { VMS_ISO_DIR: join(bed.dir, 'nowhere') } });
    assert.deepEqual(j.json, { dir: join(bed.dir, 'nowhere'), isos: [] });
  });
});
