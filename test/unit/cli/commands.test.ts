import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { terminalPrompter } from '../../../src/cli/io.js';
import { FakeRunner } from '../../helpers/fake-runner.js';
import { runCli, testIo } from '../../helpers/test-io.js';
import { virshCall } from '../../helpers/virsh-fake.js';

// Commands run in process through test/helpers/test-io.ts: their streams, terminal and answers are the test's.

test('destroy without --yes and without a terminal refuses before anything happens (exit 2, no process started)', async () => {
  const runner = new FakeRunner([]);
  const r = await runCli(['destroy', 'vm'], { runner });
  assert.equal(r.exitCode, 2);
  assert.equal(
    r.stderr,
    'error: refusing to destroy vm without confirmation\nhint: add --yes (no terminal to ask on)\n',
  );
  assert.equal(r.stdout, '');
  assert.deepEqual(r.asked, []);
  runner.done();
});

test('--json: an error is one JSON object on stdout, nothing on stderr', async () => {
  const runner = new FakeRunner([]);
  const r = await runCli(['--json', 'destroy', 'vm'], { runner });
  assert.equal(r.exitCode, 2);
  assert.equal(r.stderr, '');
  assert.deepEqual(JSON.parse(r.stdout), {
    error: {
      code: 'usage',
      message: 'refusing to destroy vm without confirmation',
      hint: 'add --yes (no terminal to ask on)',
      exitCode: 2,
    },
  });
  runner.done();
});

const DOMAIN = `<domain type='qemu'>
  <name>vm</name>
  <uuid>0cb755d1-92e2-4a6d-b88c-c4582ce962d7</uuid>
  <memory unit='KiB'>262144</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/i/vm.qcow2'/><target dev='vda' bus='virtio'/></disk>
  </devices>
</domain>`;
const SNAPSHOT = `<domainsnapshot>
  <name>s1</name>
  <state>running</state>
  <creationTime>1795325896</creationTime>
  <memory snapshot='internal'/>
  <disks><disk name='vda' snapshot='internal'/></disks>
</domainsnapshot>`;

test('snapshot revert on a terminal: the plan is shown, "no" changes nothing (exit 4)', async () => {
  const runner = new FakeRunner([
    virshCall(['dumpxml', 'vm', '--inactive', '--security-info'], DOMAIN),
    virshCall(['domstate', 'vm'], 'running\n\n'),
    virshCall(['snapshot-dumpxml', 'vm', 's1'], SNAPSHOT),
  ]); // and nothing after the answer: no revert
  const r = await runCli(['snapshot', 'revert', 'vm', 's1'], { runner, tty: true, answers: [false] });
  assert.equal(r.exitCode, 4);
  assert.deepEqual(r.asked, ['Revert?']);
  assert.match(r.stderr, /^This reverts vm \(running\) to snapshot s1, taken .* \(running\)\.\n/);
  assert.match(r.stderr, /Its present state \(its disks and memory\) is lost/);
  assert.match(r.stderr, /\nerror: not reverted\nhint: nothing was changed\n$/);
  assert.equal(r.stdout, '');
  runner.done();
});

test("--json: the result is the command's data as JSON; without it, the human text (both from the command's env)", async () => {
  const env = { VMS_CONFIG: '/nonexistent/vms.json', VMS_MEMORY: '3G' };
  const json = await runCli(['--json', 'config'], { runner: new FakeRunner([]), env });
  assert.equal(json.exitCode, 0);
  const data = JSON.parse(json.stdout) as {
    file: string;
    settings: Record<string, { value: unknown; source: string }>;
  };
  assert.equal(data.file, '/nonexistent/vms.json');
  assert.deepEqual(data.settings.memory, { value: 3 * 1024 ** 3, source: 'env VMS_MEMORY' });
  assert.equal(json.stderr, '');
  const human = await runCli(['config'], { runner: new FakeRunner([]), env });
  assert.match(human.stdout, /^memory\s+3G\s+env VMS_MEMORY$/m);
  assert.match(human.stdout, /\n\nconfig file: \/nonexistent\/vms\.json\n$/);
});

test("commander's usage errors exit 2 in process, on the program's stderr", async () => {
  const r = await runCli(['destroy'], { runner: new FakeRunner([]) });
  assert.equal(r.exitCode, 2);
  assert.match(r.stderr, /missing required argument 'name'/);
});

test('the terminal prompter asks on stderr and takes only y or yes', async () => {
  for (const [typed, answer] of [
    ['y\n', true],
    ['YES\n', true],
    ['\n', false],
    ['n\n', false],
    ['yep\n', false],
  ] as const) {
    const t = testIo({ tty: true });
    const stdin = new PassThrough();
    const asking = terminalPrompter({ ...t.io, stdin: stdin as unknown as NodeJS.ReadStream }).confirm('Destroy it?');
    stdin.end(typed);
    assert.equal(await asking, answer, JSON.stringify(typed));
    assert.equal(t.stderr(), 'Destroy it? [y/N] ');
    assert.equal(t.stdout(), '');
  }
});
