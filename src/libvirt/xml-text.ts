import { usageError } from '../errors.js';

// Text the user gives that libvirt keeps in XML (a VM's notes, a snapshot's description). XML 1.0 cannot hold every
// character, and what it cannot hold fails deep inside xmlbuilder or libvirt with their own words and exit 1.

/**
 * What XML 1.0 cannot hold: control characters but tab, newline and carriage return; U+FFFE and U+FFFF; and
 * surrogates without their pair (only a library caller can pass those: argv is decoded from UTF-8).
 */
const NOT_XML_TEXT = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

/** Refuses text XML cannot hold (exit 2), naming the first such character; `what` is e.g. "the notes". */
export function checkXmlText(text: string, what: string, where: string): void {
  const bad = NOT_XML_TEXT.exec(text)?.[0];
  if (bad === undefined) return;
  const code = `U+${bad.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
  throw usageError(
    `${what} may not hold ${code}: control characters, U+FFFE, U+FFFF and lone surrogates cannot be kept in ${where}`,
    'plain text, tabs and newlines are fine',
  );
}
