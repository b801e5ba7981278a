import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  hostFacts,
  parseSettings,
  renderSettings,
  shellQuote,
  sshPublicKey,
  validateUser,
  type GuestSettings,
} from '../../../src/core/guest/guest-settings.js';
import { VmsError } from '../../../src/errors.js';

const TMP = mkdtempSync(join(tmpdir(), 'vms-unit-settings-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

const BASE: GuestSettings = {
  name: 'work',
  hostname: 'work',
  user: 'alice',
  passwordHash: '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1',
  sshKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@host',
  timezone: 'Europe/Berlin',
  locale: 'de_DE.UTF-8',
  keymap: 'de-latin1',
  disk: '/dev/vda',
  firmware: 'efi',
  cacheRo: ['vms-pkg-host', 'vms-pkg-other'],
  cacheRw: 'vms-pkg-rw',
};

/** The variables renderSettings writes, in the order it writes them, with the GuestSettings value each carries. */
const VARS = (s: GuestSettings): [string, string][] => [
  ['VMS_NAME', s.name],
  ['VMS_HOSTNAME', s.hostname],
  ['VMS_USER', s.user],
  ['VMS_PASSWORD_HASH', s.passwordHash],
  ['VMS_SSH_KEY', s.sshKey],
  ['VMS_TIMEZONE', s.timezone],
  ['VMS_LOCALE', s.locale],
  ['VMS_KEYMAP', s.keymap],
  ['VMS_DISK', s.disk],
  ['VMS_FIRMWARE', s.firmware],
  ['VMS_CACHE_RO', s.cacheRo.join(' ')],
  ['VMS_CACHE_RW', s.cacheRw],
];

const NASTY = [
  `it's`,
  `'`,
  `''`,
  `'\\''`,
  `say "hi"`,
  '$HOME $(id) ${PATH}',
  '`id`',
  'back\\slash\\',
  '  spaces  around  ',
  'tab\there',
  '',
  'ü ✓ 日本',
  '; rm -rf / #',
  '$6$rounds=5000$a.b/c$x$y$z',
];

/** Each value as sh sees it after `. FILE` (the guest scripts source the file; dash is the strictest sh here). */
function sourcedBySh(text: string): Record<string, string> {
  const file = join(TMP, `settings-${Math.random().toString(36).slice(2)}.sh`);
  writeFileSync(file, text);
  const names = VARS(BASE).map(([k]) => k);
  const script = `. "$1" || exit 9; printf '%s\\0' ${names.map((n) => `"$${n}"`).join(' ')}`;
  const out = execFileSync('sh', ['-c', script, 'sh', file], { encoding: 'utf8' });
  const values = out.split('\0').slice(0, -1);
  assert.equal(values.length, names.length, out);
  return Object.fromEntries(names.map((n, i) => [n, values[i]!]));
}

test('renderSettings: sh gives back every value exactly, quotes, $, backquotes and backslashes included', () => {
  const settings: GuestSettings[] = [BASE];
  for (const nasty of NASTY) {
    settings.push({
      ...BASE,
      name: nasty,
      hostname: `h${nasty}`,
      user: nasty,
      sshKey: `ssh-ed25519 AAAA ${nasty}`,
      timezone: nasty,
      cacheRo: [nasty, 'x'],
      cacheRw: nasty,
    });
  }
  settings.push({ ...BASE, cacheRo: [] });
  for (const s of settings) {
    assert.deepEqual(sourcedBySh(renderSettings(s)), Object.fromEntries(VARS(s)), JSON.stringify(s.name));
  }
});

test('renderSettings: one VMS_ line per variable, after a comment', () => {
  const lines = renderSettings(BASE).split('\n');
  assert.match(lines[0]!, /^# /);
  assert.equal(lines.at(-1), '', 'ends with a newline');
  assert.deepEqual(
    lines.slice(1, -1).map((l) => l.split('=')[0]),
    VARS(BASE).map(([k]) => k),
  );
});

test('renderSettings refuses a value of more than one line, naming the variable', () => {
  const cases: [Partial<GuestSettings>, string][] = [
    [{ sshKey: 'ssh-ed25519 AAAA a\nssh-rsa AAAA b' }, 'VMS_SSH_KEY'],
    [{ passwordHash: '$6$x$y\r' }, 'VMS_PASSWORD_HASH'],
    [{ hostname: 'a\0b' }, 'VMS_HOSTNAME'],
    [{ cacheRo: ['a', 'b\nc'] }, 'VMS_CACHE_RO'],
  ];
  for (const [patch, key] of cases) {
    assert.throws(
      () => renderSettings({ ...BASE, ...patch }),
      (err: unknown) => {
        assert.ok(err instanceof VmsError);
        assert.equal(err.code, 'usage');
        assert.equal(err.message, `${key} must be a single line`);
        return true;
      },
      key,
    );
  }
});

test('parseSettings(renderSettings(x)) gives back every variable', () => {
  for (const nasty of NASTY) {
    const s: GuestSettings = {
      ...BASE,
      name: nasty,
      passwordHash: `$6$${nasty}`,
      locale: nasty,
      keymap: `'${nasty}'`,
      cacheRw: nasty,
    };
    assert.deepEqual(parseSettings(renderSettings(s)), Object.fromEntries(VARS(s)), JSON.stringify(nasty));
  }
});

test('parseSettings ignores comments, blank lines and what vms does not write', () => {
  const text = [
    '# a comment',
    '',
    "VMS_USER='bob'",
    "OTHER='x'",
    'VMS_X=unquoted',
    "  VMS_Y='indented'",
    "VMS_EXTRA='kept'",
  ].join('\n');
  assert.deepEqual(parseSettings(text), { VMS_USER: 'bob', VMS_EXTRA: 'kept' });
});

test('shellQuote survives sh for single quotes at either end', () => {
  for (const value of [`'a'`, `a'`, `'`, `''''`]) {
    assert.equal(execFileSync('sh', ['-c', `printf %s ${shellQuote(value)}`], { encoding: 'utf8' }), value);
  }
});

test('validateUser: lowercase Linux names, never root', () => {
  for (const ok of ['alice', 'a', '_svc', 'bob-2', 'x_y', 'a'.repeat(32)]) assert.equal(validateUser(ok), ok);
  for (const bad of ['root', 'Alice', '1abc', '-x', 'a b', 'a.b', 'a'.repeat(33), '', 'ali$e', 'é']) {
    assert.throws(
      () => validateUser(bad),
      (err: unknown) => err instanceof VmsError && err.code === 'usage' && err.message.includes(`'${bad}'`),
      bad,
    );
  }
});

/** A fake root: /etc/localtime → Berlin, a German keymap, and a passwd that knows alice. */
function fakeRoot(opts: { localtime?: string; vconsole?: string; passwd?: string } = {}): string {
  const root = mkdtempSync(join(TMP, 'root-'));
  mkdirSync(join(root, 'etc'));
  if (opts.localtime !== '')
    symlinkSync(opts.localtime ?? '../usr/share/zoneinfo/Europe/Berlin', join(root, 'etc/localtime'));
  if (opts.vconsole !== '')
    writeFileSync(join(root, 'etc/vconsole.conf'), opts.vconsole ?? 'KEYMAP=de-latin1\nFONT=ter-v16n\n');
  if (opts.passwd !== '') {
    writeFileSync(
      join(root, 'etc/passwd'),
      opts.passwd ??
        'root:x:0:0::/root:/bin/bash\nalicex:x:1001:1001::/home/wrong:/bin/bash\nalice:x:1000:1000:Alice:/srv/alice:/bin/zsh\n',
    );
  }
  return root;
}

/** The caller of a request: its environment, and who it is when that names nobody. */
const caller = (env: NodeJS.ProcessEnv) => ({ env, user: 'dora', home: '/home/dora' });

test('hostFacts: without SUDO_USER, USER or HOME, the user is the one the request is for', () => {
  assert.deepEqual(pick(hostFacts(caller({}), fakeRoot())), { user: 'dora', home: '/home/dora' });
  assert.deepEqual(pick(hostFacts(caller({ USER: 'bob' }), fakeRoot())), { user: 'bob', home: '/home/dora' });
});

const pick = ({ user, home }: { user: string; home: string }) => ({ user, home });

test('hostFacts reads the timezone, keymap and (under sudo) the home from the root given', () => {
  const root = fakeRoot();
  assert.deepEqual(hostFacts(caller({ SUDO_USER: 'alice', USER: 'root', HOME: '/root', LANG: 'de_DE.UTF-8' }), root), {
    user: 'alice',
    home: '/srv/alice', // from passwd, not $HOME (root's under sudo) and not the alicex line
    timezone: 'Europe/Berlin',
    locale: 'de_DE.UTF-8',
    keymap: 'de-latin1',
  });
});

test('hostFacts: who the user is, and their home', () => {
  const root = fakeRoot();
  const cases: [NodeJS.ProcessEnv, { user: string; home: string }][] = [
    [
      { SUDO_USER: 'alice', USER: 'root', HOME: '/root' },
      { user: 'alice', home: '/srv/alice' },
    ],
    [
      { SUDO_USER: 'carol', USER: 'root', HOME: '/root' },
      { user: 'carol', home: '/home/carol' },
    ], // not in passwd
    [
      { USER: 'bob', HOME: '/home/bob' },
      { user: 'bob', home: '/home/bob' },
    ],
    [
      { USER: 'root', HOME: '/root' },
      { user: 'arch', home: '/root' },
    ], // root (containers, CI): an ordinary guest user
    [
      { SUDO_USER: 'root', USER: 'root', HOME: '/root' },
      { user: 'arch', home: '/root' },
    ], // sudo from root
    [
      { USER: 'Bob.Smith', HOME: '/home/b' },
      { user: 'arch', home: '/home/b' },
    ], // not a valid guest user name
  ];
  for (const [env, expected] of cases) {
    const { user, home } = hostFacts(caller(env), root);
    assert.deepEqual({ user, home }, expected, JSON.stringify(env));
  }
  const noPasswd = fakeRoot({ passwd: '' });
  assert.equal(hostFacts(caller({ SUDO_USER: 'alice', USER: 'root' }), noPasswd).home, '/home/alice');
});

test('hostFacts: LANG is taken only when it is a plain UTF-8 locale', () => {
  const root = fakeRoot();
  const cases: [string | undefined, string][] = [
    ['de_DE.UTF-8', 'de_DE.UTF-8'],
    ['ast_ES.UTF-8', 'ast_ES.UTF-8'],
    ['en_US.utf8', 'en_US.UTF-8'],
    ['C.UTF-8', 'en_US.UTF-8'],
    ['POSIX', 'en_US.UTF-8'],
    ['de_DE.ISO-8859-1', 'en_US.UTF-8'],
    ['sr_RS.UTF-8@latin', 'en_US.UTF-8'],
    ['de_DE.UTF-8; reboot', 'en_US.UTF-8'],
    ['', 'en_US.UTF-8'],
    [undefined, 'en_US.UTF-8'],
  ];
  for (const [lang, locale] of cases) {
    assert.equal(
      hostFacts(caller({ USER: 'bob', HOME: '/h', ...(lang !== undefined && { LANG: lang }) }), root).locale,
      locale,
      String(lang),
    );
  }
});

test('hostFacts: timezone and keymap fall back to UTC and us', () => {
  const env = { USER: 'bob', HOME: '/h' };
  const cases: [Parameters<typeof fakeRoot>[0], string, string][] = [
    [
      { localtime: '/usr/share/zoneinfo/America/New_York', vconsole: 'FONT=x\nKEYMAP="fr"\n' },
      'America/New_York',
      'fr',
    ],
    [{ localtime: '', vconsole: '' }, 'UTC', 'us'],
    [{ localtime: '/etc/somewhere/else', vconsole: 'FONT=ter-v16n\n' }, 'UTC', 'us'],
  ];
  for (const [opts, timezone, keymap] of cases) {
    const f = hostFacts(caller(env), fakeRoot(opts));
    assert.deepEqual([f.timezone, f.keymap], [timezone, keymap], JSON.stringify(opts));
  }
  const regular = fakeRoot({ localtime: '' });
  writeFileSync(join(regular, 'etc/localtime'), 'TZif2...'); // a copy, not a link: the zone name is unknown
  assert.equal(hostFacts(caller(env), regular).timezone, 'UTC');
});

const ED = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host';
const RSA = 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 me@host';
const ECDSA = 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY= me@host';

function home(keys: Record<string, string>): string {
  const dir = mkdtempSync(join(TMP, 'home-'));
  mkdirSync(join(dir, '.ssh'));
  for (const [file, text] of Object.entries(keys)) writeFileSync(join(dir, '.ssh', file), text);
  return dir;
}

test('sshPublicKey: id_ed25519.pub, else id_ecdsa.pub, else id_rsa.pub; first line, trimmed', () => {
  assert.equal(
    sshPublicKey(home({ 'id_rsa.pub': `${RSA}\n`, 'id_ed25519.pub': `${ED}\n`, 'id_ecdsa.pub': ECDSA })),
    ED,
  );
  assert.equal(sshPublicKey(home({ 'id_rsa.pub': `${RSA}\n`, 'id_ecdsa.pub': `  ${ECDSA}  \n` })), ECDSA);
  assert.equal(sshPublicKey(home({ 'id_rsa.pub': `${RSA}\n${ED}\n`, id_ed25519: 'PRIVATE' })), RSA);
});

test('sshPublicKey: no key at all is an empty string, not an error', () => {
  assert.equal(sshPublicKey(home({})), '');
  assert.equal(sshPublicKey(home({ id_ed25519: '-----BEGIN OPENSSH PRIVATE KEY-----', authorized_keys: ED })), '');
  assert.equal(sshPublicKey(join(TMP, 'no-such-home')), '');
});

test('sshPublicKey: a given file is used as is, and must exist and hold a public key', () => {
  const dir = home({
    'id_ed25519.pub': ED,
    'work.pub': `${RSA}\n`,
    private: '-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n',
    'empty.pub': '',
  });
  assert.equal(sshPublicKey(dir, join(dir, '.ssh/work.pub')), RSA);
  const usage = (given: string, message: RegExp) =>
    assert.throws(
      () => sshPublicKey(dir, given),
      (err: unknown) => err instanceof VmsError && err.code === 'usage' && message.test(err.message),
      given,
    );
  usage(join(dir, '.ssh/missing.pub'), /^SSH key not found: .*missing\.pub$/);
  usage(join(dir, '.ssh/private'), /private does not look like an SSH public key/);
  usage(join(dir, '.ssh/empty.pub'), /empty\.pub does not look like an SSH public key/);
});

test("sshPublicKey: a relative key file is the caller's, from their directory (not this process's)", () => {
  const dir = home({ 'work.pub': `${RSA}\n` });
  assert.equal(sshPublicKey(dir, 'work.pub', join(dir, '.ssh')), RSA);
  assert.equal(sshPublicKey(dir, '.ssh/work.pub', dir), RSA);
  assert.throws(() => sshPublicKey(dir, 'work.pub', dir), /: SSH key not found: work\.pub$/);
});

test('parseSettings takes a whole line only: a VMS_ line with text after its closing quote is not vms', () => {
  assert.deepEqual(parseSettings("VMS_USER='bob'\nVMS_HOSTNAME='h' # edited\nVMS_DISK='/dev/vda'trailing\n"), {
    VMS_USER: 'bob',
  });
});

/** The VmsError `fn` throws, as [code, message, hint, reason]. */
function errorOf(fn: () => unknown): unknown[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof VmsError, String(err));
    return [err.code, err.message, err.hint, err.reason];
  }
  return assert.fail('no error');
}

test('validateUser: the error says what a good name is, with its reason', () => {
  assert.deepEqual(
    errorOf(() => validateUser('Root')),
    [
      'usage',
      "invalid user name 'Root'",
      'use a lowercase Linux user name other than root, for example alice',
      'user.invalid',
    ],
  );
});

test('hostFacts: SUDO_USER=root names nobody: USER and HOME are taken as without sudo', () => {
  const f = hostFacts(caller({ SUDO_USER: 'root', USER: 'bob', HOME: '/home/bob' }), fakeRoot());
  assert.deepEqual(pick(f), { user: 'bob', home: '/home/bob' });
});

test('hostFacts: a LANG with more before its language, or a KEYMAP line commented out, is not taken', () => {
  const env = { USER: 'bob', HOME: '/h' };
  assert.equal(hostFacts(caller({ ...env, LANG: 'abcd_DE.UTF-8' }), fakeRoot()).locale, 'en_US.UTF-8');
  assert.equal(hostFacts(caller({ ...env, LANG: 'x.de_DE.UTF-8' }), fakeRoot()).locale, 'en_US.UTF-8');
  assert.equal(hostFacts(caller(env), fakeRoot({ vconsole: '#KEYMAP=de\nXKBKEYMAP=fr\n' })).keymap, 'us');
});

test("hostFacts: without a root given, the host's own files under / are read", () => {
  const host = caller({ USER: 'bob', HOME: '/h', SUDO_USER: 'daemon' });
  assert.deepEqual(hostFacts(host), hostFacts(host, '/'));
});

test('sshPublicKey: a relative key file without a directory given is taken from /', () => {
  const dir = home({ 'work.pub': `${RSA}\n` });
  assert.equal(sshPublicKey(dir, join(dir, '.ssh/work.pub').slice(1)), RSA);
});

test('sshPublicKey: the errors say what to give, with their reasons', () => {
  const dir = home({ 'bad.pub': `not-ssh-rsa AAAA me@host\n` });
  const missing = join(dir, '.ssh/missing.pub');
  const bad = join(dir, '.ssh/bad.pub');
  assert.deepEqual(
    errorOf(() => sshPublicKey(dir, missing)),
    ['usage', `SSH key not found: ${missing}`, 'give a public key file (.pub)', 'sshKey.notFound'],
  );
  assert.deepEqual(
    errorOf(() => sshPublicKey(dir, bad)),
    ['usage', `${bad} does not look like an SSH public key`, 'pass the .pub file', undefined],
  );
});
