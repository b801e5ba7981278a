import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { testbed } from '../helpers/testbed.js';

const bed = testbed('life');
after(() => bed.cleanup());

describe('start, stop, kill, info', () => {
  const n = bed.name('vm');
  before(() => bed.createTiny(n));

  test('start boots it; a second start changes nothing', async () => {
    const r = await bed.vms(['start', n, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json, { name: n, state: 'running', changed: true });
    const again = await bed.vms(['start', n]);
    assert.equal(again.code, 0);
    assert.equal(again.stdout.trim(), `${n} is already running`);
  });

  test('info shows the running VM', async () => {
    const r = await bed.vms(['info', n]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^state\s+running$/m);
    assert.match(r.stdout, /^memory\s+256M$/m);
    assert.match(r.stdout, /^console\s+\/var\/lib\/vms-test\/.*\/serial\.sock$/m);
  });

  test('stop shuts the guest down over ACPI and waits until it is off', async () => {
    await bed.guest(n, 'true'); // booted far enough to run acpid
    const r = await bed.vms(['stop', n, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.state, 'shut off');
    assert.equal(r.json.forced, undefined);
    assert.equal((await bed.vms(['stop', n])).stdout.trim(), `${n} is already shut off`);
  });

  test('stop times out on a guest that ignores ACPI: non-zero exit and a hint; --force powers it off', async () => {
    await bed.vms(['start', n]);
    await bed.guest(n, 'killall acpid');
    const r = await bed.vms(['stop', n, '--timeout', '2']);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, new RegExp(`error: ${n} did not shut down within 2s`));
    assert.match(r.stderr, /hint: .*--force/);
    assert.equal(bed.virsh('domstate', n).trim(), 'running');
    const forced = await bed.vms(['stop', n, '--timeout', '1', '--force', '--json']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(forced.json.forced, true);
    assert.equal(bed.virsh('domstate', n).trim(), 'shut off');
  });

  test('kill powers off at once', async () => {
    await bed.vms(['start', n]);
    const r = await bed.vms(['kill', n, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.state, 'shut off');
  });

  for (const cmd of ['start', 'stop', 'kill', 'info', 'console', 'viewer', 'destroy']) {
    test(`${cmd} on an unknown VM: exit 3 and a hint`, async () => {
      const r = await bed.vms([cmd, bed.name('ghost'), '--yes'].filter((a) => a !== '--yes' || cmd === 'destroy'));
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /error: no VM named '.*-ghost'\nhint: `vms list` shows the VMs/);
    });
  }
});

describe('console and viewer', () => {
  const n = bed.name('con');
  const g = bed.name('gfx');
  before(async () => {
    await bed.createTiny(n, ['--start']);
    await bed.createTiny(g, ['--memory', '512M', '--start'], { graphics: true });
  });

  test('console without a terminal: a clear error naming the transcript', async () => {
    const r = await bed.vms(['console', n]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /error: vms console needs an interactive terminal/);
    assert.match(r.stderr, /hint: the console transcript is in .*serial\.log/);
  });

  test('console on a terminal attaches to the serial console; Ctrl-] leaves', async () => {
    const child = bed.spawnOnTerminal(['console', n]);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    for (let i = 0; i < 60 && !/login:/.test(out); i++) {
      child.stdin.write('\r');
      await sleep(500);
    }
    assert.match(out, /tiny login:/);
    child.stdin.write('\x1d');
    assert.equal(await exited, 0);
  });

  test('console of a VM that is not running: exit 4 with a hint to start it', async () => {
    const s = bed.name('off');
    await bed.createTiny(s);
    const r = await bed.vms(['console', s]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, new RegExp(`hint: start it with \`vms start ${s}\``));
  });

  test('viewer: with no graphical session it prints the SPICE URI and a hint', async () => {
    const r = await bed.vms(['viewer', g], { env: { DISPLAY: '', WAYLAND_DISPLAY: '' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^spice:\/\/127\.0\.0\.1:\d+$/m);
    assert.match(r.stdout, /hint: no graphical session/);
  });

  test('viewer: in a graphical session it opens virt-viewer on the VM', async (t) => {
    const xvfb = spawn('Xvfb', [':77', '-nolisten', 'tcp'], { stdio: 'ignore' });
    t.after(() => xvfb.kill());
    await sleep(1000);
    const viewer = bed.spawnVms(['viewer', g], { DISPLAY: ':77' });
    t.after(() => viewer.kill());
    await sleep(4000);
    assert.equal(viewer.exitCode, null, 'vms viewer stays attached while the window is open');
    const cmdline = execFileSync('pgrep', ['-a', 'virt-viewer'], { encoding: 'utf8' });
    assert.match(cmdline, new RegExp(`virt-viewer --connect qemu:///system ${g}`));
  });

  test('viewer on a VM without a display: exit 4', async () => {
    const r = await bed.vms(['viewer', n]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /has no graphical display/);
  });
});

describe('progress output', () => {
  test('plain step lines on a non-terminal, nothing with --json, commands with -v, colours only without NO_COLOR', async () => {
    const a = bed.name('p1');
    const plain = await bed.vms(['create', a, '--bare', '--network', 'none', '--disk', '64M']);
    assert.match(plain.stderr, /^==> Checking input\n==> Creating .*\n==> Creating disk .*\n==> Defining domain .*\n$/);
    const b = bed.name('p2');
    const json = await bed.vms(['create', b, '--bare', '--network', 'none', '--disk', '64M', '--json']);
    assert.equal(json.stderr, '');
    assert.equal(json.json.name, b);
    const verbose = await bed.vms(['info', a, '-v']);
    assert.match(verbose.stderr, /^\$ virsh -c qemu:\/\/\/system dumpxml .* --inactive --security-info$/m);
    assert.match(verbose.stderr, /^\$ qemu-img info -U --output=json /m);
    // eslint-disable-next-line no-control-regex -- an escape code is what must not be there
    assert.doesNotMatch(plain.stdout + plain.stderr, /\x1b\[/, 'NO_COLOR: no escape codes');
  });

  test('a spinner on a terminal', async () => {
    const c = bed.name('p3');
    const { code, out } = bed.onTerminal(['create', c, '--bare', '--network', 'none', '--disk', '64M']);
    assert.equal(code, 0, out);
    assert.match(out, /✔ Defining domain/);
    assert.doesNotMatch(out, /==>/);
  });
});
