import type { Command } from 'commander';
import {
  addSerialPort,
  deleteSerialPort,
  listSerialPorts,
  parseBackend,
  type SerialChange,
  type SerialList,
  type SerialPortInfo,
} from '../../core/devices/serial-port.js';
import { action } from '../app.js';
import { placeNote } from '../device-view.js';
import { table } from '../format.js';

const backend = (p: SerialPortInfo) => `${p.backend ?? p.type}${p.server ? ' (server)' : ''}`;

function renderList(list: SerialList): string {
  const rows = list.ports.map((p) => [
    String(p.port),
    p.device,
    backend(p),
    [p.console ? 'vms console' : '', placeNote(p)].filter(Boolean).join(', '),
  ]);
  return table(['PORT', 'GUEST', 'BACKEND', ''], rows);
}

const pendingNote = (c: SerialChange, what: string) =>
  c.pendingRestart ? `\nnote: ${c.name} is running: ${what}` : '';

export function register(program: Command): void {
  const serial = program
    .command('serial')
    .description('extra serial ports (ttyS1-ttyS3) to a file or a socket on the host');

  serial
    .command('add')
    .description("add a serial port to the VM's config (a running VM gets it at its next start)")
    .argument('<name>', 'VM name')
    .requiredOption('--backend <spec>', 'file:PATH (appended), unix:PATH or tcp:HOST:PORT')
    .option('--server', 'QEMU listens on the unix or tcp socket (else it connects to it)')
    .action(
      action<{ backend: string; server?: boolean }>(async ({ ctx, opts }, name) => ({
        data: await addSerialPort(ctx, name!, parseBackend(opts.backend, Boolean(opts.server))),
        human: (c: SerialChange) =>
          `added serial port ${c.port.port} to ${c.name}: ${backend(c.port)}, ${c.port.device} in the guest` +
          pendingNote(
            c,
            `${c.port.device} appears at its next start (QEMU cannot plug a serial port into a running VM)`,
          ),
      })),
    );

  serial
    .command('del')
    .description("remove a serial port from the VM's config (port 0, vms's console, stays)")
    .argument('<name>', 'VM name')
    .argument('<port>', 'its number in `vms serial list`')
    .action(
      action(async ({ ctx }, name, port) => ({
        data: await deleteSerialPort(ctx, name!, port!),
        human: (c: SerialChange) =>
          `removed serial port ${c.port.port} (${backend(c.port)}) from ${c.name}'s config` +
          pendingNote(c, `${c.port.device} stays in the running VM until it stops`),
      })),
    );

  serial
    .command('list')
    .description("a VM's serial ports: port, the guest's device, backend, and which one is vms's console")
    .argument('<name>', 'VM name')
    .action(action(async ({ ctx }, name) => ({ data: await listSerialPorts(ctx, name!), human: renderList })));
}
