import { statSync } from 'node:fs';
import { isIP } from 'node:net';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { conflict, notFound, usageError, VmsError } from '../../errors.js';
import { changeDevice } from '../../libvirt/device-xml.js';
import {
  backendSpec,
  detachSerialXml,
  readSerialPorts,
  serialXml,
  type SerialBackend,
  type SerialFacts,
} from '../../libvirt/serial-xml.js';
import type { DomainState } from '../../libvirt/virsh.js';
import type { Context } from '../context.js';
import { isActive } from '../vm/vm.js';
import { loadVmDevices } from './vm-devices.js';
import { describeUse, filesInUse, noteUnchecked, realPath, type FileUse } from '../storage/files-in-use.js';
import { chardevOwner, ownFiles, vmFiles } from '../vm/vm-files.js';
import { shellQuote as q } from '../../quote.js';
import { withOperation } from '../ops/operation.js';

// `vms serial`: extra serial ports (ttyS1… in the guest) that write to a file or a socket on the host. QEMU cannot
// plug a serial port (an ISA device) into a running VM: the saved definition changes and the running VM follows at
// its next start (`pendingRestart`).

/** Port 0 (ttyS0) is vms's own console: `vms console`, the install and the tests log in over it. */
export const CONSOLE_PORT = 0;
/** QEMU has four ISA serial ports, ttyS0 to ttyS3. */
export const LAST_PORT = 3;
const EXTRA_PORTS = Array.from({ length: LAST_PORT }, (_, i) => CONSOLE_PORT + 1 + i);

const BACKEND_HINT =
  'use file:/abs/path, unix:/abs/path or tcp:HOST:PORT (as a server for QEMU to listen on the socket)';
const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** A backend the core cannot take: the CLI words the hint with its --server flag (reason serial.badBackend). */
const badBackend = (message: string, reason: 'serial.badBackend' | 'serial.serverFile' = 'serial.badBackend') =>
  new VmsError('usage', message, BACKEND_HINT, undefined, reason);

function absolutePath(text: string, spec: string): string {
  if (!isAbsolute(text) || text.endsWith('/'))
    throw badBackend(`invalid serial backend '${spec}': the path must be absolute and name a file`);
  return text;
}

/** file:PATH, unix:PATH, tcp:HOST:PORT (an IPv6 host in brackets: tcp:[::1]:4555). */
export function parseBackend(spec: string, server: boolean): SerialBackend {
  const colon = spec.indexOf(':');
  const [kind, rest] = colon < 0 ? [spec, ''] : [spec.slice(0, colon), spec.slice(colon + 1)];
  if (kind === 'file') {
    if (server)
      throw badBackend('a server is for unix: and tcp: backends: QEMU appends to a file', 'serial.serverFile');
    return { type: 'file', path: absolutePath(rest, spec) };
  }
  if (kind === 'unix') return { type: 'unix', path: absolutePath(rest, spec), server };
  if (kind === 'tcp') {
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(rest);
    const host = m?.[1] ?? m?.[2];
    const port = Number(m?.[3]);
    const hostOk = host !== undefined && (m?.[1] ? isIP(host) === 6 : isIP(host) === 4 || HOSTNAME.test(host));
    if (!hostOk || !(port >= 1 && port <= 65535)) {
      throw badBackend(
        `invalid serial backend '${spec}': expected tcp:HOST:PORT, a host name or IP address (IPv6 in brackets) and a port from 1 to 65535`,
      );
    }
    return { type: 'tcp', host: host!, port, server };
  }
  throw badBackend(`invalid serial backend '${spec}'`);
}

export interface SerialPortInfo {
  port: number;
  /** The guest's device for it. */
  device: string;
  type: string;
  /** As --backend takes it (file:/…, unix:/…, tcp:HOST:PORT); absent for a kind vms does not make. */
  backend?: string;
  /** QEMU listens (unix and tcp). */
  server?: boolean;
  console: boolean;
  inConfig: boolean;
  live?: boolean;
}

export interface SerialList {
  name: string;
  state: DomainState;
  ports: SerialPortInfo[];
}

/** What tells two ports apart: the same port number with another backend is another port. */
const portKey = (p: SerialFacts) => `${p.port} ${p.backend ? backendSpec(p.backend) : p.type}`;

function portInfo(p: Omit<SerialFacts, 'node'>, inConfig: boolean, live?: boolean): SerialPortInfo {
  const server = p.backend && 'server' in p.backend ? p.backend.server : undefined;
  return {
    port: p.port,
    device: `ttyS${p.port}`,
    type: p.type,
    backend: p.backend && backendSpec(p.backend),
    server,
    console: p.port === CONSOLE_PORT,
    inConfig,
    live,
  };
}

async function readVmPorts(ctx: Context, name: string) {
  const { vm, saved, live, placed } = await loadVmDevices(ctx, name, readSerialPorts, portKey);
  return { state: vm.state, saved, running: live, placed };
}

export async function listSerialPorts(ctx: Context, name: string): Promise<SerialList> {
  const { state, placed } = await readVmPorts(ctx, name);
  const ports = placed.map((p) => portInfo(p.device, p.inConfig, p.live));
  return { name, state, ports: ports.sort((a, b) => a.port - b.port) };
}

export interface SerialChange {
  name: string;
  port: SerialPortInfo;
  /** The running VM still differs from its saved definition in this port until it is started again. */
  pendingRestart: boolean;
}

/** QEMU creates a socket or file in a directory that must be there when the VM starts. */
function checkDirectory(b: SerialBackend): void {
  if (b.type === 'tcp') return;
  const dir = dirname(b.path);
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory())
    throw notFound(`no directory ${dir} for ${backendSpec(b)}`, 'create it first, or give a path in another directory');
  if (statSync(b.path, { throwIfNoEntry: false })?.isDirectory())
    throw usageError(`${b.path} is a directory`, 'name a file in it');
}

const isInside = (path: string, dir: string) => path === dir || path.startsWith(dir.endsWith('/') ? dir : dir + '/');

/**
 * A file port's file is appended to (libvirt opens it, as root, and hands it to QEMU), and a socket port binds or
 * connects: pointed at a VM's disk, base, NVRAM or ISO, the guest's serial output would be written into it, and at a
 * console socket it would take that console over. Refused:
 * - any file a VM uses (exit 4, a conflict with that VM, named as `disk attach` names it): a disk, base, NVRAM, ISO,
 *   kernel, transcript, console or channel socket, another VM's serial file. Sockets of other serial ports are fine as
 *   long as only one side listens: that is how two VMs' ports are linked.
 * - else a path in the images dir or the ISO dir, or one of vms's own files in a VM's directory (exit 2, bad input:
 *   those places hold only images and vms's files, whatever uses them right now).
 */
async function refuseUsedPath(ctx: Context, name: string, b: Extract<SerialBackend, { path: string }>): Promise<void> {
  const hint = `give the port a file of its own, e.g. ${q(join(vmFiles(ctx.config, name).dir, b.type === 'file' ? 'ttyS1.log' : 'ttyS1.sock'))}`;
  const inUse = await filesInUse(ctx);
  const linksTo = (u: FileUse) =>
    b.type === 'unix' &&
    u.role === 'serial' &&
    (u.access === 'listen' || u.access === 'connect') &&
    !(u.access === 'listen' && b.server);
  // Its own ports: the saved ones were compared above; a running one is replaced by this one at the next start.
  const clash = inUse.usesOf(b.path).find((u) => !(u.vm === name && u.role === 'serial' && !u.snapshot) && !linksTo(u));
  if (clash) throw conflict(`${b.path} is in use: it is ${describeUse(clash)}`, hint);
  const real = realPath(b.path);
  for (const [dir, what] of [
    [ctx.config.imagesDir.value, 'images'],
    [ctx.config.isoDir.value, 'ISO'],
  ] as const) {
    if (isInside(real, realPath(dir)))
      throw usageError(`${b.path} is in the ${what} dir ${dir}: a serial port never writes there`, hint);
  }
  const owner = basename(dirname(real));
  const own = ownFiles(vmFiles(ctx.config, owner)).map(realPath);
  if (
    realPath(dirname(dirname(real))) === realPath(ctx.config.stateDir.value) &&
    (own.includes(real) || /\/serial\.log\.\d+$/.test(real))
  ) {
    throw usageError(`${b.path} is one of vms's own files for VM ${owner}`, hint);
  }
  noteUnchecked(ctx, inUse, b.path);
}

/** Where a backend's bytes go, whatever the direction: two ports (or the console) must not share it. */
const endpoint = (b: SerialBackend) => (b.type === 'tcp' ? `tcp ${b.host}:${b.port}` : `path ${b.path}`);

export async function addSerialPort(ctx: Context, name: string, backend: SerialBackend): Promise<SerialChange> {
  return withOperation(ctx, { command: 'serial add', vms: [name], host: true }, async (ctx) => {
    const { state, port } = await ctx.progress.step('Checking input', async () => {
      // Only the saved ports count: the change is for the next start, when the running VM's ports are gone.
      const vm = await readVmPorts(ctx, name);
      const clash = vm.saved.find((p) => p.backend && endpoint(p.backend) === endpoint(backend));
      if (clash)
        throw conflict(
          `${name}'s serial port ${clash.port} already uses ${backendSpec(backend)}`,
          'give another path or port',
        );
      const used = new Set(vm.saved.map((p) => p.port));
      const port = EXTRA_PORTS.find((p) => !used.has(p));
      if (port === undefined)
        throw conflict(
          `${name} has no free serial port: ttyS1 to ttyS${LAST_PORT} are taken`,
          `\`vms serial del ${q(name)} PORT\` frees one`,
        );
      checkDirectory(backend);
      if (backend.type !== 'tcp') await refuseUsedPath(ctx, name, backend);
      return { ...vm, port };
    });
    const pendingRestart = isActive(state);
    await ctx.progress.step(`Adding serial port ${port} to ${name}'s definition`, async () =>
      changeDevice(ctx.virsh, 'attach-device', name, await serialXml(port, backend, chardevOwner(ctx)), {
        live: false,
        config: true,
      }),
    );
    return {
      name,
      port: portInfo({ port, type: backend.type, backend }, true, pendingRestart ? false : undefined),
      pendingRestart,
    };
  });
}

export async function deleteSerialPort(ctx: Context, name: string, portText: string): Promise<SerialChange> {
  return withOperation(ctx, { command: 'serial del', vms: [name] }, async (ctx) => {
    const n = /^\d+$/.test(portText) ? Number(portText) : NaN;
    if (Number.isNaN(n))
      throw usageError(
        `invalid serial port '${portText}'`,
        `give its number as \`vms serial list ${q(name)}\` shows it`,
      );
    if (n === CONSOLE_PORT)
      throw usageError(
        `serial port ${CONSOLE_PORT} is vms's console and stays`,
        `\`vms serial list ${q(name)}\` shows the ports that can go`,
      );
    const vm = await readVmPorts(ctx, name);
    const port = vm.saved.find((p) => p.port === n);
    if (!port)
      throw notFound(
        `${name} has no serial port ${n} in its definition`,
        `\`vms serial list ${q(name)}\` shows its ports`,
      );
    await ctx.progress.step(`Removing serial port ${n} from ${name}'s definition`, async () =>
      changeDevice(ctx.virsh, 'detach-device', name, await detachSerialXml(port), { live: false, config: true }),
    );
    const live = vm.running && vm.running.some((p) => portKey(p) === portKey(port));
    return { name, port: portInfo(port, false, live), pendingRestart: Boolean(live) };
  });
}
