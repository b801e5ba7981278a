import type { Duplex } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { VmsError } from '../errors.js';

// expect(1) over a stream: wait for a pattern in the guest's output, send input. Terminal noise (ANSI escapes,
// carriage returns) is stripped before matching; the raw bytes are kept in the transcript.

// CSI sequences (colours, cursor moves, busybox's ESC[6n), OSC titles, and ESC + one char (ESC 7, ESC c …).
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[^[\]]/g;
// The end of a chunk that may continue in the next one: an unfinished escape sequence, or a CR before its LF.
// eslint-disable-next-line no-control-regex
const UNFINISHED = /\x1b(?:\[[0-9;?]*[ -/]*|\][^\x07\x1b]*)?$|\r$/;

export function cleanTerminalText(text: string): string {
  return (
    text
      .replace(ANSI, '')
      .replace(/\r\n?/g, '\n')
      // eslint-disable-next-line no-control-regex -- control characters are what goes
      .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '')
  );
}

export interface ExpectOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** Written now and again while waiting (e.g. "\r" to make a getty print its prompt again). */
  poke?: { text: string; everyMs: number };
}

export class Expect {
  private pending = ''; // cleaned output not yet consumed by a match
  private carry = ''; // an unfinished sequence held back from the last chunk
  private raw = '';
  private readonly decoder = new StringDecoder('utf8'); // a character split across chunks stays whole
  private closed = false;
  private readonly listeners = new Set<() => void>();

  /** @param tap receives everything as it arrives (a transcript file, -v) */
  constructor(
    private readonly stream: Duplex,
    private readonly tap?: (text: string) => void,
  ) {
    stream.on('data', (chunk: Buffer | string) => {
      const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
      this.raw += text;
      this.tap?.(text);
      let clean = this.carry + text;
      const cut = UNFINISHED.exec(clean);
      this.carry = cut ? clean.slice(cut.index) : '';
      if (cut) clean = clean.slice(0, cut.index);
      this.pending += cleanTerminalText(clean);
      this.notify();
    });
    stream.on('close', () => {
      this.closed = true;
      this.notify();
    });
  }

  private notify() {
    for (const l of [...this.listeners]) l();
  }

  /** Everything received so far, as the guest sent it. */
  get transcript(): string {
    return this.raw;
  }

  /** The last lines of cleaned output, for error messages. */
  tail(lines = 15): string {
    return cleanTerminalText(this.raw).split('\n').slice(-lines).join('\n');
  }

  send(text: string): void {
    this.stream.write(text);
  }

  /**
   * Resolves with the output before the match and the match itself, and consumes both: the next expect only sees
   * what came after. A pattern must not span lines (a match may start with the newline before it): text already
   * scanned is not scanned again, so a long phase that prints megabytes costs linear time, not quadratic.
   */
  expect(pattern: RegExp, opts: ExpectOptions): Promise<{ before: string; match: RegExpExecArray }> {
    if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);
    const scanner = new RegExp(pattern.source, pattern.flags.replace('g', '') + 'g');
    let scanFrom = 0; // the last newline of what was scanned without a match
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        this.listeners.delete(check);
        clearTimeout(timer);
        clearInterval(poker);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      const check = () => {
        scanner.lastIndex = scanFrom;
        const m = scanner.exec(this.pending);
        if (!m) scanFrom = Math.max(scanFrom, this.pending.lastIndexOf('\n'));
        if (m) {
          cleanup();
          const before = this.pending.slice(0, m.index);
          this.pending = this.pending.slice(m.index + m[0].length);
          resolve({ before, match: m });
        } else if (this.closed) {
          cleanup();
          reject(
            new VmsError(
              'failed',
              'the console closed: the VM stopped (powered off, rebooted into nothing, or crashed) or libvirt closed it',
              'see its last lines below, and `vms info` for its state',
              this.tail(),
            ),
          );
        }
      };
      const onAbort = () => {
        cleanup();
        reject(opts.signal!.reason ?? new Error('aborted'));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new VmsError(
            'timeout',
            `no ${pattern} on the console within ${Math.round(opts.timeoutMs / 1000)}s`,
            undefined,
            this.tail(),
          ),
        );
      }, opts.timeoutMs);
      const poker = opts.poke ? setInterval(() => this.send(opts.poke!.text), opts.poke.everyMs) : undefined;
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.listeners.add(check);
      if (opts.poke) this.send(opts.poke.text);
      check();
    });
  }
}
