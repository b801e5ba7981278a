import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { templateSource } from '../../../src/bundled.js';
import { createContext } from '../../../src/core/context.js';
import { applyBootstrap, defaultNetworkXmlPath, type BootstrapStep } from '../../../src/core/host/bootstrap.js';
import { resolveConfig } from '../../../src/config.js';
import { VmsError } from '../../../src/errors.js';
import { defaultNetworkLines as net } from '../../../src/libvirt/virsh.js';
import type { RunResult } from '../../../src/runner.js';
import type { Expected } from '../../helpers/fake-runner.js';
import { RecordingRunner } from '../../helpers/recording-runner.js';
import { recordingProgress } from '../../helpers/vm-fake.js';

// applyBootstrap runs a plan's commands: a sudo line on the terminal, any other through the runner with a signal
// (none for the package manager) and a long timeout; net-define / net-start only when the network is not so already.

const tmp = mkdtempSync(join(tmpdir(), 'vms-bootstrap-apply-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
/** A host whose libvirt ships no default network: vms writes its own copy into a private dir of its own. */
const NOT_SHIPPED = join(tmp, 'not-shipped.xml');
const OWN = defaultNetworkXmlPath(NOT_SHIPPED);

const result = (stdout: string, exitCode = 0, stderr = ''): Partial<RunResult> => ({ stdout, stderr, exitCode });
const netInfo = (active: 'yes' | 'no') =>
  result(`Name:           default\nActive:         ${active}\nAutostart:      no\n`);
const NO_NETWORK = result('', 1, "error: failed to get network 'default'\nerror: Network not found\n");
const INFO = ['-c', 'qemu:///system', 'net-info', 'default'];
const LONG = 30 * 60_000;

function setUp(calls: Expected[], signal?: AbortSignal) {
  const runner = new RecordingRunner(calls);
  const recorded = recordingProgress();
  const config = resolveConfig({ env: { VMS_IMAGES_DIR: join(tmp, 'images'), VMS_STATE_DIR: join(tmp, 'state') } });
  const ctx = createContext({ config, runner, progress: recorded.progress, signal });
  return { ctx, runner, ...recorded };
}

/** vms' own network file, as a command finds it while it runs: the template, in a dir only we may read. */
function ownFileIsThere(): true {
  assert.equal(readFileSync(OWN, 'utf8'), templateSource('default-network.xml'));
  assert.equal(statSync(dirname(OWN)).mode & 0o777, 0o700);
  return true;
}

test('as root: each command through the runner, in order, said before it runs; own network file only meanwhile', async () => {
  const aborter = new AbortController();
  const steps: BootstrapStep[] = [
    {
      name: 'packages',
      summary: 'install libvirt',
      commands: [['pacman', '-S', '--needed', '--noconfirm', 'libvirt']],
    },
    { name: 'daemons', summary: 'libvirtd is running: left alone', commands: [] },
    {
      name: 'network',
      summary: 'define the default NAT network',
      commands: [net.define(OWN), net.autostart(), net.start()],
    },
  ];
  const {
    ctx,
    runner,
    steps: titles,
    notes,
  } = setUp(
    [
      { cmd: 'pacman', args: ['-S', '--needed', '--noconfirm', 'libvirt'] },
      { cmd: 'virsh', args: INFO, result: NO_NETWORK },
      { cmd: 'virsh', args: (a) => a.join(' ') === `-c qemu:///system net-define ${OWN}` && ownFileIsThere() },
      { cmd: 'virsh', args: ['-c', 'qemu:///system', 'net-autostart', 'default'] },
      // defined (by the line before) but not active: net-start runs
      { cmd: 'virsh', args: INFO, result: netInfo('no') },
      { cmd: 'virsh', args: ['-c', 'qemu:///system', 'net-start', 'default'] },
    ],
    aborter.signal,
  );
  await applyBootstrap(ctx, steps, NOT_SHIPPED);
  runner.done();
  assert.deepEqual(titles, ['packages: install libvirt', 'network: define the default NAT network']);
  assert.deepEqual(notes, [
    '$ pacman -S --needed --noconfirm libvirt',
    `$ virsh -c qemu:///system net-define ${OWN}`,
    '$ virsh -c qemu:///system net-autostart default',
    '$ virsh -c qemu:///system net-start default',
  ]);
  const signal = aborter.signal;
  assert.deepEqual(
    runner.log.map((c) => [c.how, c.args.at(-2), c.opts]),
    [
      // a package manager is never interrupted mid-transaction: no signal
      ['run', '--noconfirm', { signal: undefined, timeoutMs: LONG }],
      ['run', 'net-info', { signal }],
      ['run', 'net-define', { signal, timeoutMs: LONG }],
      ['run', 'net-autostart', { signal, timeoutMs: LONG }],
      ['run', 'net-info', { signal }],
      ['run', 'net-start', { signal, timeoutMs: LONG }],
    ],
  );
  assert.ok(!existsSync(dirname(OWN)), 'its private dir is removed');
});

test('as a user: sudo lines on the terminal; a network that is defined / active already is left alone', async () => {
  const shipped = join(tmp, 'shipped', 'default.xml');
  mkdirSync(dirname(shipped));
  writeFileSync(shipped, '<network/>');
  const sudoVirsh = ['sudo', 'virsh', '-c', 'qemu:///system'];
  const steps: BootstrapStep[] = [
    {
      name: 'group',
      summary: 'add alice to the libvirt group',
      commands: [['sudo', 'usermod', '-aG', 'libvirt', 'alice']],
    },
    {
      name: 'network',
      summary: 'set up',
      commands: [
        ['sudo', ...net.define(shipped)],
        ['sudo', ...net.start()],
      ],
    },
  ];
  const { ctx, runner, notes } = setUp([
    { cmd: 'sudo', args: ['usermod', '-aG', 'libvirt', 'alice'] },
    // net-info answers for a defined network whether or not it is active: defined is its exit status
    { cmd: 'sudo', args: [...sudoVirsh.slice(1), 'net-info', 'default'], result: netInfo('no') },
    { cmd: 'sudo', args: [...sudoVirsh.slice(1), 'net-info', 'default'], result: netInfo('yes') },
  ]);
  await applyBootstrap(ctx, steps, shipped);
  runner.done();
  assert.deepEqual(
    runner.log.map((c) => c.how),
    ['interactive', 'run', 'run'],
  );
  assert.deepEqual(notes, [
    '$ sudo usermod -aG libvirt alice',
    "libvirt's default network is defined already",
    "libvirt's default network is active already",
  ]);
  assert.equal(readFileSync(shipped, 'utf8'), '<network/>', "libvirt's own file is used, and left alone");
});

const failedWith = (message: string) => (err: unknown) => {
  assert.ok(err instanceof VmsError);
  assert.equal(err.code, 'failed');
  assert.equal(err.message, message);
  assert.equal(err.hint, 'fix what it says and run `vms bootstrap` again: the steps already done are skipped');
  return true;
};

test('a sudo line that fails stops the plan with its exit status; no own network file when no line names it', async () => {
  const steps: BootstrapStep[] = [
    { name: 'group', summary: 'add alice', commands: [['sudo', 'usermod', '-aG', 'libvirt', 'alice']] },
    { name: 'dirs', summary: 'create', commands: [['sudo', 'mkdir', '-p', '/var/lib/vms']] },
  ];
  const { ctx, runner, failed } = setUp([
    {
      cmd: 'sudo',
      args: (a) => a.join(' ') === 'usermod -aG libvirt alice' && !existsSync(dirname(OWN)),
      result: { exitCode: 1 },
    },
  ]);
  await assert.rejects(
    applyBootstrap(ctx, steps, NOT_SHIPPED),
    failedWith('group: `sudo usermod -aG libvirt alice` failed: exit status 1'),
  );
  runner.done();
  assert.deepEqual(failed, ['group: add alice']);
});

test("a line that fails stops the plan with virsh's error; the own network file's dir is gone then too", async () => {
  const steps: BootstrapStep[] = [{ name: 'network', summary: 'define', commands: [net.define(OWN), net.autostart()] }];
  const { ctx, runner } = setUp([
    { cmd: 'virsh', args: INFO, result: NO_NETWORK },
    {
      cmd: 'virsh',
      // a temp cleaner removed vms' private dir meanwhile: that must not hide virsh's error
      args: (a) => (rmSync(dirname(OWN), { recursive: true }), a.join(' ') === `-c qemu:///system net-define ${OWN}`),
      result: result('', 1, 'error: Failed to define network from x\nerror: XML error: bad\n'),
    },
  ]);
  await assert.rejects(
    applyBootstrap(ctx, steps, NOT_SHIPPED),
    failedWith(
      `network: \`virsh -c qemu:///system net-define ${OWN}\` failed: Failed to define network from x: XML error: bad`,
    ),
  );
  runner.done();
  assert.ok(!existsSync(dirname(OWN)));
});

test('an interrupt between two commands stops the plan before the next one', async () => {
  const aborter = new AbortController();
  const steps: BootstrapStep[] = [
    {
      name: 'dirs',
      summary: 'create',
      commands: [
        ['mkdir', '-p', '/var/lib/vms'],
        ['chmod', '2775', '/var/lib/vms'],
      ],
    },
  ];
  const { ctx, runner } = setUp(
    [{ cmd: 'mkdir', args: (a) => (aborter.abort(), a.join(' ') === '-p /var/lib/vms') }],
    aborter.signal,
  );
  await assert.rejects(applyBootstrap(ctx, steps, NOT_SHIPPED), { name: 'AbortError' });
  runner.done();
});

test("a dir in the own network file's place is never used: nothing runs, and it is left as it was", async () => {
  mkdirSync(dirname(OWN));
  writeFileSync(OWN, 'not ours');
  try {
    const steps: BootstrapStep[] = [{ name: 'network', summary: 'define', commands: [net.define(OWN)] }];
    const { ctx, runner } = setUp([]);
    await assert.rejects(applyBootstrap(ctx, steps, NOT_SHIPPED), { code: 'EEXIST' });
    runner.done();
    assert.equal(readFileSync(OWN, 'utf8'), 'not ours');
  } finally {
    rmSync(dirname(OWN), { recursive: true, force: true });
  }
});
