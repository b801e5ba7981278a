import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeRunner } from '../../helpers/fake-runner.js';
import { runCli } from '../../helpers/test-io.js';

// Every command that takes an existing VM refuses a name that is not a VM name before anything runs: exit 2, the
// one-line error and its hint, and not one process started (the strict fake runner has no answer for any).

const BAD = '../x';
const ERROR = `error: invalid VM name '${BAD}'\nhint: use 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit (no "..")\n`;

const COMMANDS: string[][] = [
  ['info', BAD],
  ['start', BAD],
  ['stop', BAD],
  ['kill', BAD],
  ['reset', BAD],
  ['suspend', BAD],
  ['resume', BAD],
  ['console', BAD],
  ['viewer', BAD],
  ['apply', BAD, 'minimal'],
  ['set', BAD, '--memory', '1G'],
  ['set', 'ok', '--rename', BAD],
  ['clone', BAD, 'new'],
  ['clone', 'src', BAD],
  ['destroy', BAD, '--yes'],
  ['create', BAD, '--resume'],
  ['disk', 'list', BAD],
  ['disk', 'add', BAD, '--size', '1G'],
  ['disk', 'attach', BAD, '/tmp/x.qcow2'],
  ['disk', 'detach', BAD, 'vdb'],
  ['disk', 'resize', BAD, 'vdb', '2G'],
  ['nic', 'list', BAD],
  ['nic', 'add', BAD],
  ['nic', 'del', BAD, '1'],
  ['serial', 'list', BAD],
  ['serial', 'add', BAD, '--backend', 'file:/tmp/s.log'],
  ['serial', 'del', BAD, '1'],
  ['snapshot', 'create', BAD],
  ['snapshot', 'list', BAD],
  ['snapshot', 'revert', BAD, 's1', '--yes'],
  ['snapshot', 'delete', BAD, 's1'],
  ['mount', BAD, '/tmp', '/mnt'],
  ['umount', BAD, '/mnt'],
];

for (const args of COMMANDS) {
  test(`vms ${args.join(' ')}: exit 2 before any process runs`, async () => {
    const runner = new FakeRunner([]);
    const r = await runCli(args, { runner });
    assert.deepEqual([r.exitCode, r.stderr, r.stdout], [2, ERROR, '']);
    runner.done();
  });
}
