import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { generatePassword, hashPassword, sha512Crypt } from '../../../src/core/guest/password.js';

const CRYPT_ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

// The SHA-512 test vectors of Drepper's "Unix crypt using SHA-256 and SHA-512" (akkadia.org/drepper/SHA-crypt.txt).
const SPEC_VECTORS: { password: string; salt: string; rounds?: number; expected: string }[] = [
  {
    password: 'Hello world!',
    salt: 'saltstring',
    expected: '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1',
  },
  {
    password: 'Hello world!',
    salt: 'saltstringsaltstring', // cut to 16 characters
    rounds: 10000,
    expected:
      '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.',
  },
  {
    password: 'This is just a test',
    salt: 'toolongsaltstring', // cut to 16 characters; rounds=5000 named explicitly stays in the output
    rounds: 5000,
    expected:
      '$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0',
  },
  {
    password: 'a very much longer text to encrypt.  This one even stretches over morethan one line.',
    salt: 'anotherlongsaltstring',
    rounds: 1400,
    expected:
      '$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1',
  },
  {
    password: 'we have a short salt string but not a short password',
    salt: 'short',
    rounds: 77777,
    expected:
      '$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0',
  },
  {
    password: 'a short string',
    salt: 'asaltof16chars..',
    rounds: 123456,
    expected:
      '$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1',
  },
  {
    password: 'the minimum number is still observed',
    salt: 'roundstoolow',
    rounds: 10, // raised to 1000
    expected:
      '$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.',
  },
];

for (const v of SPEC_VECTORS) {
  test(`sha512Crypt matches the spec vector ${v.salt}${v.rounds === undefined ? '' : ` rounds=${v.rounds}`}`, () => {
    assert.equal(sha512Crypt(v.password, v.salt, v.rounds), v.expected);
  });
}

test('sha512Crypt raises rounds below the minimum to 1000', () => {
  // (Clamping at the top, 999999999, is not exercised: that many rounds would take many minutes.)
  assert.match(sha512Crypt('x', 'salt', 1000), /^\$6\$rounds=1000\$salt\$/);
  assert.match(sha512Crypt('x', 'salt', 0), /^\$6\$rounds=1000\$salt\$/);
  assert.equal(sha512Crypt('x', 'salt', 999), sha512Crypt('x', 'salt', 1000));
});

test('sha512Crypt refuses salts and rounds that could not round-trip through /etc/shadow', () => {
  assert.throws(() => sha512Crypt('x', 'sa$lt'), RangeError);
  assert.throws(() => sha512Crypt('x', 'sa:lt'), RangeError);
  assert.throws(() => sha512Crypt('x', 'sa\nlt'), RangeError);
  assert.throws(() => sha512Crypt('x', 'sälz'), RangeError);
  assert.throws(() => sha512Crypt('x', 'salt', 1.5), RangeError);
  assert.throws(() => sha512Crypt('x', 'salt', Number.NaN), RangeError);
  assert.throws(() => sha512Crypt('a\0b', 'salt'), RangeError);
});

test('sha512Crypt: each refusal says what is wrong', () => {
  assert.throws(() => sha512Crypt('a\0b', 'salt'), { message: 'a crypt password cannot contain a NUL character' });
  assert.throws(() => sha512Crypt('x', 'sa$lt'), {
    message: `invalid crypt salt "sa$lt": use printable ASCII other than '$' and ':'`,
  });
  assert.throws(() => sha512Crypt('x', 'salt', 1.5), { message: 'invalid crypt rounds: 1.5' });
});

/** `openssl passwd -6`; throws (failing the test) when openssl is missing or fails, rather than skipping. */
function opensslCrypt(password: string, salt: string): string {
  return execFileSync('openssl', ['passwd', '-6', '-salt', salt, '-stdin'], {
    input: `${password}\n`,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  }).trim();
}

function randomFrom(alphabet: string, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += alphabet[randomInt(alphabet.length)];
  return s;
}

test('sha512Crypt hashes the empty password like glibc', () => {
  // openssl passwd prints <NULL> for an empty password, so this value comes from glibc's crypt(3) (via perl's crypt).
  assert.equal(
    sha512Crypt('', 'emptypassword'),
    '$6$emptypassword$A8Ea6Wwj4ySnvoqOM4sUC2F4f0eItLKq6JSZfH54nEdUj6OuFyprcTM7OjcT8lDS8/7KQ9w5/UyNhgAfQ9w5K1',
  );
});

test('sha512Crypt agrees with openssl passwd -6', () => {
  const printable = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('');
  const cases: [string, string][] = [
    ['x', 'a'], // one-character salt
    ['pässwörd ☃', 'abcdefghijklmnop'], // multi-byte UTF-8 password
    ['a'.repeat(64), 'block64'], // exactly one SHA-512 block of password
    ['b'.repeat(65), 'block65'],
    ['c'.repeat(200), 'long'],
    [generatePassword(), randomFrom(CRYPT_ALPHABET, 16)],
  ];
  for (let i = 0; i < 12; i++) {
    cases.push([randomFrom(printable, randomInt(1, 100)), randomFrom(CRYPT_ALPHABET, randomInt(1, 17))]);
  }
  for (const [password, salt] of cases) {
    const label = `password ${JSON.stringify(password)} salt ${JSON.stringify(salt)}`;
    assert.equal(sha512Crypt(password, salt), opensslCrypt(password, salt), label);
  }
});

test('hashPassword agrees with openssl passwd -6 for its own salt', () => {
  const password = randomBytes(12).toString('base64');
  const hash = hashPassword(password);
  const salt = hash.split('$')[2]!;
  assert.equal(opensslCrypt(password, salt), hash);
});

test('generatePassword gives four dash-separated groups of five lowercase letters and digits', () => {
  for (let i = 0; i < 100; i++) assert.match(generatePassword(), /^[a-z0-9]{5}(?:-[a-z0-9]{5}){3}$/);
});

test('generatePassword does not repeat over 1000 runs', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) seen.add(generatePassword());
  assert.equal(seen.size, 1000);
});

test('generatePassword uses the whole alphabet', () => {
  // 1000 passwords hold 20000 characters; each of the 36 should turn up (a missing one has odds of ~1e-240).
  const chars = new Set(Array.from({ length: 1000 }, generatePassword).join('').replaceAll('-', ''));
  assert.equal(chars.size, 36);
});

test('hashPassword gives a $6$ hash with a fresh 16-character salt', () => {
  const a = hashPassword('secret');
  const b = hashPassword('secret');
  for (const h of [a, b]) assert.match(h, /^\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/);
  assert.notEqual(a, b);
  const salt = a.split('$')[2]!;
  assert.equal(sha512Crypt('secret', salt), a);
});
