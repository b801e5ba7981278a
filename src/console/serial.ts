import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHash, randomBytes } from 'node:crypto';
import { VmsError } from '../errors.js';
import { Expect } from './expect.js';

// A login session on a VM's unix-socket serial console: log in, then run commands whose end is marked by a line
// that carries the exit status, so output and status are read back reliably.

export interface CommandResult {
  output: string;
  exitCode: number;
}

export interface PhasedResult extends CommandResult {
  /** The last phase the command announced (where it failed, when it did). */
  phase?: string;
}

/** base64 characters per line pushed: with the command around them, well under busybox ash's 1024. */
const PUSH_CHUNK = 768;

/**
 * Connecting to the console socket was refused by its permissions. vms gives the socket to the user who made the VM
 * and the libvirt group (see chardevOwner); waiting longer will not change that, so it is said at once.
 */
export const socketDenied = (path: string) =>
  new VmsError(
    'failed',
    `cannot connect to the serial console ${path}: permission denied`,
    'the console belongs to the user who made the VM and the libvirt group: run vms as that user or a member of the group (`vms bootstrap` adds you), or with sudo',
  );

export class SerialSession {
  private constructor(
    private readonly socket: Socket,
    readonly console: Expect,
    private readonly signal?: AbortSignal,
  ) {}

  /** Connects to the socket, waiting for libvirt to create it (it appears when the VM starts). */
  static async open(
    path: string,
    opts: { timeoutMs: number; signal?: AbortSignal; tap?: (text: string) => void },
  ): Promise<SerialSession> {
    const deadline = Date.now() + opts.timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path, () => resolve(s));
          s.once('error', reject);
        });
        return new SerialSession(socket, new Expect(socket, opts.tap), opts.signal);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EACCES') throw socketDenied(path);
        if (Date.now() > deadline)
          throw new VmsError('timeout', `cannot connect to the serial console ${path}: ${(err as Error).message}`);
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
      this.console.expect(re, {
        timeoutMs,
        signal: this.signal,
        poke: poke ? { text: '\r', everyMs: 3000 } : undefined,
      });
    const noPrompt = () =>
      new VmsError(
        'timeout',
        `no login prompt on the console within ${Math.round(opts.timeoutMs / 1000)}s`,
        'the guest may be slow to boot (no KVM?): raise VMS_BOOT_TIMEOUT. Or another `vms console` holds the console (it serves one client at a time): leave it',
        this.console.tail(),
      );
    for (;;) {
      if (Date.now() >= deadline) throw noPrompt();
      const first = await wait(/login: *$|[#$] *$/, deadline - Date.now(), true).catch((err: unknown) => {
        throw err instanceof VmsError && err.code === 'timeout' ? noPrompt() : err;
      });
      if (/login: *$/.test(first.match[0])) break;
      // A "#" may be boot noise cut at a chunk's end ("Linux version … #1 SMP"): believe only a shell that answers.
      if (await this.answers()) return;
    }
    this.console.send(`${opts.user}\r`);
    const next = await wait(/[Pp]assword: *$|[#$] *$/, 30_000);
    if (!/assword/.test(next.match[0])) return;
    this.console.send(`${opts.password ?? ''}\r`);
    // Only a refusal message counts as one: a "Last login:" line may arrive cut after "login:".
    const answer = await wait(/[#$] *$|[Ll]ogin incorrect|[Aa]uthentication failure/, 30_000);
    if (!/[#$]/.test(answer.match[0])) {
      throw new VmsError(
        'failed',
        `the guest refused ${opts.user}'s password on the console`,
        "was the password changed inside the guest? vms keeps the one it set in the VM's directory (root-password)",
      );
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

  /**
   * Makes the shell predictable for a program: bash when the guest has it (archiso logs root into zsh with grml's
   * prompts and corrections), no line editing, no colours, and no kernel messages in the middle of our output.
   */
  async prepare(): Promise<void> {
    this.console.send('command -v bash >/dev/null 2>&1 && exec bash --norc --noprofile --noediting\r');
    await this.run("PS1='[vms]# '; PS2=''; export TERM=dumb; unset PROMPT_COMMAND; dmesg -n 1 2>/dev/null; :", 30_000);
  }

  /**
   * Writes a file in the guest over the console: base64 in chunks small enough for any line editor (busybox ash
   * keeps 1024 characters), then checks its sha256 there.
   */
  async pushFile(path: string, content: string | Buffer, mode = 0o644): Promise<void> {
    if (!/^[\w./-]{1,120}$/.test(path)) throw new Error(`pushFile: unsafe guest path ${path}`); // quoted in the commands below
    const data = Buffer.from(content);
    const b64 = data.toString('base64');
    const part = `${path}.vms-b64`;
    await this.check(`: > '${part}'`, `cannot write ${path} in the guest`);
    for (let i = 0; i < b64.length; i += PUSH_CHUNK) {
      await this.check(`printf %s '${b64.slice(i, i + PUSH_CHUNK)}' >> '${part}'`, `cannot write ${path} in the guest`);
    }
    const mode8 = mode.toString(8);
    const out = await this.check(
      `base64 -d '${part}' > '${path}' && rm -f '${part}' && chmod ${mode8} '${path}' && sha256sum '${path}'`,
      `cannot decode ${path} in the guest`,
    );
    const want = createHash('sha256').update(data).digest('hex');
    if (!out.includes(want))
      throw new VmsError(
        'failed',
        `${path} arrived damaged in the guest (sha256 differs)`,
        'the serial console lost data: try again',
        out.trim(),
      );
  }

  /** run() that fails unless the command succeeds; returns its output. */
  async check(command: string, what: string, timeoutMs?: number): Promise<string> {
    const r = await this.run(command, timeoutMs);
    if (r.exitCode !== 0)
      throw new VmsError(
        'failed',
        `${what} (exit status ${r.exitCode})`,
        undefined,
        r.output.trim().split('\n').slice(-15).join('\n'),
      );
    return r.output;
  }

  /**
   * Runs a long command that reports its phases (`::vms-phase NAME SECONDS` lines, guest/README.md): each phase must
   * end within its own time. On a timeout the command is interrupted (Ctrl-C) so the shell is usable again.
   */
  async runPhased(
    command: string,
    opts: { label: string; firstTimeoutMs: number; onPhase?: (name: string, seconds: number) => void },
  ): Promise<PhasedResult> {
    const id = randomBytes(4).toString('hex');
    this.console.send(`echo __VMS_B''EGIN_${id}; ${command}; echo __VMS_E''ND_${id}=$?\r`);
    await this.console.expect(new RegExp(`__VMS_BEGIN_${id}\n`), { timeoutMs: 30_000, signal: this.signal });
    const next = new RegExp(`(?:^|\n)::vms-phase (\\S+) (\\d+)\n|__VMS_END_${id}=(\\d+)\n`);
    let output = '';
    let phase: string | undefined;
    let timeoutMs = opts.firstTimeoutMs;
    for (;;) {
      let found;
      try {
        found = await this.console.expect(next, { timeoutMs, signal: this.signal });
      } catch (err) {
        if (!(err instanceof VmsError && err.code === 'timeout')) throw err;
        this.console.send('\x03');
        const where = phase ? `phase '${phase}'` : 'its first phase';
        throw new VmsError(
          'timeout',
          `${opts.label} did not finish ${where} within ${Math.round(timeoutMs / 1000)}s`,
          undefined,
          this.console.tail(),
        );
      }
      output += found.before + (found.match[1] ? found.match[0] : '');
      if (found.match[3] !== undefined) return { output, exitCode: Number(found.match[3]), phase };
      phase = found.match[1]!;
      timeoutMs = Number(found.match[2]) * 1000;
      opts.onPhase?.(phase, Number(found.match[2]));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
