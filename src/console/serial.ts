import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { VmsError } from '../errors.js';
import { Expect } from './expect.js';

// A login session on a VM's unix-socket serial console: log in, then run commands whose end is marked by a line
// that carries the exit status, so output and status are read back reliably.

export interface CommandResult {
  output: string;
  exitCode: number;
}

export class SerialSession {
  private constructor(
    private readonly socket: Socket,
    readonly console: Expect,
    private readonly signal?: AbortSignal,
  ) {}

  /** Connects to the socket, waiting for libvirt to create it (it appears when the VM starts). */
  static async open(path: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<SerialSession> {
    const deadline = Date.now() + opts.timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path, () => resolve(s));
          s.once('error', reject);
        });
        return new SerialSession(socket, new Expect(socket), opts.signal);
      } catch (err) {
        if (Date.now() > deadline) throw new VmsError('timeout', `cannot connect to the serial console ${path}: ${(err as Error).message}`);
        opts.signal?.throwIfAborted();
        await sleep(200);
      }
    }
  }

  /**
   * Logs in at a getty (`login:`), or takes an already open shell. Output sent before we connected is lost, so
   * Enter is pressed now and again until a prompt shows.
   */
  async login(opts: { user: string; password?: string; timeoutMs: number }): Promise<void> {
    const deadline = Date.now() + opts.timeoutMs;
    const wait = (re: RegExp, timeoutMs: number, poke?: boolean) =>
      this.console.expect(re, { timeoutMs, signal: this.signal, poke: poke ? { text: '\r', everyMs: 3000 } : undefined });
    for (;;) {
      if (Date.now() >= deadline) throw new VmsError('timeout', `no login prompt on the console within ${Math.round(opts.timeoutMs / 1000)}s`, undefined, this.console.tail());
      const first = await wait(/login: *$|[#$] *$/, deadline - Date.now(), true);
      if (/login: *$/.test(first.match[0])) break;
      // A "#" may be boot noise cut at a chunk's end ("Linux version … #1 SMP"): believe only a shell that answers.
      if (await this.answers()) return;
    }
    this.console.send(`${opts.user}\r`);
    const next = await wait(/[Pp]assword: *$|[#$] *$/, 30_000);
    if (/assword/.test(next.match[0])) {
      this.console.send(`${opts.password ?? ''}\r`);
      await wait(/[#$] *$/, 30_000);
    }
  }

  /** True when a shell runs a command (the ":" builtin) and reports back through the markers. */
  private async answers(): Promise<boolean> {
    try {
      await this.run(':', 5_000);
      return true;
    } catch (err) {
      if (err instanceof VmsError && err.code === 'timeout') return false;
      throw err;
    }
  }

  /** Runs a shell command line; resolves with its output (echo removed) and exit status. */
  async run(command: string, timeoutMs = 60_000): Promise<CommandResult> {
    const id = randomBytes(4).toString('hex');
    // The markers are split by quotes in what we type, so the terminal's echo of the line never matches them.
    this.console.send(`echo __VMS_B''EGIN_${id}; ${command}; echo __VMS_E''ND_${id}=$?\r`);
    const opts = { timeoutMs, signal: this.signal };
    await this.console.expect(new RegExp(`__VMS_BEGIN_${id}\\n`), opts);
    const { before, match } = await this.console.expect(new RegExp(`__VMS_END_${id}=(\\d+)\\n`), opts);
    return { output: before, exitCode: Number(match[1]) };
  }

  close(): void {
    this.socket.destroy();
  }
}
