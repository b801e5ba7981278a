import { buildDeviceXml } from './device-xml.js';
import { first, type XmlNode } from './xml.js';

// <serial> elements: the extra ports vms adds (ttyS1… in the guest), and reading what a definition has.

/** Where a serial port's bytes go on the host. `server`: QEMU listens (mode bind); otherwise it connects. */
export type SerialBackend =
  | { type: 'file'; path: string }
  | { type: 'unix'; path: string; server: boolean }
  | { type: 'tcp'; host: string; port: number; server: boolean };

export interface SerialFacts {
  port: number; // ttyS<port> in the guest
  type: string; // file | unix | tcp | pty | …
  /** Undefined for a kind vms does not make (pty, null, …). */
  backend?: SerialBackend;
  node: XmlNode;
}

/** The backend as `--backend` takes it: file:PATH, unix:PATH, tcp:HOST:PORT (an IPv6 host in brackets). */
export function backendSpec(b: SerialBackend): string {
  if (b.type !== 'tcp') return `${b.type}:${b.path}`;
  return `tcp:${b.host.includes(':') ? `[${b.host}]` : b.host}:${b.port}`;
}

/**
 * A chardev source's `<seclabel>` that gives the file or socket libvirt makes to `owner` (a DAC label, `+UID:+GID`)
 * instead of the qemu user; libvirt hands QEMU an open descriptor, so QEMU needs no access of its own.
 */
export const ownerSeclabel = (owner: string) => [{ $: { model: 'dac', relabel: 'yes' }, label: [owner] }];

/** `owner`: who may read a file port and connect to a listening unix port (see chardevOwner). */
export function serialXml(port: number, b: SerialBackend, owner: string): Promise<string> {
  const target = [{ $: { port: String(port) } }];
  const seclabel = ownerSeclabel(owner);
  if (b.type === 'file')
    return buildDeviceXml('serial', {
      $: { type: 'file' },
      source: [{ $: { path: b.path, append: 'on' }, seclabel }],
      target,
    });
  // A client that finds nobody listening would stop QEMU from starting (tcp): it tries again every 5 s instead.
  const reconnect = b.server ? {} : { reconnect: [{ $: { enabled: 'yes', timeout: '5' } }] };
  const mode = b.server ? 'bind' : 'connect';
  const where = b.type === 'unix' ? { path: b.path } : { host: b.host, service: String(b.port) };
  return buildDeviceXml('serial', {
    $: { type: b.type },
    source: [{ $: { mode, ...where }, ...reconnect, ...(b.type === 'unix' && b.server && { seclabel }) }],
    ...(b.type === 'tcp' && { protocol: [{ $: { type: 'raw' } }] }),
    target,
  });
}

function readBackend(type: string, source: Record<string, string>): SerialBackend | undefined {
  const server = source.mode === 'bind';
  if (type === 'file' && source.path) return { type, path: source.path };
  if (type === 'unix' && source.path) return { type, path: source.path, server };
  if (type === 'tcp' && source.host && source.service)
    return { type, host: source.host, port: Number(source.service), server };
  return undefined;
}

export function readSerialPorts(domain: XmlNode): SerialFacts[] {
  return (first(domain.devices)?.serial ?? []).map((node: XmlNode, i: number) => {
    const type = node.$?.type ?? 'pty';
    const port = first(node.target)?.$?.port;
    return {
      port: port === undefined ? i : Number(port),
      type,
      backend: readBackend(type, first(node.source)?.$ ?? {}),
      node,
    };
  });
}

/** The port as detach-device is to find it: exactly as the saved definition has it (libvirt compares them whole). */
export const detachSerialXml = (port: SerialFacts) => buildDeviceXml('serial', port.node);
