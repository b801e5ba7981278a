import { connect } from 'node:net';
import { VmsError } from '../errors.js';
import { socketDenied } from './serial.js';

// `vms console`: bridges the user's terminal to the VM's unix-socket serial console (virsh console only serves pty
// consoles). Ctrl-] leaves, as in virsh console and telnet.

const ESCAPE = 0x1d; // Ctrl-]

export interface Terminal {
  input: NodeJS.ReadStream;
  output: NodeJS.WriteStream;
}

export function attachTerminal(socketPath: string, term: Terminal, banner: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const { input, output } = term;
    let attached = false;
    const finish = (err?: Error) => {
      if (attached) {
        input.setRawMode(false);
        input.pause();
        input.off('data', onInput);
        output.write('\r\n');
      }
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    const onInput = (data: Buffer) => {
      const i = data.indexOf(ESCAPE);
      if (i < 0) return void socket.write(data);
      if (i > 0) socket.write(data.subarray(0, i));
      finish();
    };
    socket.once('connect', () => {
      attached = true;
      output.write(`${banner}\r\nEscape character is ^] (Ctrl + ])\r\n`);
      input.setRawMode(true);
      input.resume();
      input.on('data', onInput);
      socket.write('\r'); // what the guest printed before we connected is gone: ask for a fresh prompt
    });
    socket.on('data', (d) => output.write(d));
    socket.once('close', () => finish());
    socket.once('error', (err: NodeJS.ErrnoException) =>
      finish(
        err.code === 'EACCES'
          ? socketDenied(socketPath)
          : new VmsError(
              'conflict',
              `cannot open the serial console ${socketPath}: ${err.code ?? err.message}`,
              'is the VM running?',
            ),
      ),
    );
  });
}
