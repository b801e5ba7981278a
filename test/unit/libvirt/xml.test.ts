import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attr, buildXml, escapeXml, first, parseXml, text } from '../../../src/libvirt/xml.js';

test('first, text and attr read the xml2js shape, whatever is missing', async () => {
  const doc = await parseXml(`<a><b x='1'>t</b><b>u</b><c/><d y='2'>v</d></a>`);
  const a = doc.a;
  assert.equal(text(first(a.b)), 't');
  assert.equal(attr(first(a.b), 'x'), '1');
  assert.equal(text(a.b[1]), 'u');
  assert.equal(text(first(a.d)), 'v');
  assert.equal(attr(first(a.d), 'y'), '2');
  assert.equal(first(a.missing), undefined);
  assert.equal(first('not a list'), undefined);
  assert.equal(text(undefined), undefined);
  assert.equal(text(null), undefined);
  assert.equal(attr(undefined, 'x'), undefined);
});

test('escapeXml escapes what an element or a quoted attribute cannot hold, and it reads back', async () => {
  const raw = `a & b < c > d "e" 'f'`;
  assert.equal(escapeXml(raw), 'a &amp; b &lt; c &gt; d &quot;e&quot; &apos;f&apos;');
  const doc = await parseXml(`<x k='${escapeXml(raw)}' j="${escapeXml(raw)}">${escapeXml(raw)}</x>`);
  assert.equal(text(doc.x), raw);
  assert.equal(attr(doc.x, 'k'), raw);
  assert.equal(attr(doc.x, 'j'), raw);
});

test('buildXml writes an element without a declaration, indented by two spaces, and it parses back', async () => {
  const xml = await buildXml('interface', { $: { type: 'user' }, model: [{ $: { type: 'virtio' } }] });
  assert.equal(xml, `<interface type="user">\n  <model type="virtio"/>\n</interface>`);
  assert.deepEqual((await parseXml(xml)).interface, { $: { type: 'user' }, model: [{ $: { type: 'virtio' } }] });
});
