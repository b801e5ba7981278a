import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GUEST, testbed } from '../helpers/testbed.js';

// Issue 10, sequence 5: `vms serial add s1 --backend file:IMG/s.qcow2` was accepted, and the guest's ttyS1 output was
// appended to the frozen base. A serial port's path may be no VM's file, and nothing in the images or ISO dir.

const bed = testbed('siu');
after(() => bed.cleanup());

const images = bed.env.VMS_IMAGES_DIR!;
const state = bed.env.VMS_STATE_DIR!;
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('serial add refuses a path a VM uses, or one in the images or ISO dir', () => {
  const s = bed.name('s');
  const s1 = bed.name('s1');
  const e = bed.name('e'); // EFI, with an ISO and an image attached from outside the images dir
  const base = join(images, `${s}.qcow2`);
  const iso = join(bed.env.VMS_ISO_DIR!, 'tiny.iso');
  const ext = join(bed.dir, 'ext.qcow2');

  before(async () => {
    await bed.createTiny(s);
    const c = await bed.vms(['clone', s, s1]);
    assert.equal(c.code, 0, c.stderr);
    copyFileSync(GUEST.iso, iso);
    await bed.createTiny(e, ['--firmware', 'efi', '--iso', iso]);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', ext, '16M']);
    const a = await bed.vms(['disk', 'attach', e, ext]);
    assert.equal(a.code, 0, a.stderr);
    // Started once, so its NVRAM and transcript exist; stopped, so nothing writes them while a test compares them.
    assert.equal((await bed.vms(['start', e])).code, 0);
    await bed.guest(e, 'true');
    assert.equal((await bed.vms(['kill', e])).code, 0);
  });

  /** Everything a refusal must leave alone: both definitions of every VM, and every file's content and mode. */
  function snapshot(files: string[]) {
    const defs = [s, s1, e].map((vm) => bed.virsh('dumpxml', vm, '--inactive'));
    const stats = files.map((f) =>
      existsSync(f)
        ? `${f} ${statSync(f).mode.toString(8)} ${statSync(f).isFile() ? sha(f) : 'not a file'}`
        : `${f} missing`,
    );
    return { defs, stats, images: readdirSync(images).sort() };
  }

  const cases: [string, string, number, RegExp][] = [
    [
      "the frozen base of s and s1 (the issue's case)",
      `file:${base}`,
      4,
      new RegExp(`^error: ${base} is in use: it is a base under .*'s disk `, 'm'),
    ],
    ["s1's own disk", `file:${join(images, `${s1}.qcow2`)}`, 4, /is in use: it is .*-s1's disk$/m],
    ['an image attached from outside the images dir', `file:${ext}`, 4, /ext\.qcow2 is in use: it is .*-e's disk$/m],
    [
      "e's NVRAM",
      `file:${join(state, e, 'nvram.fd')}`,
      4,
      /nvram\.fd is in use: it is .*-e's NVRAM \(UEFI variables\)$/m,
    ],
    ["e's ISO", `file:${iso}`, 4, /tiny\.iso is in use: it is .*-e's ISO \(cdrom\)$/m],
    [
      "e's console transcript",
      `file:${join(state, e, 'serial.log')}`,
      4,
      /serial\.log is in use: it is .*-e's console transcript$/m,
    ],
    [
      "e's console socket, as a client",
      `unix:${join(state, e, 'serial.sock')}`,
      4,
      /serial\.sock is in use: it is .*-e's console socket$/m,
    ],
    [
      "e's console socket, listening",
      `unix:${join(state, e, 'serial.sock')} --server`,
      4,
      /serial\.sock is in use: it is .*-e's console socket$/m,
    ],
    [
      'a new file in the images dir',
      `file:${join(images, 'ttyS1.log')}`,
      2,
      new RegExp(
        `^error: ${images}/ttyS1\\.log is in the images dir ${images}: a serial port never writes there$`,
        'm',
      ),
    ],
    [
      'a socket in the ISO dir',
      `unix:${join(bed.env.VMS_ISO_DIR!, 'x.sock')} --server`,
      2,
      /is in the ISO dir .*: a serial port never writes there$/m,
    ],
    [
      "another VM's root password file",
      `file:${join(state, s, 'root-password')}`,
      2,
      new RegExp(`root-password is one of vms's own files for VM ${s}$`, 'm'),
    ],
  ];
  for (const [what, spec, code, message] of cases) {
    test(`refused (exit ${code}), nothing changed: ${what}`, async () => {
      const [backend, ...rest] = spec.split(' ');
      const path = backend!.replace(/^(file|unix):/, '');
      if (what.includes('root password')) writeFileSync(path, 'secret\n', { mode: 0o600 });
      const files = [base, path, join(images, `${s1}.qcow2`)];
      const before = snapshot(files);
      const r = await bed.vms(['serial', 'add', s1, '--backend', backend!, ...rest]);
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, message);
      assert.match(
        r.stderr,
        new RegExp(`^hint: give the port a file of its own, e\\.g\\. ${state}/${s1}/ttyS1\\.(log|sock)$`, 'm'),
      );
      assert.deepEqual(snapshot(files), before);
    });
  }

  test('a path of its own is still accepted; the base is unchanged after s1 runs and writes to its ttyS1', async () => {
    const before = sha(base);
    const own = join(state, s1, 'ttyS1.log');
    const r = await bed.vms(['serial', 'add', s1, '--backend', `file:${own}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await bed.vms(['start', s1])).code, 0);
    await bed.guest(s1, 'echo into-ttyS1 > /dev/ttyS1');
    for (let i = 0; i < 50 && !readFileSync(own, 'utf8').includes('into-ttyS1'); i++)
      await new Promise((res) => setTimeout(res, 100));
    assert.match(readFileSync(own, 'utf8'), /into-ttyS1/);
    assert.equal(sha(base), before);
    assert.equal(statSync(base).mode & 0o777, 0o444);
  });
});
