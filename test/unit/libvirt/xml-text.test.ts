import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VmsError } from '../../../src/errors.js';
import { checkXmlText } from '../../../src/libvirt/xml-text.js';

test('checkXmlText: text XML can hold passes, markup, lines and astral characters included', () => {
  for (const ok of [
    '',
    'plain',
    'tab\there\nline\r\n',
    'markup <a> & "q" \'s\'',
    '\x7f\x85\u00a0',
    '\uD7FF\uE000\uFFFD',
    '😀 \u{10FFFF}',
  ]) {
    assert.doesNotThrow(() => checkXmlText(ok, 'the notes', "the domain's XML"), JSON.stringify(ok));
  }
});

test('checkXmlText: control characters, U+FFFE, U+FFFF and lone surrogates are usage errors naming the first one', () => {
  const bad: [string, string][] = [
    ['ring\x07', 'U+0007'],
    ['\x00', 'U+0000'],
    ['a\x1fb', 'U+001F'],
    ['\x0b', 'U+000B'],
    ['x\uFFFF', 'U+FFFF'],
    ['\uFFFEy', 'U+FFFE'],
    ['lone \uD800 high', 'U+D800'],
    ['lone \uDFFF low', 'U+DFFF'],
    ['ok 😀 then \uFFFF', 'U+FFFF'],
    ['\uFFFF\x07', 'U+FFFF'],
  ];
  for (const [text, code] of bad) {
    assert.throws(
      () => checkXmlText(text, 'the notes', "the domain's XML"),
      (err: unknown) => {
        assert.ok(err instanceof VmsError, JSON.stringify(text));
        assert.equal(err.exitCode, 2);
        assert.equal(
          err.message,
          `the notes may not hold ${code}: control characters, U+FFFE, U+FFFF and lone surrogates cannot be kept in the domain's XML`,
        );
        assert.equal(err.hint, 'plain text, tabs and newlines are fine');
        return true;
      },
      JSON.stringify(text),
    );
  }
});
