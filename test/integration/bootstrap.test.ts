import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { testbed } from '../helpers/testbed.js';

// `vms bootstrap` on the real machine. test/setup.sh already ran `vms bootstrap --yes --no-network` for real (that is
// how the packages, the group and the network got here), so this host is bootstrapped: what is left to test is that
// a run finds nothing to do, that it makes what is missing (new directories, a user's group), and that it asks.

const bed = testbed('bootstrap');
const USER = `vmst${bed.id.slice(-4)}`;
after(() => {
  execFileSync('userdel', ['-r', USER], { stdio: 'ignore' });
  bed.cleanup();
});

const libvirtGid = () =>
  Number(
    readFileSync('/etc/group', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('libvirt:'))!
      .split(':')[2],
  );
const stepsToDo = (json: any) => json.steps.filter((s: any) => s.commands.length).map((s: any) => s.name);

describe('vms bootstrap on the bootstrapped test machine', () => {
  before(async () => {
    // test/setup.sh bootstrapped this machine; a libvirtd restart since (test/setup/daemons.sh) drops the network's
    // autostart. Bootstrapped again, so each test below starts from a ready host.
    const r = await bed.vms(['bootstrap', '--yes', '--no-network'], {
      env: {
        VMS_IMAGES_DIR: '/var/lib/libvirt/images',
        VMS_STATE_DIR: '/var/lib/vms',
        VMS_ISO_DIR: '/var/lib/libvirt/iso',
        VMS_CACHE_DIR: '/var/cache/vms',
      },
    });
    assert.equal(r.code, 0, r.stderr);
  });

  test('--dry-run: every step listed, the running daemons left alone, nothing changed', async () => {
    const r = await bed.vms(['bootstrap', '--dry-run', '--no-network']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^host: debian \(apt\), as root/m);
    for (const step of ['packages', 'daemons', 'group', 'dirs', 'network', 'iso'])
      assert.match(r.stdout, new RegExp(`^. ${step} `, 'm'));
    assert.match(r.stdout, /✔ packages\s+the packages vms needs are installed/);
    assert.match(r.stdout, /✔ daemons\s+libvirtd is running: left alone/);
    assert.match(r.stdout, /→ dirs\s+create .*images/, "the test bed's own directories are not set up for the group");
    assert.match(r.stdout, /--dry-run: nothing was changed \(1 step to do\)/);
    assert.equal(statSync(bed.env.VMS_IMAGES_DIR!).mode & 0o7777, 0o755, 'and were left alone');
  });

  test('makes missing directories for the libvirt group, then a second run has nothing to do', async () => {
    const env = { VMS_IMAGES_DIR: join(bed.dir, 'new/images'), VMS_STATE_DIR: join(bed.dir, 'new/state') };
    const first = await bed.vms(['bootstrap', '--yes', '--no-network', '--json'], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(stepsToDo(first.json), ['dirs'], 'only the new directories were missing');
    assert.equal(first.json.changed, true);
    for (const dir of Object.values(env)) {
      const st = statSync(dir);
      assert.equal(st.mode & 0o7777, 0o2775, dir);
      assert.equal(st.gid, libvirtGid(), dir);
    }
    const second = await bed.vms(['bootstrap', '--yes', '--no-network'], { env });
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /nothing to do: this host is ready for vms/);
    assert.doesNotMatch(second.stderr, /\$ /, 'no command ran');
  });

  test('under sudo, adds the invoking user to the libvirt group (and says to log in again)', async () => {
    execFileSync('useradd', ['-M', USER]);
    const env = { SUDO_USER: USER };
    const r = await bed.vms(['bootstrap', '--yes', '--no-network'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`\\$ usermod -aG libvirt ${USER}`));
    assert.match(r.stdout, new RegExp(`group: ${USER} must log out and in again`));
    assert.ok(execFileSync('id', ['-nG', USER], { encoding: 'utf8' }).split(/\s+/).includes('libvirt'));
    const again = await bed.vms(['bootstrap', '--dry-run', '--no-network'], { env });
    assert.match(again.stdout, new RegExp(`✔ group\\s+${USER} is in the libvirt group`));
  });

  test('without --yes and without a terminal it refuses; on a terminal, "n" changes nothing', async () => {
    const env = { VMS_CACHE_DIR: join(bed.dir, 'asked/cache') };
    const r = await bed.vms(['bootstrap', '--no-network'], { env });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /add --yes/);
    const tty = bed.onTerminal(['bootstrap', '--no-network'], 'n\n', env);
    assert.equal(tty.code, 4, tty.out);
    assert.match(tty.out, /Run these commands\? \[y\/N\]/);
    assert.ok(!existsSync(env.VMS_CACHE_DIR), 'nothing was made');
  });
});
