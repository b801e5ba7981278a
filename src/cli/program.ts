import { Command } from 'commander';
import { processCli, useCli, type Cli } from './app.js';
import { register as apply } from './commands/apply.js';
import { register as attach } from './commands/attach.js';
import { register as bootstrap } from './commands/bootstrap.js';
import { register as clone } from './commands/clone.js';
import { register as config } from './commands/config.js';
import { register as create } from './commands/create.js';
import { register as destroy } from './commands/destroy.js';
import { register as disk } from './commands/disk.js';
import { register as doctor } from './commands/doctor.js';
import { register as gc } from './commands/gc.js';
import { register as info } from './commands/info.js';
import { register as iso } from './commands/iso.js';
import { register as list } from './commands/list.js';
import { register as mount } from './commands/mount.js';
import { register as nic } from './commands/nic.js';
import { register as pool } from './commands/pool.js';
import { register as power } from './commands/power.js';
import { register as repair } from './commands/repair.js';
import { register as serial } from './commands/serial.js';
import { register as set } from './commands/set.js';
import { register as snapshot } from './commands/snapshot.js';

export function run(argv: string[], version: string): Promise<Command> {
  return buildProgram(version, processCli()).parseAsync(argv);
}

/** The whole program on `cli`'s streams and environment (a test passes its own: test/helpers/test-io.ts). */
export function buildProgram(version: string, cli: Cli): Command {
  const program = new Command('vms')
    .description('small, isolated Arch Linux VMs on libvirt/QEMU')
    .version(version)
    .option('-c, --connect <uri>', 'libvirt URI (default: $LIBVIRT_DEFAULT_URI, else qemu:///system)')
    .option('--json', 'machine-readable output on stdout')
    .option('-v, --verbose', 'show every command run and its output')
    .option('--events <file>', 'append every progress event to FILE, one JSON object a line')
    .showHelpAfterError('(run `vms --help` for usage)')
    .configureOutput({
      writeOut: (text) => cli.io.stdout.write(text),
      writeErr: (text) => cli.io.stderr.write(text),
      outputError: (text, write) => write(text),
    });
  useCli(program, cli);

  // commander's own usage errors (unknown option, missing argument) exit with our usage code.
  program.exitOverride((err) => cli.exit(err.exitCode === 0 ? 0 : 2));

  const commands = [
    bootstrap,
    create,
    apply,
    list,
    info,
    power,
    set,
    attach,
    clone,
    destroy,
    gc,
    disk,
    nic,
    serial,
    pool,
    snapshot,
    mount,
    config,
    doctor,
    repair,
    iso,
  ];
  for (const register of commands) register(program);
  return program;
}
