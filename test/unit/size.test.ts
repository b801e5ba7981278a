import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DISK_RANGE, MEMORY_RANGE, formatSize, parseSize } from '../../src/size.js';
import { VmsError } from '../../src/errors.js';

const K = 2 ** 10,
  M = 2 ** 20,
  G = 2 ** 30,
  T = 2 ** 40;

/** Asserts that fn throws a usage VmsError whose message and hint match. */
function assertUsage(fn: () => unknown, message: RegExp, hint: RegExp) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof VmsError, `expected a VmsError, got ${String(err)}`);
    assert.equal(err.code, 'usage');
    assert.equal(err.exitCode, 2);
    assert.match(err.message, message);
    assert.ok(err.hint, 'a hint is present');
    assert.match(err.hint, hint);
    return true;
  });
}

test('parseSize accepts binary sizes with a unit', () => {
  const cases: [string, number][] = [
    ['4G', 4 * G],
    ['512M', 512 * M],
    ['1.5GiB', 1.5 * G],
    ['2g', 2 * G],
    ['1T', T],
    ['20 G', 20 * G], // blank between number and unit
    [' 8G ', 8 * G], // surrounding blanks are trimmed
    ['4GB', 4 * G], // "B" after the unit is allowed and still binary
    ['4gib', 4 * G],
    ['65536K', 64 * M],
    ['0.25T', T / 4],
  ];
  for (const [text, bytes] of cases) assert.equal(parseSize(text, MEMORY_RANGE), bytes, text);
});

test('parseSize rounds fractional bytes to a whole number', () => {
  assert.equal(parseSize('1.0000001M', DISK_RANGE), M); // 1048576.1048576 → 1048576
});

test('parseSize rejects text that is not a number with a K/M/G/T unit', () => {
  for (const text of [
    '4',
    '4X',
    '',
    '   ',
    '-1G',
    'G',
    '4Gi',
    '4 B',
    '4B',
    '.5G',
    '1,5G',
    '4GG',
    '1e3M',
    '0x10G',
    'four G',
    '4G5',
  ]) {
    for (const [range, flag] of [
      [MEMORY_RANGE, /--memory 4G/],
      [DISK_RANGE, /--disk 40G/],
    ] as const) {
      assertUsage(() => parseSize(text, range), new RegExp(`^invalid ${range.what} '${text}'`), flag);
    }
  }
});

test('parseSize enforces the memory and disk ranges, inclusive at both ends', () => {
  const ok: [string, typeof MEMORY_RANGE, number][] = [
    ['64M', MEMORY_RANGE, 64 * M],
    ['4T', MEMORY_RANGE, 4 * T],
    ['1M', DISK_RANGE, M],
    ['1024K', DISK_RANGE, M],
    ['64T', DISK_RANGE, 64 * T],
  ];
  for (const [text, range, bytes] of ok) assert.equal(parseSize(text, range), bytes, `${text} as ${range.what}`);

  const out: [string, typeof MEMORY_RANGE][] = [
    ['63M', MEMORY_RANGE],
    ['0G', MEMORY_RANGE],
    ['4.1T', MEMORY_RANGE],
    ['5T', MEMORY_RANGE],
    ['1023K', DISK_RANGE],
    ['0M', DISK_RANGE],
    ['65T', DISK_RANGE],
    ['99999999999999999999T', DISK_RANGE],
  ];
  for (const [text, range] of out) {
    const between = range === MEMORY_RANGE ? /between 64M and 4T/ : /between 1M and 64T/;
    assertUsage(() => parseSize(text, range), new RegExp(`^${range.what} '${text}' is out of range$`), between);
  }
});

test('formatSize uses the largest unit with at most one decimal', () => {
  const cases: [number, string][] = [
    [0, '0B'],
    [900, '900B'],
    [1023, '1K'], // rounds up into the next unit, as T - 1 does below
    [K, '1K'],
    [1536, '1.5K'],
    [512 * M, '512M'],
    [2147483648, '2G'],
    [1.5 * G, '1.5G'],
    [1.25 * G, '1.3G'], // rounded to one decimal
    [T, '1T'],
    [64 * T, '64T'],
    [2048 * T, '2048T'],
  ];
  for (const [bytes, text] of cases) assert.equal(formatSize(bytes), text, String(bytes));
});

test('formatSize output parses back to the same bytes (round trip)', () => {
  for (const text of ['64M', '512M', '1.5G', '2G', '20G', '40G', '1T', '1.5T', '64T', '3M', '1.5M']) {
    const bytes = parseSize(text, DISK_RANGE);
    const formatted = formatSize(bytes);
    assert.equal(formatted, text);
    assert.equal(parseSize(formatted, DISK_RANGE), bytes, text);
  }
});

test('formatSize never shows a value that belongs to the next unit', () => {
  assert.equal(formatSize(T - 1), '1T');
  assert.equal(formatSize(2 * G - 1), '2G');
});
