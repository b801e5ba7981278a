// Shared by the serial-console and the install/apply tests (not a test file itself).
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// A fake guest on a unix socket, as libvirt exposes a serial console: a getty, then a shell that echoes what is
// typed (like a terminal) and evaluates SerialSession's marker line the way sh would.

const COMMANDS: Record<string, [output: string, status: number]> = {
  'uname -r': ['6.6.1-tiny\r\n', 0],
  false: ['', 1],
  'cat /nope': ["cat: can't open '/nope': No such file or directory\r\n", 1],
  'ls /': ['\x1b[1;34mbin\x1b[0m  \x1b[1;34metc\x1b[0m\r\nREADME\r\n', 0],
};
export const MARKED = /^echo __VMS_B''EGIN_(\w+); (.*); echo __VMS_E''ND_\1=\$\?$/;

export interface Guest {
  path: string;
  lines: string[];
  /** Everything typed at the guest, control characters included. */
  received: () => string;
  /** How many clients are connected now (a session vms did not close stays connected). */
  connected: () => number;
  stop(): Promise<void>;
}

/** How the fake shell runs a marked command: it writes the markers (begin/end below) and the output itself. */
export type Shell = (command: string, id: string, write: (text: string) => void) => void;
export const begin = (id: string) => `__VMS_BEGIN_${id}\r\n`;
export const end = (id: string, status: number) => `__VMS_END_${id}=${status}\r\n# `;

/** The default shell: the COMMANDS table, answered 30 ms after the echo. */
export const tableShell: Shell = (command, id, write) => {
  const [output, status] = COMMANDS[command] ?? [`sh: ${command}: not found\r\n`, 127];
  setTimeout(() => write(`${begin(id)}${output}${end(id, status)}`), 30);
};

export function startGuest(
  opts: {
    password?: string;
    loggedIn?: boolean;
    listenAfterMs?: number;
    shell?: Shell;
    /** Where to listen (a VM's serial.sock); default a socket in a temp dir of its own, removed on stop. */
    path?: string;
    /** A line typed that is not a marked command (poweroff, reboot): true when handled. */
    raw?: (line: string, write: (text: string) => void) => boolean;
  } = {},
): Promise<Guest> {
  const dir = opts.path ? undefined : mkdtempSync(join(tmpdir(), 'vms-serial-'));
  const path = opts.path ?? join(dir!, 'serial.sock');
  const lines: string[] = [];
  let received = '';
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    let state: 'login' | 'password' | 'shell' = opts.loggedIn ? 'shell' : 'login';
    let buffer = '';
    if (!opts.loggedIn) s.write('\r\nArch Linux 6.6.1-tiny (ttyS0)\r\n\r\ntiny login: \x1b[6n');
    const onLine = (line: string) => {
      lines.push(line);
      if (state === 'login') {
        if (line === '') return void s.write('\r\ntiny login: ');
        s.write(`${line}\r\n`);
        if (opts.password !== undefined) {
          state = 'password';
          return void s.write('Password: ');
        }
        state = 'shell';
        return void s.write('\x1b[1;31mroot@tiny\x1b[0m:~# ');
      }
      if (state === 'password') {
        if (line !== opts.password) {
          state = 'login';
          return void s.write('\r\nLogin incorrect\r\ntiny login: ');
        }
        state = 'shell';
        return void s.write('\r\n# ');
      }
      s.write(`${line}\r\n`); // the terminal's echo, in its own chunk
      const m = MARKED.exec(line);
      if (!m && opts.raw?.(line, (text) => void (s.destroyed || s.write(text)))) return;
      if (!m) return void s.write(line === '' ? '# ' : `sh: ${line.split(' ')[0]}: not found\r\n# `);
      (opts.shell ?? tableShell)(m[2]!, m[1]!, (text) => void (s.destroyed || s.write(text)));
    };
    s.on('data', (chunk) => {
      received += chunk.toString();
      buffer += chunk.toString();
      let i: number;
      while ((i = buffer.indexOf('\r')) >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        onLine(line);
      }
    });
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => {
        if (dir) rmSync(dir, { recursive: true, force: true });
        resolve();
      });
    });
  const listen = () => new Promise<void>((resolve) => server.listen(path, resolve));
  if (opts.listenAfterMs) {
    setTimeout(() => void listen(), opts.listenAfterMs);
    return Promise.resolve({ path, lines, received: () => received, connected: () => sockets.size, stop });
  }
  return listen().then(() => ({ path, lines, received: () => received, connected: () => sockets.size, stop }));
}

/**
 * A guest shell that runs pushFile's commands on an in-memory file system: `: >`, `printf %s '…' >>`, and the final
 * base64 -d … && sha256sum. `damage` may spoil a chunk on its way; `failChunk` makes that chunk's write fail.
 */
export function pushShell(
  files: Map<string, Buffer>,
  log: string[],
  opts: { damage?: (chunk: string, i: number) => string; failChunk?: number } = {},
) {
  let chunks = 0;
  const run = (command: string): [output: string, status: number] | undefined => {
    let m: RegExpExecArray | null;
    if ((m = /^: > '([^']+)'$/.exec(command))) {
      files.set(m[1]!, Buffer.alloc(0));
      return ['', 0];
    }
    if ((m = /^printf %s '([A-Za-z0-9+/=]*)' >> '([^']+)'$/.exec(command))) {
      const i = chunks++;
      if (i === opts.failChunk) return ['sh: write error: No space left on device\r\n', 1];
      const chunk = opts.damage ? opts.damage(m[1]!, i) : m[1]!;
      files.set(m[2]!, Buffer.concat([files.get(m[2]!) ?? Buffer.alloc(0), Buffer.from(chunk)]));
      return ['', 0];
    }
    if (
      (m = /^base64 -d '([^']+)' > '([^']+)' && rm -f '\1' && chmod ([0-7]+) '\2' && sha256sum '\2'$/.exec(command))
    ) {
      const data = Buffer.from(files.get(m[1]!)!.toString(), 'base64');
      files.delete(m[1]!);
      files.set(m[2]!, data);
      return [`${createHash('sha256').update(data).digest('hex')}  ${m[2]}\r\n`, 0];
    }
    return undefined;
  };
  return (command: string, id: string, write: (text: string) => void): boolean => {
    const result = run(command);
    if (!result) return false;
    log.push(command);
    setTimeout(() => write(`${begin(id)}${result[0]}${end(id, result[1])}`), 1);
    return true;
  };
}
