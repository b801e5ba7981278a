import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { testbed } from '../helpers/testbed.js';

// Issue 10: a clone kept SRC's extra `file:` serial ports (and listening unix ports), so both VMs wrote into one file
// and the clone could not have its own socket. The clone gets its own, in its own directory.

const bed = testbed('cser');
after(() => bed.cleanup());

const state = bed.env.VMS_STATE_DIR!;

/** Waits until the file holds `marker` (QEMU drains the UART on its own time under TCG). */
async function fileWith(path: string, marker: string): Promise<string> {
  for (let i = 0; i < 100 && !(existsSync(path) && readFileSync(path, 'utf8').includes(marker)); i++) await sleep(100);
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

describe('clone of a running VM with a file port and a listening unix port', () => {
  const src = bed.name('src');
  const dst = bed.name('dst');
  const srcLog = join(bed.dir, 'ttyS1.log');
  const srcSock = join(bed.dir, 'ttyS2.sock');
  const dstLog = join(state, dst, 'ttyS1.log');
  const dstSock = join(state, dst, 'ttyS2.sock');

  test('the clone gets its own file and socket in its directory, recorded as made for it', async () => {
    await bed.createTiny(src);
    for (const args of [
      ['--backend', `file:${srcLog}`],
      ['--backend', `unix:${srcSock}`, '--server'],
    ]) {
      const r = await bed.vms(['serial', 'add', src, ...args]);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal((await bed.vms(['start', src])).code, 0);
    await bed.guest(src, 'true'); // booted
    const c = await bed.vms(['clone', src, dst]);
    assert.equal(c.code, 0, c.stderr);
    const xml = bed.virsh('dumpxml', dst, '--inactive');
    assert.match(xml, new RegExp(`<serial type='file'>\\s*<source path='${dstLog}' append='on'>`));
    assert.match(xml, new RegExp(`<serial type='unix'>\\s*<source mode='bind' path='${dstSock}'>`));
    assert.ok(!xml.includes(srcLog) && !xml.includes(srcSock), "none of SRC's port files");
    const made = [...xml.matchAll(/<vms:made>([^<]*)<\/vms:made>/g)].map((m) => m[1]);
    assert.ok(made.includes(dstLog) && made.includes(dstSock), made.join(' '));
    assert.match(
      bed.virsh('dumpxml', src, '--inactive'),
      new RegExp(`<source path='${srcLog}' append='on'>`),
      'SRC keeps its own',
    );
  });

  test('both run at once and each writes its own file; both sockets are there', async () => {
    assert.equal((await bed.vms(['start', dst])).code, 0, 'the clone starts beside SRC');
    assert.equal(bed.virsh('domstate', src).trim(), 'running');
    await bed.guest(src, 'echo from-src > /dev/ttyS1');
    await bed.guest(dst, 'echo from-dst > /dev/ttyS1');
    const [a, b] = [await fileWith(srcLog, 'from-src'), await fileWith(dstLog, 'from-dst')];
    assert.match(a, /from-src/);
    assert.doesNotMatch(a, /from-dst/);
    assert.match(b, /from-dst/);
    assert.doesNotMatch(b, /from-src/);
    assert.ok(statSync(srcSock).isSocket() && statSync(dstSock).isSocket());
  });

  test('destroy of the clone removes its port files with its directory', async () => {
    const r = await bed.vms(['destroy', dst, '--yes']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(join(state, dst)), false, r.stdout);
    assert.ok(existsSync(srcLog));
  });
});
