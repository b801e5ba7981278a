import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { terminalScreen } from '../helpers/terminal-screen.js';
import { testbed } from '../helpers/testbed.js';

/** The frames of ora's default spinner (dots). */
const FRAMES = [...'⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏'];

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
      const r = await bed.refused([cmd, bed.name('ghost'), '--yes'].filter((a) => a !== '--yes' || cmd === 'destroy'));
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
    const r = await bed.refused(['console', n]);
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
    const r = await bed.refused(['console', s]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, new RegExp(`hint: start it with \`vms start ${s}\``));
  });

  test('viewer: with no graphical session it prints the SPICE URI and a hint', async () => {
    const r = await bed.vms(['viewer', g], { env: { DISPLAY: '', WAYLAND_DISPLAY: '' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^spice:\/\/127\.0\.0\.1:\d+$/m);
    assert.match(r.stdout, /hint: no graphical session/);
  });

  test('viewer: in a graphical session it opens virt-viewer on the VM, and stays attached to it', async (t) => {
    // Xvfb picks a free display and writes its number to fd 3 once it accepts clients.
    const xvfb = spawn('Xvfb', ['-displayfd', '3', '-nolisten', 'tcp'], {
      stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    });
    t.after(() => xvfb.kill());
    const [display] = await once(xvfb.stdio[3]!, 'data');
    const viewer = bed.spawnVms(['viewer', g], { DISPLAY: `:${String(display).trim()}` });
    let window: string | undefined;
    t.after(() => {
      viewer.kill();
      try {
        if (window) process.kill(Number(window.split(' ')[0])); // left behind by the kill of vms
      } catch {
        // gone with its display
      }
    });
    // The viewer vms started itself (its child, after the virsh calls it makes first), not any virt-viewer that runs
    // on this host.
    const ownViewer = () =>
      spawnSync('pgrep', ['-a', '-P', String(viewer.pid)], { encoding: 'utf8' })
        .stdout.split('\n')
        .find((line) => /^\d+ virt-viewer /.test(line));
    for (let i = 0; i < 300 && !window && viewer.exitCode === null; i++) {
      window = ownViewer();
      if (!window) await sleep(100);
    }
    assert.match(window ?? '', new RegExp(`^\\d+ virt-viewer --connect qemu:///system ${g}$`));
    assert.equal(viewer.exitCode, null, 'vms viewer stays attached while the window is open');
  });

  test('viewer on a VM without a display: exit 4', async () => {
    const r = await bed.refused(['viewer', n]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /has no graphical display/);
  });
});

/* eslint-disable no-control-regex -- escape codes are what these tests look for */
describe('progress output', () => {
  test('plain step lines on a non-terminal, nothing with --json, commands with -v', async () => {
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
  });

  test('colours only without NO_COLOR: FORCE_COLOR (colour without a terminal) shows them, NO_COLOR takes them away', async () => {
    const a = bed.name('p1'); // made by the test above, shut off
    const ghost = bed.name('ghost');
    const coloured = { FORCE_COLOR: '1', NO_COLOR: undefined };
    const info = await bed.vms(['info', a], { env: coloured });
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /^\x1b\[1mstate\s*\x1b\[22m {2}\x1b\[2mshut off\x1b\[22m$/m, 'a bold key, a dim state');
    const missing = await bed.vms(['info', ghost], { env: coloured });
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /^\x1b\[31merror:\x1b\[39m no VM named/m);
    assert.match(missing.stderr, /^\x1b\[36mhint:\x1b\[39m /m);
    for (const args of [['info', a], ['info', ghost], ['list']]) {
      const r = await bed.vms(args, { env: { FORCE_COLOR: '1', NO_COLOR: '1' } });
      assert.doesNotMatch(r.stdout + r.stderr, /\x1b\[/, `NO_COLOR: no escape codes from vms ${args.join(' ')}`);
    }
  });

  test('a spinner on a terminal: each step drawn with a spinner frame, then cleared and ticked off in place', async () => {
    const c = bed.name('p3');
    // CI set, as on a CI machine: ora alone would turn its spinner off for it, vms decides on the terminal.
    const { code, out } = bed.onTerminal(['create', c, '--bare', '--network', 'none', '--disk', '64M'], '', {
      CI: 'true',
    });
    assert.equal(code, 0, out);
    const steps = [
      'Checking input',
      `Creating ${bed.env.VMS_STATE_DIR}/${c}`,
      'Creating disk ',
      `Defining domain ${c}`,
    ];
    for (const step of steps)
      assert.ok(
        FRAMES.some((f) => out.includes(`${f} ${step}`)),
        `a frame drawn for "${step}"`,
      );
    const screen = terminalScreen(out);
    const shown = screen.filter((line) => steps.some((step) => line.includes(step)));
    assert.equal(shown.length, steps.length, `each step on one line of its own:\n${screen.join('\n')}`);
    for (const [i, step] of steps.entries()) assert.ok(shown[i]!.startsWith(`✔ ${step}`), `ticked off: ${shown[i]}`);
    assert.ok(!FRAMES.some((f) => screen.join('\n').includes(f)), 'no spinner frame is left on the screen');
    assert.doesNotMatch(out, /==>/);
    assert.equal(out.match(/\x1b\[\?25[lh]/g)?.at(-1), '\x1b[?25h', 'the cursor is shown again');
    assert.doesNotMatch(out, /\x1b\[\d+m/, 'NO_COLOR holds on a terminal too');
  });

  test('TERM=dumb: a terminal that cannot move its cursor gets the plain step lines', async () => {
    const d = bed.name('p4');
    const { code, out } = bed.onTerminal(['create', d, '--bare', '--network', 'none', '--disk', '64M'], '', {
      TERM: 'dumb',
    });
    assert.equal(code, 0, out);
    assert.match(out, /^==> Checking input\r?$/m);
    assert.ok(!FRAMES.some((f) => out.includes(f)), 'no spinner frame');
  });
});
