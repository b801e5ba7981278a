import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, test } from 'node:test';
import { GUEST, testbed } from '../helpers/testbed.js';

// Data safety under concurrency, signals and odd combinations (issue 10): every sequence that lost data before runs
// here on the real libvirtd, and the invariants of test/helpers/invariants.ts are checked after each.

const bed = testbed('safety');
after(() => bed.cleanup());

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const journals = () => {
  const dir = join(bed.env.VMS_STATE_DIR!, '.operations');
  return existsSync(dir) ? readdirSync(dir) : [];
};
const assertClean = (foreign: string[] = []) => assert.deepEqual(bed.invariants(foreign), []);

/** Resolves with the exit code (a signal's death counts as 128 + its number) and what was printed. */
function finished(child: ChildProcess): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += d));
  child.stderr?.on('data', (d) => (stderr += d));
  return new Promise((resolve) =>
    child.on('exit', (code, signal) =>
      resolve({ code: code ?? 128 + (signal === 'SIGKILL' ? 9 : 15), stdout, stderr }),
    ),
  );
}

/** Waits until the child's stderr shows `text` (a step it has reached). */
async function reached(child: ChildProcess, text: string, timeoutMs = 60_000): Promise<void> {
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`never reached '${text}': ${seen}`)), timeoutMs);
    child.stderr?.on('data', (d) => {
      seen += d;
      if (seen.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

const destroyAll = async (...names: string[]) => {
  for (const n of names) if (bed.domains().includes(n)) assert.equal((await bed.vms(['destroy', n, '--yes'])).code, 0);
};

describe('concurrency: per-VM locks', () => {
  test('clone racing destroy of SRC: the destroy waits, and the new base survives (sequence 3)', async () => {
    for (const offset of [0, 50, 100]) {
      const [v, v1] = [bed.name(`race${offset}`), bed.name(`race${offset}c`)];
      await bed.createTiny(v);
      const clone = finished(bed.spawnVms(['clone', v, v1]));
      await sleep(offset);
      const destroy = await bed.vms(['destroy', v, '--yes']);
      const c = await clone;
      assert.equal(destroy.code, 0, destroy.stderr);
      if (c.code === 0) {
        const disk = (await bed.vms(['info', v1, '--json'])).json.disks[0].path;
        execFileSync('qemu-img', ['info', '-U', '--backing-chain', disk], { stdio: 'ignore' }); // throws when a backing file is gone
        assert.match(destroy.stdout, /kept .* \(used by /, 'the destroy saw the clone and kept the base');
      } else {
        // The destroy got there first: the clone finds no SRC and makes nothing.
        assert.equal(c.code, 3, c.stderr);
        assert.match(c.stderr, /no VM named/);
        assert.ok(!bed.domains().includes(v1));
      }
      assertClean();
      await destroyAll(v1);
    }
  });

  test('two clones of one SRC: one after the other, no stray overlay', async () => {
    const src = bed.name('twice');
    await bed.createTiny(src);
    const [a, b] = await Promise.all([
      bed.vms(['clone', src, bed.name('twice-a')]),
      bed.vms(['clone', src, bed.name('twice-b')]),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assertClean();
    await destroyAll(bed.name('twice-a'), bed.name('twice-b'), src);
    assertClean();
  });

  test('set --rename racing set --notes: the notes are never lost while "saved" is said', async () => {
    for (const offset of [0, 40]) {
      const [x, y] = [bed.name(`ren${offset}`), bed.name(`ren${offset}-new`)];
      await bed.createTiny(x);
      const rename = bed.vms(['set', x, '--rename', y]);
      await sleep(offset);
      const notes = await bed.vms(['set', x, '--notes', 'keep me']);
      const r = await rename;
      assert.equal(r.code, 0, r.stderr);
      if (notes.code === 0) {
        // The notes went in first, then the rename: the renamed VM has them.
        assert.match(bed.virsh('dumpxml', y, '--inactive'), /<vms:notes>keep me<\/vms:notes>/);
      } else {
        assert.equal(notes.code, 3, notes.stderr); // renamed first: there is no x any more, and it says so
      }
      assertClean();
      await destroyAll(y);
    }
  });

  test('clone racing disk add on SRC: the new disk is never lost from the definition', async () => {
    const [x, z] = [bed.name('cd'), bed.name('cd-c')];
    await bed.createTiny(x);
    const [clone, add] = await Promise.all([
      bed.vms(['clone', x, z]),
      bed.vms(['disk', 'add', x, '--size', '8M', '--json']),
    ]);
    assert.equal(clone.code, 0, clone.stderr);
    assert.equal(add.code, 0, add.stderr);
    assert.ok(bed.virsh('dumpxml', x, '--inactive').includes(add.json.path), 'the added disk is in the definition');
    assertClean();
    await destroyAll(z, x);
    assertClean();
  });

  test('a second command on a busy VM waits briefly, then exits 4 naming the holder; then goes ahead', async () => {
    const vm = bed.name('busy');
    await bed.createTiny(vm, ['--start']);
    await bed.guest(vm, 'killall acpid; true');
    // The guest now ignores ACPI: this stop holds the VM's lock for its whole timeout.
    const stopper = bed.spawnVms(['stop', vm, '--timeout', '60']);
    const stop = finished(stopper);
    await reached(stopper, 'Shutting down');
    const t0 = Date.now();
    const r = await bed.vms(['start', vm], { env: { VMS_LOCK_WAIT: '1' } });
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, new RegExp(`error: ${vm} is busy \\(vms stop, pid ${stopper.pid}\\)`));
    assert.match(r.stderr, /hint: wait for it to finish/);
    assert.ok(Date.now() - t0 >= 1000, 'it waited first');
    stopper.kill('SIGTERM');
    const s = await stop;
    assert.equal(s.code, 130, s.stderr);
    assert.equal((await bed.vms(['kill', vm])).code, 0, 'the lock was let go');
    await destroyAll(vm);
  });
});

describe('signals: SIGHUP and SIGTERM undo like SIGINT', () => {
  for (const signal of ['SIGINT', 'SIGHUP', 'SIGTERM'] as const) {
    test(`${signal} during a clone undoes it all`, async () => {
      const src = bed.name(`sig-${signal}`);
      const dst = bed.name(`sig-${signal}-c`);
      await bed.createTiny(src, ['--start']);
      const before = bed.virsh('dumpxml', src, '--inactive');
      const child = bed.spawnVms(['clone', src, dst]);
      const done = finished(child);
      await reached(child, 'Creating overlays');
      child.kill(signal);
      const r = await done;
      assert.equal(r.code, 130, r.stderr);
      assert.match(r.stderr, /everything this command had made so far was removed/);
      assert.ok(!bed.domains().includes(dst), 'no clone left');
      assert.equal(
        bed.virsh('dumpxml', src, '--inactive'),
        before,
        'SRC is back on its own disk, its metadata as it was',
      );
      assert.deepEqual(
        readdirSync(tmpdir()).filter((f) => f.startsWith(`vms-${child.pid}-`)),
        [],
        'no temp file left',
      );
      assertClean();
      await destroyAll(src);
    });
  }
});

describe('Ctrl-C typed on a terminal while the spinner runs', () => {
  test('reaches vms as SIGINT (the spinner does not swallow it): the clone is undone, exit 130', async () => {
    const src = bed.name('pty');
    const dst = bed.name('pty-c');
    await bed.createTiny(src, ['--start']);
    const before = bed.virsh('dumpxml', src, '--inactive');
    const child = bed.spawnOnTerminal(['clone', src, dst]);
    let screen = '';
    child.stdout!.on('data', (d) => (screen += d));
    const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
    while (!/Freezing|Creating overlays/.test(screen)) await sleep(10);
    child.stdin!.write('\x03'); // the byte a Ctrl-C key sends: the pty turns it into SIGINT, unless the terminal is raw
    const code = await exited;
    assert.equal(code, 130, screen);
    assert.match(screen, /everything this command had made so far was removed/);
    assert.ok(!bed.domains().includes(dst));
    assert.equal(bed.virsh('dumpxml', src, '--inactive'), before);
    assertClean();
    await destroyAll(src);
  });
});

describe('SIGKILL, then the next command finishes the undo', () => {
  /** Kills `args` with SIGKILL when its stderr shows `step`, runs `vms repair`, and returns what repair said. */
  async function killAt(args: string[], step: string) {
    const child = bed.spawnVms(args);
    const done = finished(child);
    await reached(child, step);
    child.kill('SIGKILL');
    await done;
    const repair = await bed.vms(['repair', '--json']);
    assert.equal(repair.code, 0, repair.stderr);
    assert.deepEqual(journals(), [], 'no journal left');
    return repair.json.operations as { command: string; done: string[]; failed: string[] }[];
  }

  test('what a kill left is said by doctor and repair --dry-run, and finished by the next command on the VM', async () => {
    const src = bed.name('kleft');
    await bed.createTiny(src);
    const child = bed.spawnVms(['clone', src, `${src}-c`]);
    const done = finished(child);
    await reached(child, 'Creating overlays');
    child.kill('SIGKILL');
    await done;
    const doctor = (await bed.vms(['doctor', '--json'])).json.checks.find(
      (c: { check: string }) => c.check === 'interrupted',
    );
    assert.equal(doctor.status, 'warn');
    assert.match(doctor.message, new RegExp(`vms clone \\(pid ${child.pid}\\) on ${src}`));
    assert.match(doctor.fix, /vms repair/);
    const dry = await bed.vms(['repair', '--dry-run']);
    assert.equal(dry.code, 0);
    assert.match(dry.stdout, new RegExp(`^vms clone \\(pid ${child.pid}, started .*\\) on ${src}, ${src}-c$`, 'm'));
    assert.ok(dry.stdout.includes(`  to do: remove ${join(bed.env.VMS_IMAGES_DIR!, `${src}-c.qcow2`)}\n`), dry.stdout);
    assert.equal(journals().length, 1, 'a dry run changes nothing');
    // Not repair itself: the next command that touches the VM finishes the undo first.
    const info = await bed.vms(['start', src]);
    assert.equal(info.code, 0, info.stderr);
    assert.match(
      info.stderr,
      new RegExp(`undoing what an interrupted vms clone \\(pid ${child.pid}\\) left half-made`),
    );
    assert.deepEqual(journals(), []);
    assertClean();
    await destroyAll(src);
  });

  test('create: killed at each step, nothing is left', async () => {
    const vm = bed.name('kcreate');
    for (const step of ['Creating disk', 'Defining domain', 'Starting']) {
      await killAt(createArgs(vm), step);
      const exists = bed.domains().includes(vm);
      // Killed before the undo step could be written, or after the work was done: either no VM, or a whole one.
      if (exists) assert.equal((await bed.vms(['destroy', vm, '--yes'])).code, 0);
      assertClean();
    }
  });

  for (const running of [false, true]) {
    test(`clone of a ${running ? 'running' : 'shut-off'} SRC: killed at each step, SRC is as it was`, async () => {
      const src = bed.name(`kclone${running ? 'r' : 's'}`);
      const dst = `${src}-c`;
      await bed.createTiny(src, running ? ['--start'] : []);
      for (const step of ['Freezing', 'Creating overlays', `Defining ${dst}`, `Switching ${src}`]) {
        const before = bed.virsh('dumpxml', src, '--inactive');
        await killAt(['clone', src, dst], step);
        if (bed.domains().includes(dst)) {
          // It got to the end before the kill landed: a whole clone, with SRC on its overlay.
          assert.match(bed.virsh('dumpxml', src, '--inactive'), /<vms:base>/);
          assertClean();
          assert.equal((await bed.vms(['destroy', dst, '--yes'])).code, 0);
        } else {
          assert.equal(bed.virsh('dumpxml', src, '--inactive'), before, `killed at '${step}': SRC is back as it was`);
        }
        if (running) assert.equal(bed.virsh('domstate', src).trim(), 'running');
        assertClean();
      }
      await destroyAll(src);
    });
  }

  test('disk add: killed at each step, the VM has no half-added disk and no stray file', async () => {
    const vm = bed.name('kdisk');
    await bed.createTiny(vm, ['--start']);
    const before = bed.virsh('dumpxml', vm, '--inactive');
    for (const step of ['Creating disk', 'Attaching']) {
      await killAt(['disk', 'add', vm, '--size', '8M'], step);
      const now = bed.virsh('dumpxml', vm, '--inactive');
      // Either undone (the definition as it was) or whole (the disk and its record in the metadata).
      if (now !== before) assert.match(now, /<vms:made>[^<]*-data(-\d+)?\.qcow2<\/vms:made>/);
      const liveHas = /-data(-\d+)?\.qcow2/.test(bed.virsh('domblklist', vm));
      const savedHas = /<source file='[^']*-data(-\d+)?\.qcow2'/.test(now);
      assert.equal(liveHas, savedHas, 'the running VM and its definition agree');
      assertClean();
    }
    await destroyAll(vm);
  });

  test('snapshot create: killed while libvirt takes it, the next command deletes it again', async () => {
    for (const external of [false, true]) {
      const vm = bed.name(`ksnap${external ? 'x' : 'i'}`);
      await bed.createTiny(vm, ['--start']);
      const before = bed.virsh('dumpxml', vm, '--inactive');
      await killAt(['snapshot', 'create', vm, 'k1', ...(external ? ['--external'] : [])], 'Taking');
      const left = bed.virsh('snapshot-list', vm, '--name').trim();
      // The kill landed before the journal entry (nothing taken) or after: the repair took it back.
      assert.equal(left, '', `no snapshot is left: ${left}`);
      assert.equal(bed.virsh('dumpxml', vm, '--inactive'), before, 'the VM is on its own disk again');
      assert.equal(bed.virsh('domstate', vm).trim(), 'running');
      assertClean();
      await destroyAll(vm);
    }
  });

  test('destroy: killed midway, the next command finishes it', async () => {
    for (const step of ['Undefining', 'Removing disks']) {
      const vm = bed.name('kdestroy');
      const made = await bed.createTiny(vm, ['--start']);
      const ops = await killAt(['destroy', vm, '--yes'], step);
      assert.ok(!bed.domains().includes(vm), 'the VM is gone');
      assert.ok(!existsSync(made.disks[0].path), 'its disk is gone');
      if (ops.length) assert.deepEqual(ops[0]!.failed, []);
      assertClean();
    }
  });
});

function createArgs(vm: string): string[] {
  return [
    'create',
    vm,
    '--bare',
    '--memory',
    '256M',
    '--cpus',
    '1',
    '--disk',
    '64M',
    '--network',
    'none',
    '--no-graphics',
    '--start',
    '--kernel',
    GUEST.kernel,
    '--initrd',
    GUEST.initrd,
    '--cmdline',
    'console=ttyS0',
  ];
}

describe('files vms did not make', () => {
  test('a clone refuses to freeze a disk attached from outside; --full copies it; destroy never deletes it (sequence 1)', async () => {
    const outside = join(bed.dir, 'outside');
    mkdirSync(outside, { recursive: true });
    const ext = join(outside, 'ext.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', ext, '16M']);
    const [mode, sum] = [statSync(ext).mode, sha(ext)];
    const e = bed.name('ext');
    await bed.createTiny(e);
    assert.equal((await bed.vms(['disk', 'attach', e, ext])).code, 0);
    const before = bed.virsh('dumpxml', e, '--inactive');

    const r = await bed.vms(['clone', e, bed.name('ext-c')]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`error: ${e}'s disk vdb \\(${ext}\\) was not made by vms: a linked clone would freeze it read-only`),
    );
    assert.match(r.stderr, /hint: use --full .*vms disk detach/);
    assert.equal(bed.virsh('dumpxml', e, '--inactive'), before, 'nothing changed');
    assert.equal(statSync(ext).mode, mode);

    const full = await bed.vms(['clone', e, bed.name('ext-c'), '--full']);
    assert.equal(full.code, 0, full.stderr);
    await destroyAll(bed.name('ext-c'), e);
    assert.equal(statSync(ext).mode, mode, 'never chmodded');
    assert.equal(sha(ext), sum, 'never written');
    assertClean();
  });

  test('one VM with a missing backing file blocks no destroy: its own goes with a warning, the others as ever', async () => {
    const [x, y, w] = [bed.name('brk-x'), bed.name('brk-y'), bed.name('brk-w')];
    const base = (await bed.createTiny(x)).disks[0].path;
    assert.equal((await bed.vms(['clone', x, y])).code, 0);
    await bed.createTiny(w);
    const moved = join(bed.dir, 'moved-away.qcow2');
    renameSync(base, moved); // the user moved the base away: x and y cannot be read

    const rw = await bed.vms(['destroy', w, '--yes'], { skipInvariants: true });
    assert.equal(rw.code, 0, rw.stderr);
    const ry = await bed.vms(['destroy', y, '--yes'], { skipInvariants: true });
    assert.equal(ry.code, 0, ry.stderr);
    assert.match(ry.stdout, /kept \(the backing files of .*\) \(its backing chain cannot be read/);
    assert.ok(!bed.domains().includes(y));
    renameSync(moved, base);
    assert.equal((await bed.vms(['destroy', x, '--yes'])).code, 0);
    assertClean();
  });
});

describe('honest exit codes', () => {
  test('destroy after an external snapshot removes the overlays and the memory file vms made', async () => {
    const vm = bed.name('extsnap');
    const made = await bed.createTiny(vm, ['--start']);
    const r = await bed.vms(['snapshot', 'create', vm, 's1', '--external']);
    assert.equal(r.code, 0, r.stderr);
    const d = await bed.vms(['destroy', vm, '--yes', '--json']);
    assert.equal(d.code, 0, d.stderr);
    assert.ok(d.json.removed.includes(made.disks[0].path), 'the original disk goes: vms made it');
    assert.ok(
      d.json.removed.some((f: string) => f.endsWith('.s1')),
      `the overlay goes: ${d.json.removed}`,
    );
    assert.deepEqual(
      readdirSync(bed.env.VMS_IMAGES_DIR!).filter((f) => f.startsWith(vm)),
      [],
    );
    assert.ok(!existsSync(join(bed.env.VMS_STATE_DIR!, vm)), 'the memory file and the directory are gone');
    assertClean();
  });

  test('destroy interrupted while it plans exits 130 or finishes, never 1', async () => {
    for (const offset of [0, 20, 60]) {
      const vm = bed.name(`dint${offset}`);
      await bed.createTiny(vm);
      const child = bed.spawnVms(['destroy', vm, '--yes']);
      const done = finished(child);
      // From the moment it holds the VM (its journal is there) it plans; the offsets land in the planning or later.
      while (journals().length === 0) await sleep(5);
      await sleep(offset);
      child.kill('SIGINT');
      const r = await done;
      assert.ok(r.code === 0 || r.code === 130, `exit ${r.code}: ${r.stderr}`);
      assert.equal(bed.domains().includes(vm), r.code === 130, 'the VM is gone exactly when destroy said so');
      if (r.code === 130) await destroyAll(vm);
      assertClean();
    }
  });
});
