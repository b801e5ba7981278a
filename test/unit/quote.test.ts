import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { shellQuote } from '../../src/quote.js';

/** What sh makes of a command line: each word it passes on, one per NUL-terminated record. */
const wordsBySh = (line: string) =>
  execFileSync('sh', ['-c', `printf '%s\\0' ${line}`], { encoding: 'utf8' })
    .split('\0')
    .slice(0, -1);

const AWKWARD = [
  "it's",
  "'",
  "''",
  '$(touch /tmp/vms-quote-pwned)',
  '`touch /tmp/vms-quote-pwned`',
  '/var/lib/my images/a b.qcow2',
  'line\nbreak',
  '',
  ' ',
  '$HOME',
  '${HOME}',
  'a;b|c&d',
  'glob*?[x]',
  '~user',
  '#comment',
  'back\\slash',
  'dq"uote',
  '-rf',
  'tab\there',
  'mixed \'$(x)\' "y" `z`',
  'ünïcödé',
];

test('shellQuote leaves plain safe strings as they are', () => {
  for (const s of [
    'work',
    'vm-1.2_x',
    '/var/lib/vms/work/serial.log',
    'a=b',
    'host:port',
    '52:54:00:12:34:56',
    '+x',
    'a,b',
    '%',
    '@',
  ]) {
    assert.equal(shellQuote(s), s);
  }
});

test("shellQuote: single quotes, and a quote inside as '\\''", () => {
  assert.equal(shellQuote("it's"), "'it'\\''s'");
  assert.equal(shellQuote('$(x)'), "'$(x)'");
  assert.equal(shellQuote('a b'), "'a b'");
  assert.equal(shellQuote(''), "''");
  assert.equal(shellQuote('a\nb'), "'a\nb'");
  assert.equal(shellQuote("'"), "''\\'''");
});

test('sh reads each awkward string back as exactly one word, itself, and runs nothing', () => {
  for (const s of AWKWARD) assert.deepEqual(wordsBySh(shellQuote(s)), [s], JSON.stringify(s));
  assert.deepEqual(wordsBySh(AWKWARD.map(shellQuote).join(' ')), AWKWARD, 'all on one command line');
  assert.throws(() => execFileSync('test', ['-e', '/tmp/vms-quote-pwned']), 'no command substitution ran');
});
