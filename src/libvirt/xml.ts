// The one place for XML in vms. libvirt's XML is read with xml2js into its default shape: every child element an
// array, attributes under "$", text under "_" (a plain string when the element has no attributes). It is written in
// three forms, each for a reason: the domain template (templates/domain.xml.hbs: a whole definition, readable as
// libvirt's own), xml2js's builder for elements vms edits or copies (buildXml), and small fixed fragments as strings
// (their values put through escapeXml).

/* eslint-disable @typescript-eslint/no-explicit-any */
export type XmlNode = Record<string, any>;

/** The first of an xml2js child list (undefined when there is none). */
export const first = (children: unknown): any => (Array.isArray(children) ? children[0] : undefined);

/** An element's text, whether xml2js made it a string or an object with attributes. */
export const text = (node: unknown): string | undefined =>
  typeof node === 'string' ? node : (node as XmlNode | null | undefined)?._;

/** An attribute of an element. */
export const attr = (node: unknown, name: string): string | undefined =>
  (node as XmlNode | null | undefined)?.$?.[name];

/** Escapes text for an element or a quoted attribute ('…' or "…"). */
export const escapeXml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);

/** Parses a document into the xml2js shape: `{ rootTag: node }`. */
export async function parseXml(xml: string): Promise<XmlNode> {
  const { parseStringPromise } = await import('xml2js'); // loaded on first use, like every heavy dependency
  return parseStringPromise(xml);
}

/** An element (xml2js shape) as XML text: no XML declaration, two-space indents, as libvirt writes its own. */
export async function buildXml(rootName: string, node: XmlNode): Promise<string> {
  const { Builder } = await import('xml2js');
  return new Builder({
    rootName,
    headless: true,
    renderOpts: { pretty: true, indent: '  ', newline: '\n' },
  }).buildObject(node);
}
