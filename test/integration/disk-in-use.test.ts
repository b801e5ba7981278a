import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { testbed } from '../helpers/testbed.js';

// Whose file is it? `vms disk attach` of a file another VM uses (issue 10, sequence 4), and `vms disk add`/`detach`
// going by metadata.made instead of "lies in the images dir".

const bed = testbed('diu');
after(() => bed.cleanup());

const images = bed.env.VMS_IMAGES_DIR!;
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
/** A file as a refusal must leave it: its content and its mode. */
const fileState = (path: string) => ({ sha: sha(path), mode: (statSync(path).mode & 0o777).toString(8) });
const saved = (vm: string) => bed.virsh('dumpxml', vm, '--inactive');

describe('disk attach of a file another VM uses', () => {
  const b = bed.name('b');
  const g = bed.name('g');
  const s = bed.name('s');
  const u = bed.name('u');
  const bDisk = join(images, `${b}.qcow2`);
  const base = join(images, `${s}.qcow2`); // s's disk, frozen by the clone: the base under s's and u's overlays

  before(async () => {
    await bed.createTiny(b);
    await bed.createTiny(g);
    await bed.createTiny(s);
    const c = await bed.vms(['clone', s, u]);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(fileState(base).mode, '444');
  });

  /** Runs an attach that must be refused: exit 4, the message and hint, and nothing changed on any side. */
  async function refused(args: string[], message: RegExp, hint: RegExp, file: string) {
    const before = { g: saved(g), b: saved(b), s: saved(s), u: saved(u), file: fileState(file) };
    const r = await bed.vms(['disk', 'attach', g, ...args]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, message);
    assert.match(r.stderr, hint);
    assert.deepEqual({ g: saved(g), b: saved(b), s: saved(s), u: saved(u), file: fileState(file) }, before);
  }

  test("b's boot disk (b shut off) is refused, even --readonly: b writes it", async () => {
    const copy = `attach a copy of it \\(cp --sparse=always ${bDisk} COPY, with ${b} shut off\\)`;
    await refused(
      [bDisk],
      new RegExp(`^error: ${bDisk} is in use: it is ${b}'s disk$`, 'm'),
      new RegExp(`^hint: ${copy}; vms attaches no file another VM writes, not even read-only$`, 'm'),
      bDisk,
    );
    await refused(
      [bDisk, '--readonly'],
      new RegExp(`^error: ${bDisk} is in use: it is ${b}'s disk$`, 'm'),
      /not even read-only/,
      bDisk,
    );
    // Named through a symlink or with "..": the same file.
    execFileSync('ln', ['-s', bDisk, join(bed.dir, 'alias.qcow2')]);
    await refused([join(bed.dir, 'alias.qcow2')], /is in use: it is .*-b's disk$/m, /attach a copy/, bDisk);
    await refused(
      [join(images, '..', 'images', `${b}.qcow2`)],
      /is in use: it is .*-b's disk$/m,
      /attach a copy/,
      bDisk,
    );
    assert.equal((await bed.vms(['start', b])).code, 0, 'b still starts on its own disk');
    assert.equal((await bed.vms(['kill', b])).code, 0);
  });

  test('the frozen base of a clone is refused writable, naming the VMs on it, with the way out', async () => {
    await refused(
      [base],
      new RegExp(
        `^error: ${base} is in use: it is a base under (${s}|${u})'s disk \\S+, and used by (${u}|${s})$`,
        'm',
      ),
      new RegExp(
        `^hint: attach a copy of it \\(cp --sparse=always ${base} COPY\\), or attach it with --readonly: the VMs that use it only read it$`,
        'm',
      ),
      base,
    );
  });

  test('the frozen base with --readonly: attached read-only; the guest reads it, the base does not change', async () => {
    const before = fileState(base);
    const r = await bed.vms(['disk', 'attach', g, base, '--readonly', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([r.json.target, r.json.readonly, r.json.destroyedWithVm], ['vdb', true, false]);
    assert.match(saved(g), new RegExp(`<source file='${base}'/>\\s*<target dev='vdb' bus='virtio'/>\\s*<readonly/>`));
    assert.equal((await bed.vms(['start', g])).code, 0);
    assert.equal((await bed.vms(['start', u])).code, 0, 'a VM standing on the base starts beside it');
    assert.match(
      await bed.guest(g, 'cat /sys/block/vdb/ro; dd if=/dev/vdb of=/dev/null bs=64k 2>&1 | tail -1'),
      /^1$/m,
    );
    assert.deepEqual(fileState(base), before);
    for (const vm of [g, u]) assert.equal((await bed.vms(['kill', vm])).code, 0);
    assert.deepEqual(fileState(base), before);
  });
});

describe('disk add and detach go by metadata.made', () => {
  const n = bed.name('m');
  const user = join(images, 'user-image.qcow2'); // the user's own image, lying in the images dir
  let added = '';

  before(async () => {
    await bed.createTiny(n);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', user, '16M']);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 1M', user], { stdio: 'ignore' });
  });

  test('disk add records the new file in metadata.made, in the definition that has the disk', async () => {
    const r = await bed.vms(['disk', 'add', n, '--size', '16M', '--json']);
    assert.equal(r.code, 0, r.stderr);
    added = r.json.path;
    assert.deepEqual([r.json.target, r.json.destroyedWithVm, r.json.created], ['vdb', true, true]);
    const xml = saved(n);
    assert.match(xml, new RegExp(`<source file='${added}'/>\\s*<target dev='vdb' bus='virtio'/>`));
    assert.deepEqual(
      [...xml.matchAll(/<vms:made>([^<]*)<\/vms:made>/g)].map((m) => m[1]),
      [join(images, `${n}.qcow2`), added],
    );
  });

  test("a user's image in the images dir is attached as the user's: not recorded, never deleted by detach --delete", async () => {
    const r = await bed.vms(['disk', 'attach', n, user, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([r.json.target, r.json.destroyedWithVm, r.json.created], ['vdc', false, false]);
    assert.doesNotMatch(saved(n), /<vms:made>[^<]*user-image/);
    const text = await bed.vms(['disk', 'list', n]);
    assert.equal(text.code, 0);

    const before = { xml: saved(n), file: fileState(user) };
    const d = await bed.vms(['disk', 'detach', n, 'vdc', '--delete']);
    assert.equal(d.code, 4, d.stderr);
    assert.match(d.stderr, new RegExp(`^error: vms will not delete ${user}: vms did not make it for ${n}$`, 'm'));
    assert.match(d.stderr, /^hint: nothing was changed; detach it without --delete to keep the file$/m);
    assert.deepEqual({ xml: saved(n), file: fileState(user) }, before);
  });

  test('detach --delete of the added disk deletes it and its record, in one go', async () => {
    const r = await bed.vms(['disk', 'detach', n, 'vdb', '--delete', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.deleted, true);
    assert.equal(existsSync(added), false);
    assert.doesNotMatch(saved(n), new RegExp(`${n}-data`));
  });

  // destroy deletes only metadata.made and bases files; the made record of a disk vms added is what lets it go.
  test('destroy removes the disk vms added and keeps the user image attached from the images dir, unchanged', async () => {
    const add = await bed.vms(['disk', 'add', n, '--size', '16M', '--json']);
    assert.equal(add.code, 0, add.stderr);
    const before = fileState(user);
    const r = await bed.vms(['destroy', n, '--yes', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(user), 'the user image is still there');
    assert.deepEqual(fileState(user), before);
    assert.equal(existsSync(join(images, `${n}.qcow2`)), false, 'its own disk is gone');
    assert.equal(existsSync(add.json.path), false, 'the disk vms added is gone');
  });
});
