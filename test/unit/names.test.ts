import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateName } from '../../src/names.js';
import { VmsError } from '../../src/errors.js';

test('validateName accepts safe names and returns them unchanged', () => {
  for (const name of ['work', 'a', 'A.b_c-9', '9lives', 'x'.repeat(63), 'a.b', 'a-', 'a_']) {
    assert.equal(validateName(name), name);
  }
});

test('validateName rejects unsafe names with a usage error and a hint', () => {
  const bad = [
    'x'.repeat(64),
    '',
    '-x',
    '.x',
    '_x',
    'a/b',
    'a..b',
    '..',
    'a b',
    "a'b",
    'a"b',
    'a<b',
    'a>b',
    'a&b',
    '../etc',
    'a\nb',
    'a\n',
    'a\\b',
    'a;b',
    'a$b',
    'a:b',
    'é',
    ' a',
    'a ',
  ];
  for (const name of bad) {
    assert.throws(
      () => validateName(name),
      (err: unknown) => {
        assert.ok(err instanceof VmsError, JSON.stringify(name));
        assert.equal(err.code, 'usage', JSON.stringify(name));
        assert.equal(err.message, `invalid VM name '${name}'`);
        assert.match(err.hint ?? '', /1-63 letters/);
        return true;
      },
      JSON.stringify(name),
    );
  }
});
