import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { ROOT, testbed } from '../helpers/testbed.js';

const bed = testbed('cfg');
after(() => bed.cleanup());

describe('vms config', () => {
  test('shows each effective value and where it came from: flag > env > file > default', async () => {
    writeFileSync(bed.env.VMS_CONFIG!, JSON.stringify({ memory: '4G', cpus: 4 }));
    const r = await bed.vms(['--connect', 'qemu:///system', 'config', '--json'], { env: { VMS_CPUS: '3' } });
    assert.equal(r.code, 0, r.stderr);
    const s = r.json.settings;
    assert.deepEqual(s.uri, { value: 'qemu:///system', source: 'flag' });
    assert.deepEqual(s.memory, { value: 4 * 2 ** 30, source: `file ${bed.env.VMS_CONFIG}` });
    assert.deepEqual(s.cpus, { value: 3, source: 'env VMS_CPUS' });
    assert.deepEqual(s.disk, { value: 20 * 2 ** 30, source: 'default' });
    assert.equal(s.imagesDir.source, 'env VMS_IMAGES_DIR');
    const human = await bed.vms(['config']);
    assert.match(human.stdout, /^memory\s+4G\s+file /m);
    assert.match(human.stdout, /^uri\s+qemu:\/\/\/system\s+env LIBVIRT_DEFAULT_URI$/m);
  });

  test('a bad value in the config file is a one-line error naming the file', async () => {
    writeFileSync(bed.env.VMS_CONFIG!, JSON.stringify({ disk: '20' }));
    const r = await bed.refused(['list']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /error: invalid disk size '20'.*\(from file .*config\.json\)/);
    writeFileSync(bed.env.VMS_CONFIG!, '{}');
  });

  test('create uses the configured defaults', async () => {
    writeFileSync(bed.env.VMS_CONFIG!, JSON.stringify({ memory: '384M', disk: '80M' }));
    const r = await bed.vms(['create', bed.name('dflt'), '--bare', '--network', 'none', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.memory, 384 * 2 ** 20);
    assert.equal(r.json.disks[0].capacity, 80 * 2 ** 20);
    writeFileSync(bed.env.VMS_CONFIG!, '{}');
  });
});

describe('the single executable', () => {
  test('dist/vms runs on its own, with no node_modules and no templates beside it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vms-sea-'));
    try {
      const bin = join(dir, 'vms');
      copyFileSync(join(ROOT, 'dist/vms'), bin);
      execFileSync('chmod', ['755', bin]);
      const pkg = JSON.parse(execFileSync('cat', [join(ROOT, 'package.json')], { encoding: 'utf8' }));
      assert.equal(execFileSync(bin, ['--version'], { cwd: dir, encoding: 'utf8' }).trim(), pkg.version);
      const xml = execFileSync(bin, ['create', 'seatest', '--print-xml', '--network', 'none'], {
        cwd: dir,
        encoding: 'utf8',
        env: { ...process.env, ...bed.env },
      });
      assert.match(xml, /<name>seatest<\/name>/);
      const list = JSON.parse(
        execFileSync(bin, ['list', '--json'], { cwd: dir, encoding: 'utf8', env: { ...process.env, ...bed.env } }),
      );
      // The VMs of this bed (other beds may run beside it): the one `create uses the configured defaults` made, as
      // the bundle lists it.
      const ours = (vms: any[]) => vms.filter((vm) => vm.name.startsWith(`${bed.id}-`));
      assert.deepEqual(
        ours(list).map((vm: any) => [vm.name, vm.state, vm.memory]),
        [[bed.name('dflt'), 'shut off', 384 * 2 ** 20]],
      );
      assert.deepEqual(ours(list), ours((await bed.vms(['list', '--json'])).json));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
