import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { VmsError } from '../../src/errors.js';
import { testbed } from '../helpers/testbed.js';

const bed = testbed('set');
after(() => bed.cleanup());

const MiB = 2 ** 20;
const saved = (n: string) => bed.virsh('dumpxml', n, '--inactive');
const dir = (n: string) => join(bed.env.VMS_STATE_DIR!, n);
/** Runs a command in the guest with the kernel's console messages off, so they cannot land in the output. */
const inGuest = (n: string, command: string) => bed.guest(n, `dmesg -n 1; ${command}`);
const value = (out: string, key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(out)?.[1];

describe('memory and vCPUs, live and saved; reset, suspend, resume', () => {
  const n = bed.name('vm');
  before(() => bed.createTiny(n)); // 256M, 1 vCPU, shut off

  test('a shut-off VM: saved in its definition, and the guest boots with it', async () => {
    const r = await bed.vms(['set', n, '--memory', '320M', '--cpus', '2', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.changes, [
      { setting: 'memory', before: 256 * MiB, after: 320 * MiB, applied: 'config' },
      { setting: 'cpus', before: 1, after: 2, applied: 'config' },
    ]);
    assert.deepEqual([r.json.live, r.json.config, r.json.restarted, r.json.state], [false, true, false, 'shut off']);
    const xml = saved(n);
    assert.match(
      xml,
      /<memory unit='KiB'>327680<\/memory>\s*<currentMemory unit='KiB'>327680<\/currentMemory>\s*<vcpu placement='static'>2<\/vcpu>/,
    );

    assert.equal((await bed.vms(['start', n])).code, 0);
    const out = await inGuest(
      n,
      'echo online=$(cat /sys/devices/system/cpu/online); echo kib=$(sed -n "s/^MemTotal: *\\([0-9]*\\) kB/\\1/p" /proc/meminfo)',
    );
    assert.equal(value(out, 'online'), '0-1');
    const kib = Number(value(out, 'kib'));
    assert.ok(kib > 256 * 1024 && kib <= 320 * 1024, `MemTotal ${kib} kB: more than the 256M it had, at most 320M`);
  });

  test('what needs the VM off is refused while it runs, and nothing changes (the notes given with it neither)', async () => {
    const [before, live] = [saved(n), bed.virsh('dumpxml', n)];
    const above = await bed.vms(['set', n, '--memory', '512M', '--notes', 'x']);
    assert.equal(above.code, 4, above.stderr);
    assert.match(
      above.stderr,
      new RegExp(
        `error: ${n} is running: changing --memory 512M \\(above the 320M it was started with\\) requires the VM to be shut off; use --restart\\nhint: --restart`,
      ),
    );
    const fewer = await bed.vms(['set', n, '--cpus', '1']);
    assert.equal(fewer.code, 4, fewer.stderr);
    assert.match(
      fewer.stderr,
      /changing --cpus 1 \(fewer than the 2 it runs with: unplugging a vCPU needs the guest's help\) requires the VM to be shut off/,
    );
    assert.equal(saved(n), before);
    assert.equal(bed.virsh('dumpxml', n), live);
  });

  test('--restart shuts it down, applies and starts it again: the guest comes back with one vCPU', async () => {
    const r = await bed.vms(['set', n, '--cpus', '1', '--restart', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.changes, [{ setting: 'cpus', before: 2, after: 1, applied: 'restart' }]);
    assert.deepEqual([r.json.restarted, r.json.state], [true, 'running']);
    assert.match(
      saved(n),
      /<vcpu placement='static' current='1'>2<\/vcpu>/,
      'the maximum stays, for plugging it in again live',
    );
    assert.equal(value(await inGuest(n, 'echo online=$(cat /sys/devices/system/cpu/online)'), 'online'), '0');
  });

  test('vCPUs up to the maximum are plugged into the running VM: the guest sees the new CPU', async () => {
    const r = await bed.vms(['set', n, '--cpus', '2', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.changes, [{ setting: 'cpus', before: 1, after: 2, applied: 'live' }]);
    assert.deepEqual([r.json.live, r.json.restarted], [true, false]);
    assert.match(
      r.json.warnings.join('\n'),
      /no guest agent brought the new vCPUs online/,
      'the tiny guest has no agent',
    );
    assert.match(bed.virsh('vcpucount', n), /current\s+live\s+2/);
    assert.match(saved(n), /<vcpu placement='static'>2<\/vcpu>/);
    // The busybox guest has no udev rule to bring a hot-plugged CPU online: it is there, offline, until told.
    const out = await inGuest(
      n,
      'echo was=$(cat /sys/devices/system/cpu/cpu1/online); echo 1 > /sys/devices/system/cpu/cpu1/online; echo online=$(cat /sys/devices/system/cpu/online)',
    );
    assert.equal(value(out, 'was'), '0');
    assert.equal(value(out, 'online'), '0-1');
  });

  test('memory within what it was started with goes to the balloon live; vms says when the guest does not follow', async () => {
    const r = await bed.vms(['set', n, '--memory', '288M', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.changes, [{ setting: 'memory', before: 320 * MiB, after: 288 * MiB, applied: 'live' }]);
    assert.match(saved(n), /<memory unit='KiB'>327680<\/memory>\s*<currentMemory unit='KiB'>294912<\/currentMemory>/);
    // The tiny guest has no virtio_balloon driver: libvirt takes the new target, the guest keeps its memory.
    assert.match(r.json.warnings.join('\n'), /the guest has not followed the balloon to 288M/);
  });

  test('--notes on the running VM shows in vms info; an empty one removes them', async () => {
    const notes = 'build box & <tests> "quoted"\nsecond line';
    const r = await bed.vms(['set', n, '--notes', notes, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.changes, [{ setting: 'notes', before: null, after: notes, applied: 'config' }]);
    assert.equal((await bed.vms(['info', n, '--json'])).json.notes, notes);
    assert.match((await bed.vms(['info', n])).stdout, /^notes\s+build box & <tests> "quoted"\n\s+second line$/m);
    assert.equal((await bed.vms(['set', n, '--notes', ''])).code, 0);
    assert.equal((await bed.vms(['info', n, '--json'])).json.notes, undefined);
  });

  test('--restart fails clearly when the guest will not shut down, and nothing changes', async () => {
    await bed.guest(n, 'killall acpid');
    const before = saved(n);
    const r = await bed.vms(['set', n, '--memory', '512M', '--restart', '--timeout', '2']);
    assert.equal(r.code, 6, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`error: ${n} did not shut down within 2s; nothing was changed\\nhint: .*vms stop ${n} --force`),
    );
    assert.equal(bed.virsh('domstate', n).trim(), 'running');
    assert.equal(saved(n), before);
  });

  test('reset reboots the guest at once (and brings back the acpid killed above)', async () => {
    const boots = () => readFileSync(join(dir(n), 'serial.log'), 'utf8').split('tiny guest up:').length - 1;
    const booted = boots();
    const start = Date.now();
    const r = await bed.vms(['reset', n, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json, { name: n, state: 'running', changed: true });
    const uptime = Number(value(await inGuest(n, 'echo up=$(cut -d" " -f1 /proc/uptime)'), 'up'));
    assert.ok(uptime < (Date.now() - start) / 1000, `uptime ${uptime}s: the guest booted after the reset`);
    assert.equal(boots(), booted + 1, 'the console shows the boot again');
  });

  test('suspend pauses it: the console does not answer until resume', async () => {
    const s = await bed.shell(n);
    try {
      const r = await bed.vms(['suspend', n, '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.json, { name: n, state: 'paused', changed: true });
      assert.equal(bed.virsh('domstate', n).trim(), 'paused');
      const again = await bed.vms(['suspend', n]);
      assert.deepEqual([again.code, again.stdout.trim()], [0, `${n} is already paused`]);
      await assert.rejects(
        s.run('echo alive', 3000),
        (err: unknown) => err instanceof VmsError && err.code === 'timeout',
      );

      const resumed = await bed.vms(['resume', n, '--json']);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.deepEqual(resumed.json, { name: n, state: 'running', changed: true });
      assert.match((await s.run('echo al""ive', 30_000)).output, /^alive$/m);
      const twice = await bed.vms(['resume', n]);
      assert.deepEqual([twice.code, twice.stdout.trim()], [0, `${n} is already running`]);
    } finally {
      s.close();
    }
  });
});

describe('display heads and rename', () => {
  const n = bed.name('gfx');
  const renamed = bed.name('gfx2');
  before(() => bed.createTiny(n, ['--firmware', 'efi', '--memory', '512M', '--start'], { graphics: true }));

  test('--displays and --rename on the running VM with --restart: its files move along, the console works, QEMU has two heads', async () => {
    await bed.guest(n, 'true'); // booted, so the NVRAM exists and ACPI is handled
    assert.ok(existsSync(join(dir(n), 'nvram.fd')));
    const r = await bed.vms(['set', n, '--displays', '2', '--rename', renamed, '--restart', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.changes, [
      { setting: 'displays', before: 1, after: 2, applied: 'restart' },
      { setting: 'name', before: n, after: renamed, applied: 'restart' },
    ]);
    assert.deepEqual([r.json.name, r.json.state, r.json.restarted], [renamed, 'running', true]);

    const xml = saved(renamed);
    assert.match(xml, /<model type='virtio' heads='2' primary='yes'\/>/);
    assert.match(xml, new RegExp(`<nvram[^>]*>${dir(renamed)}/nvram\\.fd</nvram>`));
    assert.match(
      xml,
      new RegExp(
        `<source mode='bind' path='${dir(renamed)}/serial\\.sock'>\\s*<seclabel model='dac' relabel='yes'>\\s*<label>\\+0:\\+\\d+</label>\\s*</seclabel>\\s*</source>\\s*<log file='${dir(renamed)}/serial\\.log'`,
      ),
      "the console stays the user's",
    );
    assert.ok(!xml.includes(`${dir(n)}/`), 'nothing points into the old directory');
    assert.match(
      xml,
      new RegExp(`<source file='${bed.env.VMS_IMAGES_DIR}/${n}\\.qcow2'/>`),
      'the disk stays where it is',
    );
    assert.ok(!existsSync(dir(n)));
    assert.ok(existsSync(join(dir(renamed), 'nvram.fd')));
    assert.deepEqual(
      bed
        .domains()
        .filter((d) => d.startsWith(n))
        .sort(),
      [renamed],
    );

    assert.match(
      await bed.guest(renamed, 'echo lo""gged in'),
      /^logged in$/m,
      'login over the serial console in its new directory',
    );
    assert.match(bed.virsh('qemu-monitor-command', renamed, '--hmp', 'info qtree'), /max_outputs = 2\b/);
  });
});

describe('bad input changes nothing', () => {
  const n = bed.name('bad');
  const other = bed.name('other');
  before(async () => {
    await bed.createTiny(n);
    await bed.createTiny(other);
  });

  const cases: [string, string[], number, RegExp][] = [
    ['an unknown VM', ['set', 'ghost', '--memory', '1G'], 3, /error: no VM named '.*-ghost'/],
    ['a bad size', ['set', 'NAME', '--memory', '12X'], 2, /error: invalid memory '12X'/],
    ['no option', ['set', 'NAME'], 2, /error: nothing to change\nhint: give --memory/],
    [
      'a rename to an existing name',
      ['set', 'NAME', '--memory', '300M', '--rename', 'OTHER'],
      4,
      /error: a VM named '.*-other' already exists/,
    ],
    ['a rename to an invalid name', ['set', 'NAME', '--rename', 'a/b'], 2, /error: invalid VM name 'a\/b'/],
    ['--displays without a display', ['set', 'NAME', '--displays', '2'], 4, /has no graphical display/],
    ['reset of a shut-off VM', ['reset', 'NAME'], 4, /is not running \(shut off\)\nhint: start it/],
    ['suspend of a shut-off VM', ['suspend', 'NAME'], 4, /is not running \(shut off\)/],
    ['resume of a shut-off VM', ['resume', 'NAME'], 4, /is not suspended \(shut off\)/],
    ['reset of an unknown VM', ['reset', 'ghost'], 3, /no VM named/],
  ];
  for (const [what, args, code, message] of cases) {
    test(`${what}: exit ${code}`, async () => {
      const [before, files] = [saved(n), existsSync(dir(n))];
      const argv = args.map((a) => (a === 'NAME' ? n : a === 'OTHER' ? other : a === 'ghost' ? bed.name('ghost') : a));
      const r = await bed.vms(argv);
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(saved(n), before);
      assert.equal(existsSync(dir(n)), files);
    });
  }

  test('a rename of a VM with snapshots: exit 4 (libvirt cannot rename it), nothing moves', async () => {
    bed.virsh('snapshot-create-as', n, 'before-rename');
    try {
      const before = saved(n);
      const r = await bed.vms(['set', n, '--rename', bed.name('moved')]);
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /has snapshots, and libvirt cannot rename a VM that has them/);
      assert.equal(saved(n), before);
      assert.ok(existsSync(dir(n)) && !existsSync(dir(bed.name('moved'))));
    } finally {
      bed.virsh('snapshot-delete', n, 'before-rename');
    }
  });

  test('the settings it already has: nothing to change, exit 0', async () => {
    const before = saved(n);
    const r = await bed.vms(['set', n, '--memory', '256M', '--cpus', '1', '--notes', '']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `nothing to change: ${n} already has these settings`);
    assert.equal(saved(n), before);
  });
});
