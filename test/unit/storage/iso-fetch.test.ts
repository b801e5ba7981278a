import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TRANSFER_LINE_EVERY_MS, bar, lineProgress } from '../../../src/cli/progress.js';
import {
  ARCH_RELEASE_KEY,
  TransferMeter,
  classifySignature,
  formatAge,
  formatDuration,
  formatTransfer,
  parseSums,
  planResponse,
  primaryFingerprints,
  resumeFrom,
} from '../../../src/core/storage/iso-fetch.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);
const M = 2 ** 20;

describe('sha256sums.txt', () => {
  test("the mirror's format: one `<sha256>  <name>` line per file, the undated ISO among them", () => {
    const text = [
      `${A}  archlinux-2026.11.01-x86_64.iso`,
      `${B}  archlinux-bootstrap-2026.11.01-x86_64.tar.zst`,
      `${C}  archlinux-bootstrap-x86_64.tar.zst`,
      `${A.toUpperCase()}  archlinux-x86_64.iso`,
      '',
    ].join('\n');
    const sums = parseSums(text);
    assert.equal(sums.get('archlinux-x86_64.iso'), A, 'lower-cased');
    assert.equal(sums.get('archlinux-bootstrap-x86_64.tar.zst'), C);
    assert.equal(sums.size, 4);
  });

  test('binary-mode "*", "./" prefixes, CRLF and junk lines', () => {
    const sums = parseSums(
      `# checksums\r\n${B} *./archlinux-x86_64.iso\r\nnot a line\n${'d'.repeat(63)}  short.iso\n${C}  name with spaces.iso  \n`,
    );
    assert.deepEqual(
      [...sums],
      [
        ['archlinux-x86_64.iso', B],
        ['name with spaces.iso', C],
      ],
    );
  });

  test('no line for the ISO: nothing to find', () => {
    assert.equal(parseSums(`${A}  archlinux-bootstrap-x86_64.tar.zst\n`).get('archlinux-x86_64.iso'), undefined);
    assert.equal(parseSums('').size, 0);
  });
});

describe('resume decisions', () => {
  test('the .part is resumed only when it was started for the same checksum', () => {
    assert.deepEqual(resumeFrom(undefined, A), { from: 0 });
    assert.deepEqual(resumeFrom({ bytes: 0, sha256: A }, A), { from: 0 });
    assert.deepEqual(resumeFrom({ bytes: 512 * M, sha256: A }, A), {
      from: 512 * M,
      note: 'resuming the partial download at 512M',
    });
    assert.deepEqual(resumeFrom({ bytes: 5 * M, sha256: B }, A), {
      from: 0,
      note: 'the partial download (5M) is of another ISO release: starting over',
    });
    assert.equal(resumeFrom({ bytes: 5 * M }, A).from, 0, 'a .part with no record of what it is for');
  });

  test('the answer to a Range request', () => {
    assert.deepEqual(planResponse(0, 200, null, '1000'), { action: 'write', from: 0, total: 1000 });
    assert.deepEqual(planResponse(0, 200, null, null), { action: 'write', from: 0, total: undefined });
    assert.deepEqual(planResponse(400, 206, 'bytes 400-999/1000', '600'), { action: 'write', from: 400, total: 1000 });
    assert.deepEqual(planResponse(400, 206, 'bytes 400-999/*', '600'), {
      action: 'write',
      from: 400,
      total: undefined,
    });
    // a server that ignores Range sends it all again: start over
    assert.deepEqual(planResponse(400, 200, null, '1000'), {
      action: 'write',
      from: 0,
      total: 1000,
      note: 'the mirror does not resume downloads: starting over',
    });
    // a range that does not start where asked would corrupt the file
    assert.equal(planResponse(400, 206, 'bytes 0-999/1000', '1000').action, 'fail');
    assert.equal(planResponse(400, 206, undefined, '600').action, 'fail');
    // 416: the .part is the whole file (interrupted while checking), or longer than the ISO now is
    assert.deepEqual(planResponse(1000, 416, 'bytes */1000', null), { action: 'complete', total: 1000 });
    assert.equal(planResponse(2000, 416, 'bytes */1000', null).action, 'restart');
    assert.equal(planResponse(2000, 416, null, null).action, 'restart');
    assert.deepEqual(planResponse(0, 404, null, null), { action: 'fail', message: 'HTTP 404' });
    assert.deepEqual(planResponse(0, 416, 'bytes */1000', null), { action: 'fail', message: 'HTTP 416' });
  });
});

describe('rate, ETA and the progress line', () => {
  test('rate over the last seconds, ETA from what is left; resumed bytes do not count as speed', () => {
    const m = new TransferMeter(100 * M, 200 * M, 0, 5000);
    assert.equal(m.update(100 * M + 1000, 100).rate, undefined, 'too early for a rate');
    const s = m.update(110 * M, 1000); // 10M in 1s
    assert.equal(s.rate, 10 * M);
    assert.equal(s.eta, 9); // 90M left at 10M/s
    assert.equal(s.text, '110M / 200M (55%)  10M/s  ETA 9s');
  });

  test('the rate follows the line: a slow start is forgotten after the window', () => {
    const m = new TransferMeter(0, 1000 * M, 0, 5000);
    m.update(1 * M, 5000); // 1M in the first 5s
    m.update(51 * M, 10_000); // then 10M/s
    const s = m.update(101 * M, 15_000);
    assert.equal(s.rate, 10 * M);
    assert.equal(s.eta, (1000 - 101) / 10);
  });

  test('the last report: the average over the whole transfer, no ETA', () => {
    const m = new TransferMeter(0, 40 * M, 0, 5000);
    m.update(30 * M, 2000);
    const s = m.update(40 * M, 8000, true);
    assert.equal(s.rate, 5 * M);
    assert.equal(s.final, true);
    assert.equal(s.text, '40M / 40M (100%)  5M/s');
  });

  test('formatting: without a total, without a rate, percent rounded down', () => {
    assert.equal(formatTransfer({ done: 1536, final: false }), '1.5K');
    assert.equal(
      formatTransfer({ done: 99, total: 100, rate: 10, eta: 0.1, final: false }),
      '99B / 100B (99%)  10B/s  ETA 0s',
    );
    assert.equal(
      formatTransfer({ done: 1.2 * 2 ** 30, total: 1.2 * 2 ** 30, rate: 12.5 * M, eta: 0, final: true }),
      '1.2G / 1.2G (100%)  12.5M/s',
    );
  });

  test('durations and ages', () => {
    assert.deepEqual([0, 44.6, 59.4, 60, 185, 3599, 3600, 3725, 90_000].map(formatDuration), [
      '0s',
      '45s',
      '59s',
      '1m00s',
      '3m05s',
      '59m59s',
      '1h00m',
      '1h02m',
      '25h00m',
    ]);
    assert.equal(formatDuration(Infinity), '?');
    assert.equal(formatDuration(-1), '?');
    const min = 60_000;
    assert.deepEqual(
      [0, 59_999, min, 5 * min, 60 * min, 23 * 60 * min, 24 * 60 * min, 12 * 24 * 60 * min].map(formatAge),
      ['just now', 'just now', '1 minute', '5 minutes', '1 hour', '23 hours', '1 day', '12 days'],
    );
  });

  test('the bar a terminal shows', () => {
    assert.equal(bar(0, 10), '[..........]');
    assert.equal(bar(0.42, 10), '[####......]');
    assert.equal(bar(1, 10), '[##########]');
    assert.equal(bar(7, 4), '[####]', 'clamped');
  });

  test('without a terminal: a line every few seconds, and always the last', (t) => {
    const lines: string[] = [];
    t.mock.method(process.stderr, 'write', (text: string) => lines.push(text));
    const clock = t.mock.method(performance, 'now', () => 0);
    const p = lineProgress();
    const status = (done: number, final = false) => ({ done, total: 10, text: `${done}/10`, final });
    p.transfer!(status(1));
    clock.mock.mockImplementation(() => TRANSFER_LINE_EVERY_MS - 1);
    p.transfer!(status(2));
    clock.mock.mockImplementation(() => TRANSFER_LINE_EVERY_MS);
    p.transfer!(status(3));
    p.transfer!(status(4));
    p.transfer!(status(10, true));
    assert.deepEqual(lines, ['    3/10\n', '    10/10\n']);
  });
});

describe('the PGP check', () => {
  const status = (...lines: string[]) => lines.map((l) => `[GNUPG:] ${l}`).join('\n') + '\n';
  const SUB = 'F'.repeat(40);

  test('the primary keys of a --with-colons listing (not their subkeys)', () => {
    const listing = [
      'tru::1:1700000000:0:3:1:5',
      'pub:-:255:22:76A5EF9054449A5C:1616284800:::-:::scSC::::::23::0:',
      `fpr:::::::::${ARCH_RELEASE_KEY}:`,
      'uid:-::::1616284800::HASH::Pierre Schmitz <pierre@archlinux.org>::::::::::0:',
      'sub:-:255:22:0000000000000000:1616284800::::::s::::::23:',
      `fpr:::::::::${SUB}:`,
    ].join('\n');
    assert.deepEqual(primaryFingerprints(listing), [ARCH_RELEASE_KEY]);
    assert.deepEqual(primaryFingerprints(''), []);
  });

  test('good, bad, by another key, by a key not in the keyring', () => {
    const valid = (signer: string, primary: string) =>
      `VALIDSIG ${signer} 2026-11-01 1793520000 0 4 0 22 10 00 ${primary}`;
    const good = status(
      'NEWSIG pierre@archlinux.org',
      'GOODSIG 76A5EF9054449A5C Pierre Schmitz <pierre@archlinux.org>',
      valid(ARCH_RELEASE_KEY, ARCH_RELEASE_KEY),
      'TRUST_UNDEFINED 0 pgp',
    );
    assert.deepEqual(classifySignature(good, [ARCH_RELEASE_KEY]), { result: 'good', fingerprint: ARCH_RELEASE_KEY });
    // made by a signing subkey: what counts is the primary key at the end
    assert.equal(
      classifySignature(status(valid(SUB, ARCH_RELEASE_KEY.toLowerCase())), [ARCH_RELEASE_KEY]).result,
      'good',
    );
    assert.deepEqual(classifySignature(good, [SUB]), {
      result: 'bad',
      why: `it is good but made by ${ARCH_RELEASE_KEY}, which is not the Arch release key`,
    });
    assert.deepEqual(
      classifySignature(status('BADSIG 76A5EF9054449A5C Pierre Schmitz <pierre@archlinux.org>'), [ARCH_RELEASE_KEY]),
      { result: 'bad', why: 'it does not match the file (key 76A5EF9054449A5C)' },
    );
    assert.equal(
      classifySignature(status('REVKEYSIG 76A5EF9054449A5C Pierre', valid(ARCH_RELEASE_KEY, ARCH_RELEASE_KEY)), [
        ARCH_RELEASE_KEY,
      ]).result,
      'bad',
    );
    assert.deepEqual(
      classifySignature(status('ERRSIG 1234567890ABCDEF 22 10 00 1793520000 9 -', 'NO_PUBKEY 1234567890ABCDEF'), [
        ARCH_RELEASE_KEY,
      ]),
      { result: 'noKey', keyId: '1234567890ABCDEF' },
    );
    assert.equal(classifySignature('', [ARCH_RELEASE_KEY]).result, 'error');
  });
});

describe('exact edges', () => {
  test('headers taken only when they are exactly what they should be', () => {
    for (const length of ['x1000', '1000x'])
      assert.deepEqual(planResponse(0, 200, null, length), { action: 'write', from: 0, total: undefined }, length);
    assert.deepEqual(planResponse(400, 206, ' bytes 400-999/1000 ', null), { action: 'write', from: 400, total: 1000 });
    for (const range of ['xbytes 400-999/1000', 'bytes 400-999/1000x'])
      assert.equal(planResponse(400, 206, range, null).action, 'fail', range);
    assert.deepEqual(planResponse(400, 206, undefined, null), {
      action: 'fail',
      message: "the mirror answered a resume from byte 400 with the range ''",
    });
    assert.deepEqual(planResponse(1000, 416, ' bytes */1000 ', null), { action: 'complete', total: 1000 });
    for (const range of ['xbytes */1000', 'bytes */1000x'])
      assert.deepEqual(planResponse(1000, 416, range, null), {
        action: 'restart',
        note: 'the partial download (1K) is longer than the ISO on the mirror: starting over',
      });
    assert.deepEqual(planResponse(400, 404, null, null), { action: 'fail', message: 'HTTP 404' }, 'a resume that 404s');
  });

  test('the rate window: a sample exactly the window old starts it; a rate from 500 ms on; no ETA without a total', () => {
    const m = new TransferMeter(0, undefined, 0, 5000);
    assert.equal(m.update(1 * M, 1000).rate, 2 ** 20, 'rate and no ETA without a total');
    assert.equal(m.update(1 * M, 1000).eta, undefined);
    const s = m.update(11 * M, 6000); // the 1000 ms sample is exactly 5 s old: the window starts there
    assert.equal(s.rate, 2 * M);
    assert.equal(s.eta, undefined);
    assert.equal(s.text, '11M  2M/s');

    const early = new TransferMeter(0, 10 * M, 0, 5000);
    assert.deepEqual([early.update(1 * M, 499).rate, early.update(1 * M, 499).eta], [undefined, undefined]);
    assert.equal(early.update(1 * M, 500).rate, 2 * M, 'from 500 ms on');

    // uneven pieces: the rate is over the window from its start, not over the last piece
    const uneven = new TransferMeter(0, 100 * M, 0, 5000);
    uneven.update(1 * M, 1000);
    uneven.update(5 * M, 3000);
    assert.equal(uneven.update(6 * M, 4000).rate, 1.5 * M);
  });

  test('fingerprints only from fpr lines right after pub lines; the verdicts word by word', () => {
    assert.deepEqual(primaryFingerprints(`fpr:::::::::${'A'.repeat(40)}:\npub:x\nuid:::::::::NOT_A_FPR:\n`), []);
    const status = (l: string) => `[GNUPG:] ${l}\n`;
    assert.deepEqual(classifySignature(status('REVKEYSIG 76A5EF9054449A5C Pierre'), [ARCH_RELEASE_KEY]), {
      result: 'bad',
      why: 'made by a revoked key (key 76A5EF9054449A5C)',
    });
    assert.deepEqual(classifySignature('', [ARCH_RELEASE_KEY]), { result: 'error', why: 'gpg could not check it' });
  });
});
