import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../../src/config.js';
import { VmsError } from '../../../src/errors.js';
import { loadCatalog, parseProfileHeader, profileChain } from '../../../src/core/guest/profiles.js';

/** The profiles vms ships (bundled into the CLI from the repository's profiles/). */
const BUILT_IN = new URL('../../../profiles', import.meta.url).pathname;
const TMP = mkdtempSync(join(tmpdir(), 'vms-unit-profiles-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

/** A profile script with the header lines vms reads. */
const script = (opts: { parent?: string; description?: string; body?: string } = {}) =>
  [
    '#!/bin/sh',
    ...(opts.parent ? [`# vms-parent: ${opts.parent}`] : []),
    ...(opts.description ? [`# vms-description: ${opts.description}`] : []),
    'set -eu',
    opts.body ?? ': body',
    '',
  ].join('\n');

let dirCount = 0;
function profileDir(files: Record<string, string>): string {
  const dir = join(TMP, `dir-${dirCount++}`);
  mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** The catalog as vms builds it for VMS_PROFILE_PATH=dirs (joined with ':'). */
const catalogOf = (...dirs: string[]) => loadCatalog(resolveConfig({ env: { VMS_PROFILE_PATH: dirs.join(':') } }));

function assertError(fn: () => unknown, code: string, message: RegExp, hint?: RegExp) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof VmsError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, message);
    if (hint) assert.match(err.hint ?? '', hint);
    return true;
  });
}

test('parseProfileHeader reads vms-parent and vms-description', () => {
  assert.deepEqual(parseProfileHeader(script({ parent: 'gui', description: 'Firefox and Chromium; Firefox starts' })), {
    parent: 'gui',
    description: 'Firefox and Chromium; Firefox starts',
  });
  assert.deepEqual(parseProfileHeader(script()), { parent: undefined, description: undefined });
  assert.deepEqual(parseProfileHeader('#vms-parent:base   \n#  vms-description:   spaced out   \n'), {
    parent: 'base',
    description: 'spaced out',
  });
});

test('parseProfileHeader looks at the first 10 lines only, and only at comment lines', () => {
  const lines = (n: number) => Array.from({ length: n }, (_, i) => `: line ${i}`);
  assert.deepEqual(parseProfileHeader([...lines(9), '# vms-parent: late', '# vms-description: too late'].join('\n')), {
    parent: 'late',
    description: undefined,
  });
  assert.deepEqual(parseProfileHeader([...lines(10), '# vms-parent: late'].join('\n')), {
    parent: undefined,
    description: undefined,
  });
  assert.deepEqual(parseProfileHeader('echo "# vms-parent: not-a-header"\n  # vms-description: indented'), {
    parent: undefined,
    description: undefined,
  });
});

test('the built-in profiles load: every profiles/*.sh but the _ libraries, each with its name, text and "built-in"', () => {
  const { profiles, libs } = catalogOf();
  const shipped = readdirSync(BUILT_IN).filter((f) => f.endsWith('.sh'));
  const names = shipped.filter((f) => !f.startsWith('_')).map((f) => f.slice(0, -3));
  assert.ok(names.length >= 5, `profiles/ ships the built-in profiles: ${names.join(' ')}`);
  assert.deepEqual([...profiles.keys()].sort(), names.sort());
  for (const [name, p] of profiles) {
    assert.equal(p.name, name);
    assert.equal(p.from, 'built-in');
    assert.equal(p.text, readFileSync(join(BUILT_IN, `${name}.sh`), 'utf8'));
  }
  assert.deepEqual(
    [...libs.keys()].sort(),
    shipped.filter((f) => f.startsWith('_')),
  );
});

test('loadCatalog: earlier VMS_PROFILE_PATH dirs override later ones, and all of them override the built-in', () => {
  const builtIn = [...catalogOf().profiles.keys()][0]!;
  assert.ok(builtIn, 'a built-in profile to override');
  const first = profileDir({ 'web.sh': script({ description: 'from the first dir' }), 'only1.sh': script() });
  const second = profileDir({
    'web.sh': script({ description: 'from the second dir' }),
    'only2.sh': script({ parent: 'only1' }),
    [`${builtIn}.sh`]: script({ description: 'the user override' }),
  });
  const { profiles } = catalogOf(first, second);
  assert.deepEqual([profiles.get('web')?.description, profiles.get('web')?.from], ['from the first dir', first]);
  assert.equal(profiles.get('only1')?.from, first);
  assert.deepEqual([profiles.get('only2')?.from, profiles.get('only2')?.parent], [second, 'only1']);
  assert.equal(profiles.get('web')?.text, script({ description: 'from the first dir' }));
  assert.deepEqual([profiles.get(builtIn)?.description, profiles.get(builtIn)?.from], ['the user override', second]);
  assert.notEqual(catalogOf().profiles.get(builtIn)?.description, 'the user override');
});

test('loadCatalog: _*.sh are libraries (first dir wins), other files and odd names are no profiles', () => {
  const first = profileDir({ '_lib.sh': 'echo mine\n', 'README.md': '# x', 'notes.txt': 'x', 'ok.sh': script() });
  const second = profileDir({
    '_lib.sh': 'echo theirs\n',
    '_extra.sh': 'echo extra\n',
    '.hidden.sh': script(),
    '-dash.sh': script(),
    'sp ace.sh': script(),
    'v1.2_x-y.sh': script(),
  });
  const { profiles, libs } = catalogOf(first, second, join(TMP, 'does-not-exist'));
  assert.equal(libs.get('_lib.sh'), 'echo mine\n');
  assert.equal(libs.get('_extra.sh'), 'echo extra\n');
  const mine = [...profiles.values()]
    .filter((p) => p.from !== 'built-in')
    .map((p) => p.name)
    .sort();
  assert.deepEqual(mine, ['ok', 'v1.2_x-y']);
  for (const name of profiles.keys()) assert.ok(!name.startsWith('_'), `${name} is a library, not a profile`);
});

test('profileChain: the profile and its ancestors, root first', () => {
  const dir = profileDir({
    'root.sh': script({ description: 'the root' }),
    'mid.sh': script({ parent: 'root' }),
    'leaf.sh': script({ parent: 'mid' }),
  });
  const catalog = catalogOf(dir);
  assert.deepEqual(
    profileChain(catalog, 'leaf').map((p) => p.name),
    ['root', 'mid', 'leaf'],
  );
  assert.deepEqual(
    profileChain(catalog, 'root').map((p) => p.name),
    ['root'],
  );
  assert.equal(profileChain(catalog, 'leaf')[0]!.description, 'the root');
});

test('profileChain: an unknown profile is notFound and lists the known ones', () => {
  const catalog = catalogOf(profileDir({ 'zeta.sh': script(), 'alpha.sh': script() }));
  assertError(
    () => profileChain(catalog, 'nope'),
    'notFound',
    /^unknown profile 'nope'$/,
    /known profiles: .*alpha, .*zeta/,
  );
});

test('profileChain: a parent that does not exist is a usage error naming both', () => {
  const catalog = catalogOf(
    profileDir({ 'base.sh': script({ parent: 'ghost' }), 'child.sh': script({ parent: 'base' }) }),
  );
  assertError(
    () => profileChain(catalog, 'child'),
    'usage',
    /^profile 'base' names parent 'ghost', which does not exist$/,
    /known profiles: .*base/,
  );
});

test('profileChain: a loop is a usage error that shows it', () => {
  const catalog = catalogOf(
    profileDir({
      'a.sh': script({ parent: 'b' }),
      'b.sh': script({ parent: 'c' }),
      'c.sh': script({ parent: 'a' }),
      'self.sh': script({ parent: 'self' }),
    }),
  );
  assertError(() => profileChain(catalog, 'a'), 'usage', /^profiles a → b → c → a form a loop$/);
  assertError(() => profileChain(catalog, 'self'), 'usage', /^profiles self → self form a loop$/);
});

test('loadCatalog: what is not a .sh file in a profile dir is never read (a subdirectory there does no harm)', () => {
  const dir = profileDir({ 'ok.sh': script() });
  mkdirSync(join(dir, 'old')); // read as a file, it would fail with EISDIR
  mkdirSync(join(dir, '.git'));
  const { profiles } = catalogOf(dir);
  assert.equal(profiles.get('ok')?.from, dir);
  assert.ok(!profiles.has('old'));
});

test('loadCatalog: a helper whose name would not be typed safely in the guest is refused, naming it', () => {
  // Each name gets past the regex with one anchor dropped: a space before the last "_", a tail after the first ".sh".
  for (const bad of ['_x y_z.sh', '_a.sh b.sh', '_semi;colon.sh']) {
    const dir = profileDir({ [bad]: 'echo lib\n', 'ok.sh': script() });
    assert.throws(
      () => catalogOf(dir),
      (err: unknown) => {
        assert.ok(err instanceof VmsError, String(err));
        assert.deepEqual(
          [err.code, err.message, err.hint],
          [
            'usage',
            `profile helper '${dir}/${bad}' has a name vms cannot copy`,
            'use letters, digits, ".", "_" and "-" only',
          ],
        );
        return true;
      },
      bad,
    );
  }
  assert.ok(catalogOf(profileDir({ '_ok.v1-x_y.sh': 'echo ok\n' })).libs.has('_ok.v1-x_y.sh'), 'a good name');
});

test('profileChain: the known profiles in an unknown-profile hint are sorted by name, the built-in ones too', () => {
  const catalog = catalogOf(profileDir({ 'zzz.sh': script() }));
  const names = [...catalog.profiles.keys()];
  assert.ok(names.length > 2 && names[0] === 'zzz', 'the user dir comes first in the catalog');
  assert.throws(
    () => profileChain(catalog, 'nope'),
    (err: unknown) =>
      err instanceof VmsError &&
      err.hint ===
        `known profiles: ${[...names].sort().join(', ')} (your own go in a directory named by VMS_PROFILE_PATH)`,
  );
});

test('profileChain: a loop says how to fix it', () => {
  const catalog = catalogOf(profileDir({ 'self.sh': script({ parent: 'self' }) }));
  assert.throws(
    () => profileChain(catalog, 'self'),
    (err: unknown) => err instanceof VmsError && err.hint === 'fix the vms-parent lines',
  );
});
