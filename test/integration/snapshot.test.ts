import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { shellQuote } from '../../src/quote.js';
import { testbed } from '../helpers/testbed.js';

const bed = testbed('snap');
after(() => {
  // The bed's cleanup undefines without --snapshots-metadata, which libvirt refuses for a VM with snapshots.
  for (const d of bed.domains()) {
    if (state(d) !== 'shut off') bed.virsh('destroy', d);
    bed.virsh('undefine', d, '--nvram', '--snapshots-metadata');
  }
  bed.cleanup();
});

// The tiny guest has no filesystem on its disk: a marker is written raw at 4M into /dev/vda and read back from there.
const MARKER_SECTOR = 8192;
const MARKER_BYTES = 16;

async function writeMarker(vm: string, text: string): Promise<void> {
  await bed.guest(
    vm,
    `printf '%-${MARKER_BYTES}s' ${text} | dd of=/dev/vda bs=512 seek=${MARKER_SECTOR} conv=notrunc,fsync 2>/dev/null && sync`,
  );
}

async function readMarker(vm: string): Promise<string> {
  // Dropping the page cache: the answer comes from the disk, not from what the guest remembers writing (dmesg -n 1:
  // without the kernel's note about it on the console).
  const out = await bed.guest(
    vm,
    `dmesg -n 1; echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=512 skip=${MARKER_SECTOR} count=1 2>/dev/null | head -c ${MARKER_BYTES}`,
  );
  return out.trim();
}

/** The marker in a shut-off VM's disk, read on the host. */
function diskMarker(disk: string): string {
  const raw = join(bed.dir, 'marker.raw');
  execFileSync('qemu-img', ['convert', '-O', 'raw', disk, raw]);
  const fd = openSync(raw, 'r');
  const buf = Buffer.alloc(MARKER_BYTES);
  readSync(fd, buf, 0, MARKER_BYTES, MARKER_SECTOR * 512);
  closeSync(fd);
  return buf.toString().trim();
}

const snapshotNames = (vm: string) => bed.virsh('snapshot-list', vm, '--name').split('\n').filter(Boolean);
const definition = (vm: string) => bed.virsh('dumpxml', vm, '--inactive');
const state = (vm: string) => bed.virsh('domstate', vm).trim();
const diskOf = (vm: string) => /vda\s+(\S+)/.exec(bed.virsh('domblklist', vm))![1]!;

/** What a refused command must leave as it was. */
async function snapshotOfState(vm: string) {
  return { definition: definition(vm), state: state(vm), snapshots: snapshotNames(vm), disk: diskOf(vm) };
}

describe('internal snapshots (qcow2)', () => {
  const vm = bed.name('vm');
  before(() => bed.createTiny(vm, ['--start']));

  test('taken running, with the memory: revert --yes brings back disk and memory, and the console answers', async () => {
    await writeMarker(vm, 'disk-A');
    await bed.guest(vm, 'echo mem-A > /tmp/mem');
    const r = await bed.vms(['snapshot', 'create', vm, 'live', '--description', 'marker A', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      [r.json.name, r.json.kind, r.json.state, r.json.withMemory, r.json.current, r.json.description],
      ['live', 'internal', 'running', true, true, 'marker A'],
    );
    await writeMarker(vm, 'disk-B');
    await bed.guest(vm, 'echo mem-B > /tmp/mem');
    assert.equal(await readMarker(vm), 'disk-B');

    const revert = await bed.vms(['snapshot', 'revert', vm, 'live', '--yes']);
    assert.equal(revert.code, 0, revert.stderr);
    assert.equal(revert.stdout.trim(), `${vm} reverted to live: running`);
    assert.equal((await bed.guest(vm, 'cat /tmp/mem')).trim(), 'mem-A', "the memory is the snapshot's");
    assert.equal(await readMarker(vm), 'disk-A', "the disk is the snapshot's");
  });

  test('revert without --yes and no terminal: exit 2 with a hint, nothing changed', async () => {
    await writeMarker(vm, 'disk-C');
    const before = await snapshotOfState(vm);
    const r = await bed.vms(['snapshot', 'revert', vm, 'live']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `^error: refusing to revert ${vm} to live without confirmation\nhint: .*add --yes \\(no terminal to ask on\\)\n$`,
      ),
    );
    assert.deepEqual(await snapshotOfState(vm), before);
    assert.equal(await readMarker(vm), 'disk-C');
  });

  test('on a terminal it says what is lost and asks; "n": exit 4, nothing changed', async () => {
    const before = await snapshotOfState(vm);
    const { code, out } = bed.onTerminal(['snapshot', 'revert', vm, 'live'], 'n\n');
    assert.equal(code, 4, out);
    assert.match(
      out,
      new RegExp(
        `This reverts ${vm} \\(running\\) to snapshot live, taken \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d \\(running\\)`,
      ),
    );
    assert.match(out, /Its present state \(its disks and memory\) is lost/);
    assert.match(out, /Revert\? \[y\/N\]/);
    assert.match(out, /error: not reverted\r?\nhint: nothing was changed/);
    assert.deepEqual(await snapshotOfState(vm), before);
    assert.equal(await readMarker(vm), 'disk-C');
  });

  test('on a terminal, "y" reverts', async () => {
    const { code, out } = bed.onTerminal(['snapshot', 'revert', vm, 'live'], 'y\n');
    assert.equal(code, 0, out);
    assert.match(out, new RegExp(`${vm} reverted to live: running`));
    assert.equal(await readMarker(vm), 'disk-A');
  });

  test('taken shut off: disks only; revert leaves the VM shut off, and it boots with the old disk', async () => {
    await writeMarker(vm, 'disk-D');
    assert.equal((await bed.vms(['kill', vm])).code, 0);
    const r = await bed.vms(['snapshot', 'create', vm, 'off', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([r.json.state, r.json.withMemory, r.json.kind], ['shut off', false, 'internal']);
    await bed.vms(['start', vm]);
    await writeMarker(vm, 'disk-E');

    const revert = await bed.vms(['snapshot', 'revert', vm, 'off', '--yes', '--json']);
    assert.equal(revert.code, 0, revert.stderr);
    assert.equal(revert.json.state, 'shut off');
    assert.equal(state(vm), 'shut off');
    await bed.vms(['start', vm]);
    assert.equal(await readMarker(vm), 'disk-D');
  });

  test('list: name, time, state, kind, current and description, oldest first', async () => {
    const r = await bed.vms(['snapshot', 'list', vm, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.json.map((s: any) => [s.name, s.state, s.kind, s.current, s.description]),
      [
        ['live', 'running', 'internal', false, 'marker A'],
        ['off', 'shut off', 'internal', true, undefined],
      ],
    );
    assert.ok(
      r.json.every((s: any) => Math.abs(Date.parse(s.created) - Date.now()) < 10 * 60_000),
      'created: a recent time',
    );
    const human = (await bed.vms(['snapshot', 'list', vm])).stdout;
    assert.match(human, /^NAME\s+CREATED\s+STATE\s+KIND\s+CURRENT\s+REVERTABLE\s+DESCRIPTION$/m);
    assert.match(human, /^live\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+running\s+internal\s+-\s+yes\s+marker A$/m);
    assert.match(human, /^off\s+\S+ \S+\s+shut off\s+internal\s+yes\s+yes$/m);
  });

  test('a name already taken: exit 4, nothing changed', async () => {
    const before = await snapshotOfState(vm);
    const r = await bed.vms(['snapshot', 'create', vm, 'off']);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, new RegExp(`error: ${vm} already has a snapshot named 'off'`));
    assert.deepEqual(await snapshotOfState(vm), before);
  });

  test('without a name: named by the time', async () => {
    const r = await bed.vms(['snapshot', 'create', vm, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.json.name, /^\d{8}-\d{6}$/);
    assert.ok(snapshotNames(vm).includes(r.json.name));
  });

  test('delete removes the snapshot, its metadata and its data in the qcow2', async () => {
    const disk = diskOf(vm);
    const internal = () => execFileSync('qemu-img', ['snapshot', '-U', '-l', disk], { encoding: 'utf8' });
    assert.match(internal(), /\blive\b/);
    const r = await bed.vms(['snapshot', 'delete', vm, 'live']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `${vm}: snapshot live deleted`);
    assert.ok(!snapshotNames(vm).includes('live'));
    assert.doesNotMatch(internal(), /\blive\b/);
    assert.equal(await readMarker(vm), 'disk-D', 'the present state stays');
  });

  test('unknown VM (every subcommand) and unknown snapshot: exit 3 with a hint', async () => {
    const ghost = bed.name('ghost');
    for (const args of [
      ['create', ghost],
      ['list', ghost],
      ['revert', ghost, 'x', '--yes'],
      ['delete', ghost, 'x'],
    ]) {
      const r = await bed.vms(['snapshot', ...args]);
      assert.equal(r.code, 3, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /error: no VM named '.*-ghost'\nhint: `vms list` shows the VMs/);
    }
    const before = await snapshotOfState(vm);
    for (const args of [
      ['revert', vm, 'nope', '--yes'],
      ['delete', vm, 'nope'],
    ]) {
      const r = await bed.vms(['snapshot', ...args]);
      assert.equal(r.code, 3, `${args.join(' ')}: ${r.stderr}`);
      assert.match(
        r.stderr,
        new RegExp(`error: ${vm} has no snapshot named 'nope'\nhint: \`vms snapshot list ${vm}\` shows its snapshots`),
      );
    }
    assert.deepEqual(await snapshotOfState(vm), before);
  });

  test('destroy removes a running VM with internal snapshots and leaves nothing', async () => {
    assert.ok(snapshotNames(vm).length >= 2);
    const r = await bed.vms(['destroy', vm, '--yes']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      bed.domains().filter((d) => d === vm),
      [],
    );
    assert.deepEqual(
      readdirSync(bed.env.VMS_IMAGES_DIR!).filter((f) => f.startsWith(vm)),
      [],
    );
    assert.equal(existsSync(join(bed.env.VMS_STATE_DIR!, vm)), false);
  });
});

describe('a raw disk', () => {
  const vm = bed.name('raw');
  before(async () => {
    const made = await bed.createTiny(vm);
    const raw = made.disks[0].path.replace(/\.qcow2$/, '.img');
    execFileSync('qemu-img', ['convert', '-O', 'raw', made.disks[0].path, raw]);
    // The disk's source only: the path is in the metadata (<vms:made>) too, and stays there.
    const xml = definition(vm)
      .replace("type='qcow2'", "type='raw'")
      .replace(`file='${made.disks[0].path}'`, `file='${raw}'`);
    const file = join(bed.dir, 'raw.xml');
    writeFileSync(file, xml);
    bed.virsh('define', file);
  });

  test('an internal snapshot is refused with a clear message and a hint; nothing changed', async () => {
    const before = await snapshotOfState(vm);
    const r = await bed.vms(['snapshot', 'create', vm, 's1']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `error: ${vm}'s disk vda \\(.*\\.img\\) is raw: internal snapshots need qcow2 disks\nhint: use --external`,
      ),
    );
    assert.deepEqual(await snapshotOfState(vm), before);
  });

  test('--external: the disk stays as it is under a qcow2 overlay; revert is refused on libvirt 9.0; delete merges it back', async () => {
    const disk = diskOf(vm);
    const r = await bed.vms(['snapshot', 'create', vm, 'ext', '--external']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `${vm}: external snapshot ext taken (shut off: disks)`);
    const overlay = disk.replace(/\.img$/, '.ext');
    assert.equal(diskOf(vm), overlay, 'the VM goes on from the overlay');
    assert.match(r.stderr, /note: libvirt 9\.0\.0 cannot revert to external snapshots \(libvirt ≥ 9\.9 can\)/);

    const before = await snapshotOfState(vm);
    const revert = await bed.vms(['snapshot', 'revert', vm, 'ext', '--yes']);
    assert.equal(revert.code, 4, revert.stderr);
    assert.match(
      revert.stderr,
      /^error: libvirt 9\.0\.0 cannot revert to an external snapshot \(libvirt ≥ 9\.9 can\)\nhint: nothing was changed; `vms snapshot delete/,
    );
    assert.deepEqual(await snapshotOfState(vm), before);

    const del = await bed.vms(['snapshot', 'delete', vm, 'ext']);
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stdout, /snapshot ext deleted \(its overlay merged into the present state\)/);
    assert.equal(diskOf(vm), disk);
    assert.equal(existsSync(overlay), false);
    assert.deepEqual(snapshotNames(vm), []);
  });
});

describe('a UEFI VM on libvirt 9.0', () => {
  const vm = bed.name('efi');
  before(() => bed.createTiny(vm, ['--firmware', 'efi', '--memory', '1G', '--start']));

  test('running: an internal snapshot is refused by libvirt, told with the way out; nothing changed', async () => {
    await bed.guest(vm, 'true'); // booted
    const before = await snapshotOfState(vm);
    const r = await bed.vms(['snapshot', 'create', vm, 'int']);
    assert.equal(r.code, 4, r.stderr);
    assert.match(
      r.stderr,
      /error: internal snapshots of a running UEFI VM need libvirt ≥ 10\.10 with the NVRAM in qcow2 format \(this is libvirt 9\.0\.0\)\n/,
    );
    assert.match(r.stderr, new RegExp(`hint: use --external, or shut ${vm} off first`));
    assert.deepEqual(await snapshotOfState(vm), before);
  });

  test('running, --external: disks and memory go to new files; delete merges the overlay and removes the memory file', async () => {
    await writeMarker(vm, 'efi-A');
    const disk = diskOf(vm);
    const r = await bed.vms(['snapshot', 'create', vm, 'ext', '--external', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([r.json.kind, r.json.state, r.json.withMemory], ['external', 'running', true]);
    assert.equal(r.json.memoryFile, join(bed.env.VMS_STATE_DIR!, vm, 'snapshot-ext.mem'));
    assert.ok(existsSync(r.json.memoryFile));
    assert.equal(state(vm), 'running');
    await writeMarker(vm, 'efi-B');

    const list = await bed.vms(['snapshot', 'list', vm]);
    assert.match(list.stdout, /^ext\s+\S+ \S+\s+running\s+external\s+yes\s+no$/m);
    const refused = await bed.vms(['snapshot', 'revert', vm, 'ext', '--yes']);
    assert.equal(refused.code, 4, refused.stderr);
    assert.match(refused.stderr, /cannot revert to an external snapshot/);

    const del = await bed.vms(['snapshot', 'delete', vm, 'ext', '--json']);
    assert.equal(del.code, 0, del.stderr);
    assert.deepEqual(del.json, { name: vm, snapshot: 'ext', kind: 'external', removed: [r.json.memoryFile] });
    assert.equal(existsSync(r.json.memoryFile), false);
    assert.equal(diskOf(vm), disk, 'back on its own disk');
    assert.equal(state(vm), 'running');
    assert.equal(await readMarker(vm), 'efi-B', 'the present state is kept');
  });

  test('shut off: an internal snapshot works (disks, not the NVRAM, and it says so); revert brings the disk back', async () => {
    assert.equal((await bed.vms(['kill', vm])).code, 0);
    const disk = diskOf(vm);
    const r = await bed.vms(['snapshot', 'create', vm, 'off']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${vm}: internal snapshot off taken \\(shut off: disks\\)$`, 'm'));
    assert.match(r.stderr, /note: the UEFI NVRAM \(boot entries\) is not part of the snapshot/);
    assert.equal(diskMarker(disk), 'efi-B');
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5a ${MARKER_SECTOR * 512} ${MARKER_BYTES}`, disk]);
    assert.equal(diskMarker(disk), 'Z'.repeat(MARKER_BYTES));
    const revert = await bed.vms(['snapshot', 'revert', vm, 'off', '--yes']);
    assert.equal(revert.code, 0, revert.stderr);
    assert.equal(diskMarker(disk), 'efi-B');
  });
});

/** The files vms says it made for a VM (its saved definition's metadata). */
const madeFiles = (vm: string) => [...definition(vm).matchAll(/<vms:made>([^<]*)<\/vms:made>/g)].map((m) => m[1]!);
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
/** Every file of the bed's images and state dirs, for "nothing was left behind". */
const bedFiles = () =>
  [bed.env.VMS_IMAGES_DIR!, bed.env.VMS_STATE_DIR!]
    .flatMap((d) => readdirSync(d, { recursive: true, encoding: 'utf8' }).map((f) => join(d, f)))
    .sort();

/** A running tiny guest that has booted (its console answers). */
async function startBooted(vm: string): Promise<void> {
  await bed.createTiny(vm, ['--start']);
  await bed.guest(vm, 'true');
}

// Running, libvirt takes and reverts the snapshot through QEMU; shut off, with qemu-img on the file itself (which, as
// root, writes a 0444 base all the same).
for (const taken of ['running', 'shut off'] as const)
  describe(`an internal snapshot taken ${taken} before \`vms clone\` (its data now in the frozen base)`, () => {
    const s = bed.name(taken === 'running' ? 's' : 'os');
    const u = bed.name(taken === 'running' ? 'u' : 'ou');
    let base = '';
    const kill = async () => assert.equal((await bed.vms(['kill', s])).code, 0);
    before(async () => {
      await bed.createTiny(s, ['--start']);
      await writeMarker(s, 'old');
      if (taken === 'shut off') await kill();
      assert.equal((await bed.vms(['snapshot', 'create', s, 'snap1'])).code, 0);
      if (taken === 'shut off') assert.equal((await bed.vms(['start', s])).code, 0);
      await writeMarker(s, 'new');
      base = diskOf(s);
      if (taken === 'shut off') await kill();
      const clone = await bed.vms(['clone', s, u]);
      assert.equal(clone.code, 0, clone.stderr);
      if (taken === 'running') await kill();
    });

    /** What the refusals must leave as it was: the base's bytes and mode, both definitions, the snapshots. */
    const world = () => ({
      sha: sha256(base),
      mode: statSync(base).mode & 0o777,
      s: definition(s),
      u: definition(u),
      snapshots: snapshotNames(s),
      files: bedFiles(),
    });

    test('revert and delete are refused (exit 4) with the way out; the base, both definitions and the files are unchanged', async () => {
      const before = world();
      assert.equal(before.mode, 0o444);
      const revert = await bed.vms(['snapshot', 'revert', s, 'snap1', '--yes']);
      assert.equal(revert.code, 4, revert.stderr);
      assert.equal(
        revert.stderr,
        `error: cannot revert snap1 of ${s}: snap1's data lie in ${base}, a read-only base vms froze for linked clones (\`vms clone\`), which must not change\n` +
          `hint: nothing was changed; its disk can be copied out of that file: \`qemu-img convert -l snap1 -O qcow2 ${shellQuote(base)} NEW.qcow2\`\n`,
      );
      const del = await bed.vms(['snapshot', 'delete', s, 'snap1']);
      assert.equal(del.code, 4, del.stderr);
      assert.equal(
        del.stderr,
        `error: cannot delete snap1 of ${s}: snap1's data lie in ${base}, a read-only base vms froze for linked clones (\`vms clone\`), which must not change\n` +
          `hint: nothing was changed; it goes with the base, when the last VM on it is destroyed; \`virsh snapshot-delete ${s} snap1 --metadata\` takes it off the list without touching any file\n`,
      );
      assert.deepEqual(world(), before);
    });

    test('list shows it as not revertable', async () => {
      const r = await bed.vms(['snapshot', 'list', s, '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(
        r.json.map((x: any) => [x.name, x.revertable]),
        [['snap1', false]],
      );
      assert.match(
        (await bed.vms(['snapshot', 'list', s])).stdout,
        new RegExp(`^snap1\\s+\\S+ \\S+\\s+${taken}\\s+internal\\s+yes\\s+no$`, 'm'),
      );
    });

    test("the hint's way out is true: the copied-out disk holds the snapshot's data", () => {
      const copy = join(bed.dir, 'snap1-copy.qcow2');
      execFileSync('qemu-img', ['convert', '-l', 'snap1', '-O', 'qcow2', base, copy]);
      assert.equal(diskMarker(copy), 'old');
    });

    test('both VMs still start and read what they read before', async () => {
      for (const vm of [s, u]) {
        const r = await bed.vms(['start', vm]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await readMarker(vm), 'new', vm);
      }
    });
  });

/**
 * Runs `snapshot create`, sends SIGINT `offsetMs` after libvirt was asked to take the snapshot (unless the command has
 * already printed its result), and returns how it ended.
 */
async function interruptedCreate(args: string[], offsetMs: number) {
  const child = bed.spawnVms(['snapshot', 'create', ...args]);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.on('exit', (code, signal) => r({ code, signal })),
  );
  while (!/==> Taking/.test(stderr) && child.exitCode === null) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, offsetMs));
  if (stdout === '' && child.exitCode === null) child.kill('SIGINT');
  return { ...(await exited), stdout, stderr };
}

describe('Ctrl-C during `snapshot create`: 130 only when the snapshot was taken back, 0 when it was kept', () => {
  // Running, libvirt takes a snapshot through QEMU (with the memory: long enough to land in); shut off, with qemu-img.
  const cases = [
    { kind: 'internal', running: true, offsets: [0, 100, 250, 400, 700] },
    { kind: 'external', running: true, offsets: [0, 100, 250, 400, 700] },
    { kind: 'internal', running: false, offsets: [0, 20, 50, 100, 200] },
    { kind: 'external', running: false, offsets: [0, 20, 50, 100, 200] },
  ] as const;
  const vmOf = (c: (typeof cases)[number]) => bed.name(`c${c.kind[0]}${c.running ? 'r' : 'o'}`);
  before(async () => {
    for (const c of cases) await (c.running ? startBooted(vmOf(c)) : bed.createTiny(vmOf(c)));
  });

  for (const c of cases) {
    const { kind, running } = c;
    test(`${kind}, ${running ? 'running' : 'shut off'}: SIGINT at several offsets while libvirt works`, async (t) => {
      const vm = vmOf(c);
      const outcomes: string[] = [];
      for (const [i, offset] of c.offsets.entries()) {
        const name = `i${i}`;
        const before = {
          definition: definition(vm),
          snapshots: snapshotNames(vm),
          disk: diskOf(vm),
          files: bedFiles(),
        };
        const r = await interruptedCreate([vm, name, ...(kind === 'external' ? ['--external'] : [])], offset);
        const what = `offset ${offset} ms: exit ${r.code} ${r.signal ?? ''}\n${r.stderr}`;
        assert.equal(r.signal, null, `killed by the signal instead of exiting: ${what}`);
        if (r.code === 130) {
          assert.deepEqual(
            { definition: definition(vm), snapshots: snapshotNames(vm), disk: diskOf(vm), files: bedFiles() },
            before,
            what,
          );
          assert.match(
            r.stderr,
            /error: interrupted\nhint: everything this command had made so far was removed\n$/,
            what,
          );
        } else {
          assert.equal(r.code, 0, what);
          assert.match(r.stdout, new RegExp(`^${vm}: ${kind} snapshot ${name} taken`), what);
          assert.ok(snapshotNames(vm).includes(name), what);
          if (kind === 'external') {
            const overlay = diskOf(vm);
            assert.notEqual(overlay, before.disk, what);
            const memory = running ? [join(bed.env.VMS_STATE_DIR!, vm, `snapshot-${name}.mem`)] : [];
            assert.deepEqual(
              madeFiles(vm).filter((f) => !before.definition.includes(f)),
              [overlay, ...memory],
              what,
            );
          }
          // Back to where it was, for the next offset (an external one merged back).
          const del = await bed.vms(['snapshot', 'delete', vm, name]);
          assert.equal(del.code, 0, del.stderr);
        }
        outcomes.push(`${offset}:${r.code}`);
        assert.equal(state(vm), running ? 'running' : 'shut off', what);
      }
      t.diagnostic(`offset ms:exit code ${outcomes.join(' ')}`);
      assert.ok(
        outcomes.some((o) => o.endsWith(':130')),
        `no interrupt landed while libvirt worked: ${outcomes.join(' ')}`,
      );
    });
  }
});

describe('metadata.made: the files snapshots and disks made', () => {
  const vm = bed.name('made');
  before(() => startBooted(vm));

  test('create --external records the overlay and the memory file; delete forgets what it merged away', async () => {
    const disk = diskOf(vm);
    const r = await bed.vms(['snapshot', 'create', vm, 'ext', '--external', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const overlay = diskOf(vm);
    assert.deepEqual(madeFiles(vm), [disk, overlay, r.json.memoryFile]);
    const del = await bed.vms(['snapshot', 'delete', vm, 'ext']);
    assert.equal(del.code, 0, del.stderr);
    assert.deepEqual(madeFiles(vm), [disk]);
    assert.equal(existsSync(overlay), false);
  });

  test('a data disk added after a snapshot and dropped by the revert stays in metadata.made (its file stays too)', async () => {
    assert.equal((await bed.vms(['snapshot', 'create', vm, 'before-disk'])).code, 0);
    const add = await bed.vms(['disk', 'add', vm, '--size', '16M', '--json']);
    assert.equal(add.code, 0, add.stderr);
    assert.equal(add.json.path, join(bed.env.VMS_IMAGES_DIR!, `${vm}-data.qcow2`));
    assert.ok(madeFiles(vm).includes(add.json.path), 'disk add records it');
    const notes = await bed.vms(['set', vm, '--notes', 'after the snapshot']);
    assert.equal(notes.code, 0, notes.stderr);

    const revert = await bed.vms(['snapshot', 'revert', vm, 'before-disk', '--yes']);
    assert.equal(revert.code, 0, revert.stderr);
    assert.doesNotMatch(
      definition(vm),
      new RegExp(`${vm}-data\\.qcow2'`),
      'the revert dropped the disk from the definition',
    );
    assert.ok(madeFiles(vm).includes(add.json.path), 'still known to vms');
    assert.ok(existsSync(add.json.path));
    assert.match(definition(vm), /<vms:notes>after the snapshot<\/vms:notes>/, 'the notes of now are kept');
  });
});

describe('an internal snapshot with an external one taken after it (its file now under an overlay)', () => {
  const vm = bed.name('under');
  before(() => startBooted(vm));

  test('revert and delete are refused (exit 4): writing the file under the overlay would corrupt it; nothing changed', async () => {
    const disk = diskOf(vm);
    assert.equal((await bed.vms(['snapshot', 'create', vm, 'i1'])).code, 0);
    assert.equal((await bed.vms(['snapshot', 'create', vm, 'e1', '--external'])).code, 0);
    const overlay = diskOf(vm);
    assert.equal((await bed.vms(['kill', vm])).code, 0);
    const world = () => ({
      sha: sha256(disk),
      definition: definition(vm),
      snapshots: snapshotNames(vm),
      files: bedFiles(),
    });
    const before = world();
    for (const [action, args, wayOut] of [
      [
        'revert',
        ['--yes'],
        `its disk can be copied out of that file: \`qemu-img convert -l i1 -O qcow2 ${shellQuote(disk)} NEW.qcow2\``,
      ],
      ['delete', [], `\`virsh snapshot-delete ${vm} i1 --metadata\` takes it off the list without touching any file`],
    ] as const) {
      const r = await bed.vms(['snapshot', action, vm, 'i1', ...args]);
      assert.equal(r.code, 4, r.stderr);
      assert.equal(
        r.stderr,
        `error: cannot ${action} i1 of ${vm}: i1's data lie in ${disk}, and ${vm}'s vda is ${overlay} now\nhint: nothing was changed; ${wayOut}\n`,
      );
    }
    assert.deepEqual(world(), before);
    assert.match((await bed.vms(['snapshot', 'list', vm])).stdout, /^i1\s+\S+ \S+\s+running\s+internal\s+-\s+no$/m);
  });
});
