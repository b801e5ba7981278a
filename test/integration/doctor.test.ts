import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { testbed } from '../helpers/testbed.js';

const bed = testbed('doctor');
after(() => {
  chmodSync(join(bed.dir, 'locked'), 0o755);
  bed.cleanup();
});

const byName = (json: any) => Object.fromEntries(json.checks.map((c: any) => [c.check, c]));

/**
 * Whether this host runs guests under KVM, found out apart from vms: /dev/kvm creates a VM (QEMU opens it and quits)
 * and libvirt offers the kvm domain type. Without it (this test machine) doctor must warn about TCG.
 */
const HOST_KVM =
  existsSync('/dev/kvm') &&
  spawnSync(
    'qemu-system-x86_64',
    ['-accel', 'kvm', '-machine', 'none', '-nodefaults', '-display', 'none', '-monitor', 'stdio'],
    {
      input: 'quit\n',
      timeout: 20_000,
    },
  ).status === 0 &&
  /<domain type='kvm'/.test(bed.virsh('capabilities'));

describe('vms doctor', () => {
  test('on this machine: libvirt answers, and the kvm check says what this host has (TCG only: a warning)', async () => {
    const r = await bed.vms(['doctor', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const c = byName(r.json);
    assert.equal(r.json.ok, true);
    assert.equal(c.libvirt.status, 'pass');
    assert.equal(c.kvm.status, HOST_KVM ? 'pass' : 'warn', c.kvm.message);
    assert.match(c.kvm.message, HOST_KVM ? /^\/dev\/kvm creates VMs and libvirt offers KVM$/ : /TCG/);
    assert.equal(c.images.status, 'pass');
    assert.equal(c.ovmf.status, 'pass');
    assert.deepEqual(Object.keys(c), [
      'kvm',
      'libvirt',
      'group',
      'images',
      'security',
      'ovmf',
      'virtiofsd',
      'network',
      'iso',
      'space',
      'interrupted',
    ]);
    for (const check of r.json.checks) if (check.status !== 'pass') assert.ok(check.fix, `${check.check} has a fix`);
  });

  test('human output: one line per check, a fix under each problem, a count', async () => {
    const r = await bed.vms(['doctor']);
    assert.match(r.stdout, HOST_KVM ? /^✔ kvm\s+\/dev\/kvm creates VMs/m : /^! kvm\s+.*TCG.*\n\s+fix: /m);
    assert.match(r.stdout, /^✔ libvirt\s+libvirtd answers at qemu:\/\/\/system$/m);
    assert.match(r.stdout, /^\d+ passed, \d+ warnings, 0 failed$/m);
  });

  test('libvirtd unreachable: the libvirt check fails with the fix, exit status non-zero', async () => {
    const r = await bed.vms(['--connect', 'qemu:///system?socket=/nonexistent/sock', 'doctor', '--json']);
    assert.equal(r.code, 1);
    const c = byName(r.json);
    assert.equal(c.libvirt.status, 'fail');
    assert.match(c.libvirt.fix, /systemctl enable --now libvirtd/);
    assert.match(c.network.message, /not checked/);
  });

  test('libvirtd stopped, its socket left behind: doctor fails the libvirt check, and a command elsewhere hints at vms doctor', async () => {
    // A daemon of the test's own stands in for libvirtd: it listens on a socket in the bed's dir and is killed, so the
    // socket stays and connecting to it is refused, as after libvirtd stopped. The shared libvirtd is left alone:
    // every other test file (and anyone else on this machine) uses it.
    const sock = join(bed.dir, 'stopped-libvirt-sock');
    const listen = `require('node:net').createServer().listen(${JSON.stringify(sock)}, () => console.log('listening'))`;
    const daemon = spawn(process.execPath, ['-e', listen], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(daemon.stdout!, 'data');
    daemon.kill('SIGKILL'); // no clean-up of its own: the socket file stays, as a crashed or stopped daemon's does
    await once(daemon, 'exit');
    assert.ok(statSync(sock).isSocket(), 'the stopped daemon left its socket');
    const stopped = `qemu:///system?socket=${sock}`;
    const r = await bed.vms(['--connect', stopped, 'doctor', '--json']);
    assert.equal(r.code, 1, r.stdout);
    assert.equal(byName(r.json).libvirt.status, 'fail');
    assert.match(byName(r.json).libvirt.message, /^cannot reach libvirt at .*: Connection refused$/);
    const list = await bed.vms(['--connect', stopped, 'list']);
    assert.equal(list.code, 5);
    assert.match(list.stderr, /hint: .*`vms doctor`/);
  });

  test('an images dir the qemu user cannot reach fails, naming the directory to fix', async () => {
    const locked = join(bed.dir, 'locked');
    mkdirSync(join(locked, 'images'), { recursive: true });
    chmodSync(locked, 0o700);
    const r = await bed.vms(['doctor', '--json'], { env: { VMS_IMAGES_DIR: join(locked, 'images') } });
    assert.equal(r.code, 1);
    const c = byName(r.json).images;
    assert.equal(c.status, 'fail');
    assert.match(c.message, new RegExp(`cannot enter ${locked}`));
    assert.equal(c.fix, `sudo chmod o+x ${locked}`);
  });

  test('the Arch ISO: missing is a warning with the fix; present gives its age; old is a warning', async () => {
    let c = byName((await bed.vms(['doctor', '--json'])).json).iso;
    assert.equal(c.status, 'warn');
    assert.match(c.message, /no Arch ISO at .*archlinux-x86_64\.iso/);
    assert.match(c.fix, /`vms iso fetch`/);
    const iso = join(bed.env.VMS_ISO_DIR!, 'archlinux-x86_64.iso');
    writeFileSync(iso, 'not really an ISO');
    c = byName((await bed.vms(['doctor', '--json'])).json).iso;
    assert.equal(c.status, 'pass');
    assert.match(c.message, /\(0 days old\)/);
    const old = new Date(Date.now() - 120 * 24 * 3600 * 1000);
    utimesSync(iso, old, old);
    c = byName((await bed.vms(['doctor', '--json'])).json).iso;
    assert.equal(c.status, 'warn');
    assert.match(c.message, /120 days old/);
    assert.match(c.fix, /`vms iso fetch` gets the current one/);
  });
});
