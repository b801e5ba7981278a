import { VmsError, isInterrupt, usageError } from '../errors.js';
import type { Virsh } from './virsh.js';

// The QEMU guest agent inside a VM, through `virsh qemu-agent-command`: its QMP commands with typed arguments and
// answers. No agent to talk to (none configured, not connected, not answering in time) is reason agent.unavailable;
// an agent that answers with an error is agent.failed; an answer that breaks the protocol is agent.badReply.
// The agent's protocol: https://qemu.readthedocs.io/en/latest/interop/qemu-ga-ref.html

/** How long libvirt waits for the agent's answer, by default (seconds). */
export const AGENT_TIMEOUT_SECONDS = 2;

/**
 * Bytes a chunk of a file carries. A write's chunk travels in virsh's argv as base64, and one argument may hold at
 * most 128 KiB (MAX_ARG_STRLEN): 64 KiB is 88 KiB of base64. Reads come back on stdout, which has no such limit.
 */
export const WRITE_CHUNK = 64 * 1024;
export const READ_CHUNK = 1024 * 1024;

export interface AgentInfo {
  version: string;
  /** The commands this agent knows, and whether they are enabled (an administrator may disable some). */
  commands: { name: string; enabled: boolean }[];
}

export interface GuestInterface {
  name: string;
  /** Lower case; absent for interfaces without one (sit0, …). */
  mac?: string;
  addresses: { type: 'ipv4' | 'ipv6'; address: string; prefix: number }[];
}

export interface ExecRequest {
  /** The program and its arguments; the program is found on the agent's PATH. */
  argv: readonly string[];
  /** NAME=value entries, the whole environment of the program. */
  env?: readonly string[];
  /** Written to its stdin (then closed). */
  input?: string | Buffer;
}

export interface ExecStatus {
  exited: boolean;
  exitCode?: number;
  /** The signal that ended it. */
  signal?: number;
  stdout: Buffer;
  stderr: Buffer;
  /** The agent keeps at most 16 MiB of each: more was cut off. */
  truncated: boolean;
}

export interface OsInfo {
  id?: string;
  name?: string;
  prettyName?: string;
  version?: string;
  versionId?: string;
  kernelRelease?: string;
  kernelVersion?: string;
  machine?: string;
}

export type FreezeStatus = 'thawed' | 'frozen';

/* eslint-disable @typescript-eslint/no-explicit-any */

const badReply = (command: string, why: string) =>
  new VmsError(
    'failed',
    `the guest agent's answer to ${command} is not understood: ${why}`,
    undefined,
    undefined,
    'agent.badReply',
  );

/** The `return` member of the agent's answer (QMP: `{"return": …}`; an `{"error": …}` virsh reports itself). */
export function agentReturn(command: string, json: string): any {
  let reply: any;
  try {
    reply = JSON.parse(json);
  } catch {
    throw badReply(command, 'not JSON');
  }
  if (reply === null || typeof reply !== 'object' || !('return' in reply)) throw badReply(command, 'no "return" in it');
  return reply.return;
}

/** The agent's answer to guest-network-get-interfaces, typed. */
export function parseInterfaces(value: any): GuestInterface[] {
  if (!Array.isArray(value)) throw badReply('guest-network-get-interfaces', 'not a list');
  return value
    .filter((i) => typeof i?.name === 'string')
    .map((i) => ({
      name: i.name,
      ...(typeof i['hardware-address'] === 'string' && { mac: i['hardware-address'].toLowerCase() }),
      addresses: (Array.isArray(i['ip-addresses']) ? i['ip-addresses'] : []).map((a: any) => ({
        type: a['ip-address-type'],
        address: a['ip-address'],
        prefix: a.prefix,
      })),
    }));
}

const decode = (b64: unknown) => Buffer.from(typeof b64 === 'string' ? b64 : '', 'base64');
const encode = (data: string | Buffer) => Buffer.from(data).toString('base64');

/** A guest agent of one VM. `timeoutSeconds` of each call: how long libvirt waits for the agent's answer. */
export class GuestAgent {
  constructor(
    private readonly virsh: Virsh,
    readonly vm: string,
  ) {}

  /** One command; `args` become its "arguments". */
  async call(command: string, args?: Record<string, unknown>, timeoutSeconds = AGENT_TIMEOUT_SECONDS): Promise<any> {
    const json = JSON.stringify(args === undefined ? { execute: command } : { execute: command, arguments: args });
    let out: string;
    try {
      out = await this.virsh.agentCommand(this.vm, json, timeoutSeconds);
    } catch (err) {
      // virsh itself hung past libvirt's own wait: no agent to talk to, as far as vms can tell.
      if (!(err instanceof VmsError && err.code === 'timeout' && !err.reason)) throw err;
      const message = `the guest agent of ${this.vm} did not answer ${command}`;
      throw new VmsError('timeout', message, undefined, undefined, 'agent.unavailable');
    }
    return agentReturn(command, out);
  }

  async ping(timeoutSeconds?: number): Promise<void> {
    await this.call('guest-ping', undefined, timeoutSeconds);
  }

  /** True when an agent answers; false when there is none to (any failure but an interrupt). */
  async answers(timeoutSeconds?: number): Promise<boolean> {
    return this.ping(timeoutSeconds).then(
      () => true,
      (err: unknown) => {
        if (isInterrupt(err)) throw err;
        return false;
      },
    );
  }

  async info(timeoutSeconds?: number): Promise<AgentInfo> {
    const r = await this.call('guest-info', undefined, timeoutSeconds);
    const list: any[] = Array.isArray(r?.supported_commands) ? r.supported_commands : [];
    const commands = list.map((c) => ({ name: String(c.name), enabled: Boolean(c.enabled) }));
    return { version: String(r?.version ?? ''), commands };
  }

  async networkInterfaces(timeoutSeconds?: number): Promise<GuestInterface[]> {
    return parseInterfaces(await this.call('guest-network-get-interfaces', undefined, timeoutSeconds));
  }

  async osInfo(timeoutSeconds?: number): Promise<OsInfo> {
    const r = (await this.call('guest-get-osinfo', undefined, timeoutSeconds)) ?? {};
    return {
      id: r.id,
      name: r.name,
      prettyName: r['pretty-name'],
      version: r.version,
      versionId: r['version-id'],
      kernelRelease: r['kernel-release'],
      kernelVersion: r['kernel-version'],
      machine: r.machine,
    };
  }

  /** Starts a program in the guest with its output captured; returns its pid (see execStatus). */
  async exec(req: ExecRequest, timeoutSeconds?: number): Promise<number> {
    if (req.argv.length === 0) throw usageError('no program to run in the guest');
    const input =
      req.input === undefined ? undefined : typeof req.input === 'string' ? Buffer.from(req.input) : req.input;
    if (input && input.length > WRITE_CHUNK) {
      throw usageError(
        `the input of a guest program may hold ${WRITE_CHUNK / 1024} KiB`,
        'write it to a file in the guest',
      );
    }
    const r = await this.call(
      'guest-exec',
      {
        path: req.argv[0],
        arg: req.argv.slice(1),
        ...(req.env && { env: req.env }),
        ...(input && { 'input-data': input.toString('base64') }),
        'capture-output': true,
      },
      timeoutSeconds,
    );
    if (typeof r?.pid !== 'number') throw badReply('guest-exec', 'no pid');
    return r.pid;
  }

  /** Where the program of `exec` is: still running, or exited with its output (decoded). */
  async execStatus(pid: number, timeoutSeconds?: number): Promise<ExecStatus> {
    const r = await this.call('guest-exec-status', { pid }, timeoutSeconds);
    if (typeof r?.exited !== 'boolean') throw badReply('guest-exec-status', 'no "exited"');
    return {
      exited: r.exited,
      ...(typeof r.exitcode === 'number' && { exitCode: r.exitcode }),
      ...(typeof r.signal === 'number' && { signal: r.signal }),
      stdout: decode(r['out-data']),
      stderr: decode(r['err-data']),
      truncated: Boolean(r['out-truncated'] || r['err-truncated']),
    };
  }

  /** Opens a file in the guest (fopen modes: r, w, a, r+ …); returns its handle. */
  async openFile(path: string, mode: string, timeoutSeconds?: number): Promise<number> {
    const handle = await this.call('guest-file-open', { path, mode }, timeoutSeconds);
    if (typeof handle !== 'number') throw badReply('guest-file-open', 'no handle');
    return handle;
  }

  /** Reads up to `count` bytes; eof once the file has no more. */
  async readChunk(
    handle: number,
    count = READ_CHUNK,
    timeoutSeconds?: number,
  ): Promise<{ data: Buffer; eof: boolean }> {
    const r = await this.call('guest-file-read', { handle, count }, timeoutSeconds);
    if (typeof r?.['buf-b64'] !== 'string') throw badReply('guest-file-read', 'no data');
    return { data: decode(r['buf-b64']), eof: Boolean(r.eof) };
  }

  /** Writes one chunk (at most WRITE_CHUNK bytes); returns how many bytes the guest wrote. */
  async writeChunk(handle: number, data: Buffer, timeoutSeconds?: number): Promise<number> {
    if (data.length > WRITE_CHUNK) throw new RangeError(`a chunk holds at most ${WRITE_CHUNK} bytes`);
    const r = await this.call('guest-file-write', { handle, 'buf-b64': encode(data) }, timeoutSeconds);
    if (typeof r?.count !== 'number') throw badReply('guest-file-write', 'no count');
    return r.count;
  }

  async closeFile(handle: number, timeoutSeconds?: number): Promise<void> {
    await this.call('guest-file-close', { handle }, timeoutSeconds);
  }

  /** A whole guest file, read in chunks. */
  async readFile(path: string, timeoutSeconds?: number): Promise<Buffer> {
    const handle = await this.openFile(path, 'r', timeoutSeconds);
    try {
      const chunks: Buffer[] = [];
      for (;;) {
        const { data, eof } = await this.readChunk(handle, READ_CHUNK, timeoutSeconds);
        chunks.push(data);
        if (eof || data.length === 0) return Buffer.concat(chunks);
      }
    } finally {
      await this.closeFile(handle, timeoutSeconds);
    }
  }

  /** Writes a whole guest file (created or truncated), in chunks. */
  async writeFile(path: string, data: string | Buffer, timeoutSeconds?: number): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    const handle = await this.openFile(path, 'w', timeoutSeconds);
    try {
      for (let at = 0; at < bytes.length;) {
        const written = await this.writeChunk(handle, bytes.subarray(at, at + WRITE_CHUNK), timeoutSeconds);
        if (written <= 0) throw badReply('guest-file-write', 'nothing written');
        at += written;
      }
    } finally {
      await this.closeFile(handle, timeoutSeconds);
    }
  }

  /** Freezes the guest's filesystems (for a consistent snapshot); returns how many it froze. */
  async freeze(timeoutSeconds?: number): Promise<number> {
    return Number(await this.call('guest-fsfreeze-freeze', undefined, timeoutSeconds));
  }

  /** Thaws them again; returns how many it thawed. */
  async thaw(timeoutSeconds?: number): Promise<number> {
    return Number(await this.call('guest-fsfreeze-thaw', undefined, timeoutSeconds));
  }

  async freezeStatus(timeoutSeconds?: number): Promise<FreezeStatus> {
    const status = await this.call('guest-fsfreeze-status', undefined, timeoutSeconds);
    if (status !== 'thawed' && status !== 'frozen') throw badReply('guest-fsfreeze-status', `'${status}'`);
    return status;
  }

  /** Sets a guest user's password; `crypted`: it is a crypt(3) hash already. */
  async setUserPassword(user: string, password: string, crypted: boolean, timeoutSeconds?: number): Promise<void> {
    await this.call('guest-set-user-password', { username: user, password: encode(password), crypted }, timeoutSeconds);
  }
}
