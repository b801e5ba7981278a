import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ROOT, testbed } from '../helpers/testbed.js';

const bed = testbed('doctor');
after(() => {
  chmodSync(join(bed.dir, 'locked'), 0o755);
  bed.cleanup();
});

const byName = (json: any) => Object.fromEntries(json.checks.map((c: any) => [c.check, c]));

describe('vms doctor', () => {
  test('on this machine: libvirt answers, and the TCG-only libvirt is reported honestly as a warning', async () => {
    const r = await bed.vms(['doctor', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const c = byName(r.json);
    assert.equal(r.json.ok, true);
    assert.equal(c.libvirt.status, 'pass');
    assert.equal(c.kvm.status, 'warn');
    assert.match(c.kvm.message, /TCG/);
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
    assert.match(r.stdout, /^! kvm\s+.*TCG.*\n\s+fix: /m);
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

  test('libvirtd really stopped: doctor fails the libvirt check, and a command elsewhere hints at vms doctor', async () => {
    const pid = readFileSync('/run/libvirtd.pid', 'utf8').trim();
    process.kill(Number(pid), 'SIGTERM');
    try {
      for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 100));
      const r = await bed.vms(['doctor', '--json']);
      assert.equal(r.code, 1, r.stdout);
      assert.equal(byName(r.json).libvirt.status, 'fail');
      const list = await bed.vms(['list']);
      assert.equal(list.code, 5);
      assert.match(list.stderr, /hint: .*`vms doctor`/);
    } finally {
      execFileSync('sh', [join(ROOT, 'test/setup/daemons.sh')], { stdio: 'ignore' }); // as test/setup.sh started it
    }
    assert.equal(
      (await bed.vms(['doctor', '--json'])).json.checks.find((c: any) => c.check === 'libvirt').status,
      'pass',
    );
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
