import { createHash, randomBytes } from 'node:crypto';

// A new guest gets a random root password that the user can type at its console. The guest only ever receives the
// hash (written into its /etc/shadow); the plain password stays on the host. The hash is SHA-512 crypt ("$6$",
// Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512", https://www.akkadia.org/drepper/SHA-crypt.txt) because
// Arch's shadow/PAM, busybox and glibc crypt(3) all accept it, and it needs nothing but SHA-512 from node:crypto —
// no native module, no openssl on the host.

/** The crypt alphabet: a base64 variant whose digit values run ./0-9A-Za-z (not the MIME order). */
const CRYPT_ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

const SALT_MAX = 16;
const ROUNDS_DEFAULT = 5000;
const ROUNDS_MIN = 1000;
const ROUNDS_MAX = 999_999_999;

/** SHA-512 of the concatenation of the given parts. */
function sha512(...parts: Buffer[]): Buffer {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** `length` bytes made of `block` repeated (the spec's "P sequence" / "S sequence"). */
function repeatTo(block: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += block.length) block.copy(out, i, 0, Math.min(block.length, length - i));
  return out;
}

/**
 * The spec's final encoding of the 64-byte digest into 86 characters. Bytes are taken in triples that interleave
 * three thirds of the digest (0/21/42, 22/43/1, 44/2/23, ... rotating by one each step), each triple read as a
 * 24-bit number with its first byte most significant and emitted least significant 6 bits first; byte 63 is left
 * over and gives the last two characters.
 */
function encodeDigest(digest: Buffer): string {
  let out = '';
  const emit = (value: number, chars: number) => {
    for (let i = 0; i < chars; i++, value >>>= 6) out += CRYPT_ALPHABET[value & 0x3f];
  };
  for (let k = 0; k < 21; k++) {
    const third = [k, k + 21, k + 42];
    // Triple k starts at third[k % 3]: (0,21,42), (22,43,1), (44,2,23), (3,24,45), ...
    const r = k % 3;
    const [a, b, c] = [third[r]!, third[(r + 1) % 3]!, third[(r + 2) % 3]!];
    emit((digest[a]! << 16) | (digest[b]! << 8) | digest[c]!, 4);
  }
  emit(digest[63]!, 2);
  return out;
}

/**
 * glibc-compatible SHA-512 crypt: `$6$salt$hash`, or `$6$rounds=N$salt$hash` when rounds are given (even 5000, as
 * glibc does when the setting names them). The salt is cut to 16 characters and rounds are clamped to
 * 1000..999999999, both as the spec says; a salt with `$`, `:`, control or non-ASCII characters is refused, since it
 * could not be parsed back out of /etc/shadow (and glibc would stop the salt at the `$`).
 */
export function sha512Crypt(password: string, salt: string, rounds?: number): string {
  if (password.includes('\0')) throw new RangeError('a crypt password cannot contain a NUL character');
  if (!/^[\x21-\x7e]*$/.test(salt) || /[$:]/.test(salt)) {
    throw new RangeError(`invalid crypt salt ${JSON.stringify(salt)}: use printable ASCII other than '$' and ':'`);
  }
  if (rounds !== undefined && !Number.isInteger(rounds)) throw new RangeError(`invalid crypt rounds: ${rounds}`);
  const n = rounds === undefined ? ROUNDS_DEFAULT : Math.min(ROUNDS_MAX, Math.max(ROUNDS_MIN, rounds));
  const saltText = salt.slice(0, SALT_MAX);

  const P = Buffer.from(password, 'utf8');
  const S = Buffer.from(saltText, 'latin1'); // ASCII, so one byte per character

  // Digest B: password, salt, password.
  const B = sha512(P, S, P);

  // Digest A: password, salt, then as many bytes of B as the password is long, then for each bit of the password's
  // length (least significant first, up to the highest 1 bit) B for a 1 and the password for a 0.
  const partsA: Buffer[] = [P, S, repeatTo(B, P.length)];
  for (let len = P.length; len > 0; len >>>= 1) partsA.push(len & 1 ? B : P);
  let A = sha512(...partsA);

  // The P sequence: SHA-512 of the password repeated once per password byte, stretched/cut to the password's length.
  const pSeq = repeatTo(sha512(...Array<Buffer>(P.length).fill(P)), P.length);
  // The S sequence: SHA-512 of the salt repeated 16 + A[0] times, cut to the salt's length.
  const sSeq = sha512(...Array<Buffer>(16 + A[0]!).fill(S)).subarray(0, S.length);

  // The rounds, each hashing the previous digest with the sequences in an order driven by the round number.
  for (let i = 0; i < n; i++) {
    const h = createHash('sha512');
    h.update(i & 1 ? pSeq : A);
    if (i % 3 !== 0) h.update(sSeq);
    if (i % 7 !== 0) h.update(pSeq);
    h.update(i & 1 ? A : pSeq);
    A = h.digest();
  }

  const roundsPart = rounds === undefined ? '' : `rounds=${n}$`;
  return `$6$${roundsPart}${saltText}$${encodeDigest(A)}`;
}

/** Characters of generated passwords: plain lowercase letters and digits, nothing a console or shell could mangle. */
const PASSWORD_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const PASSWORD_GROUPS = 4;
const PASSWORD_GROUP_LENGTH = 5;

/**
 * `count` characters drawn uniformly from `alphabet` with crypto.randomBytes. Bytes at or above the largest multiple
 * of the alphabet's size are thrown away (rejection sampling), so `byte % size` has no modulo bias.
 */
function randomChars(alphabet: string, count: number): string {
  const limit = 256 - (256 % alphabet.length);
  let out = '';
  while (out.length < count) {
    for (const byte of randomBytes(count - out.length + 8)) {
      if (byte >= limit) continue;
      out += alphabet[byte % alphabet.length];
      if (out.length === count) break;
    }
  }
  return out;
}

/**
 * A random password meant to be read off the host and typed at the guest's console: four groups of five lowercase
 * letters and digits joined by '-' (e.g. `k3v9q-0xmfa-7hd2p-zr4tn`), about 103 bits of entropy.
 */
export function generatePassword(): string {
  const chars = randomChars(PASSWORD_ALPHABET, PASSWORD_GROUPS * PASSWORD_GROUP_LENGTH);
  const groups: string[] = [];
  for (let i = 0; i < chars.length; i += PASSWORD_GROUP_LENGTH) groups.push(chars.slice(i, i + PASSWORD_GROUP_LENGTH));
  return groups.join('-');
}

/** The `$6$` shadow hash of `password` with a fresh random 16-character salt and the default 5000 rounds. */
export function hashPassword(password: string): string {
  return sha512Crypt(password, randomChars(CRYPT_ALPHABET, SALT_MAX));
}
