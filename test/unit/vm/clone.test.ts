import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { leftBehind } from '../../../src/core/ops/undo.js';
import { cloneVm, type CloneOptions } from '../../../src/core/vm/clone.js';
import { VmsError } from '../../../src/errors.js';
import { domainFacts, parseDomainXml } from '../../../src/libvirt/domain-parse.js';
import { VMS_NS } from '../../../src/libvirt/metadata.js';
import type { Expected } from '../../helpers/fake-runner.js';
import { fakeContext, URI, virshCall } from '../../helpers/virsh-fake.js';

// `vms clone` on the strict fake runner, with real files in a temp dir: the images dir holds SRC's disk (made by
// vms, 0644), the state dir SRC's password and settings. Every runner call is written into a timeline together with
// what the files looked like at that moment, so the order of the undo steps (virsh calls and file changes alike) is
// asserted, not only their end result.

const ISO = '/iso/archlinux.iso';

interface World {
  dir: string;
  images: string;
  state: string;
  /** SRC's disk, made by vms. */
  disk: string;
  /** What each runner call saw: "CALL | FILES". */
  timeline: string[];
  /** The XML of each `virsh define`, in order. */
  defined: string[];
  /** What the operation's journal said was to be undone when each runner call ran (a kill then is undone by it). */
  journaled: string[][];
}

function newWorld(): World {
  const dir = mkdtempSync(join(tmpdir(), 'vms-unit-clone-'));
  const images = join(dir, 'images');
  const state = join(dir, 'state');
  mkdirSync(images);
  mkdirSync(join(state, 'src'), { recursive: true });
  const disk = join(images, 'src.qcow2');
  writeFileSync(disk, 'src data');
  chmodSync(disk, 0o644);
  writeFileSync(join(state, 'src', 'root-password'), 'pw\n');
  writeFileSync(join(state, 'src', 'settings.sh'), 'USER=u\n');
  return { dir, images, state, disk, timeline: [], defined: [], journaled: [] };
}

const mode = (path: string) => (statSync(path).mode & 0o7777).toString(8).padStart(4, '0');

/** The files that matter, as one line: SRC's disk and its mode, the other images, whether NEW's directory exists. */
function files(w: World): string {
  const images = readdirSync(w.images)
    .sort()
    .map((f) => (f === 'src.qcow2' ? `src.qcow2 ${mode(w.disk)}` : f));
  return [...images, ...(existsSync(join(w.state, 'new')) ? ['new/'] : [])].join(', ');
}

/** Paths in the temp dir by their name in the images or state dir. */
const short = (text: string) => text.replaceAll(/\/[^\s,]*\/(images|state)\//g, '');

/** A call as the timeline shows it: paths short, a define as `define`. */
function show(cmd: string, args: readonly string[]): string {
  const rest = cmd === 'virsh' ? args.slice(2) : args;
  if (rest[0] === 'define') return `${cmd} define`;
  return `${cmd} ${rest.map(short).join(' ')}`;
}

/** The undo steps written in the operation's journal now (journal.ts: state/.operations/ID.json), oldest first. */
function journaled(w: World): string[] {
  const dir = join(w.state, '.operations');
  const journals = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')) : [];
  assert.equal(journals.length, 1, 'one operation, one journal');
  const record = JSON.parse(readFileSync(join(dir, journals[0]!), 'utf8')) as { steps: { what: string }[] };
  return record.steps.map((step) => short(step.what));
}

/** Whether `args` are what `e` expects. */
const matches = (e: Expected, args: readonly string[]) =>
  typeof e.args === 'function' ? e.args(args) : JSON.stringify(args) === JSON.stringify(e.args);

/** Each expected call also writes itself into the timeline with the files as they are when it runs. */
function watched(w: World, calls: Expected[]): Expected[] {
  return calls.map((e) => ({
    cmd: e.cmd, // not a spread: that would read a lazy result (a getter) now
    args: (args: readonly string[]) => {
      const ok = matches(e, args);
      if (ok) w.timeline.push(`${show(e.cmd, args)} | ${files(w)}`);
      if (ok) w.journaled.push(journaled(w));
      return ok;
    },
    get result() {
      return e.result;
    },
  }));
}

interface SrcShape {
  made?: string[];
  bases?: string[];
  format?: string;
  diskType?: string;
  /** SRC's UEFI variables file: an EFI VM. */
  nvram?: string;
}

const srcXml = (w: World, o: SrcShape = {}) => {
  const made = (o.made ?? [w.disk]).map((f) => `<vms:made>${f}</vms:made>`).join('');
  const bases = (o.bases ?? []).map((f) => `<vms:base>${f}</vms:base>`).join('');
  const source = (o.diskType ?? 'file') === 'file' ? `<source file='${w.disk}'/>` : `<source dev='${w.disk}'/>`;
  return `<domain type='qemu'>
  <name>src</name>
  <uuid>0cb755d1-92e2-4a6d-b88c-c4582ce962d7</uuid>
  <metadata><vms:vm xmlns:vms="${VMS_NS}"><vms:created-from>${ISO}</vms:created-from>${bases}${made}</vms:vm></metadata>
  <memory unit='KiB'>262144</memory>
  <vcpu>1</vcpu>
  <os${o.nvram ? " firmware='efi'" : ''}><type arch='x86_64' machine='q35'>hvm</type>${o.nvram ? `<nvram>${o.nvram}</nvram>` : ''}</os>
  <devices>
    <disk type='${o.diskType ?? 'file'}' device='disk'>
      <driver name='qemu' type='${o.format ?? 'qcow2'}'/>${source}<target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='${ISO}'/><target dev='sda' bus='sata'/><readonly/></disk>
  </devices>
</domain>`;
};

const NOT_FOUND = { exitCode: 1, stderr: "error: failed to get domain 'new'\n" };
const FAIL = { exitCode: 1, stderr: 'error: internal error: injected failure\n' };

/** The calls of checkClone: SRC loaded, NEW's name free (or taken). */
const checkCalls = (xml: string, state: string, newExists = false): Expected[] => [
  virshCall(['dumpxml', 'src', '--inactive', '--security-info'], xml),
  virshCall(['domstate', 'src'], `${state}\n\n`),
  virshCall(['domuuid', 'new'], newExists ? '5f0d…\n' : '', newExists ? {} : NOT_FOUND),
];
const overlayCall = (path: string, base: string, result?: Expected['result']): Expected => ({
  cmd: 'qemu-img',
  args: ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', path],
  result,
});
const defineCall = (w: World, result?: Expected['result']): Expected => ({
  cmd: 'virsh',
  args: (a) =>
    a.length === 4 &&
    a[0] === '-c' &&
    a[1] === URI &&
    a[2] === 'define' &&
    !!w.defined.push(readFileSync(a[3]!, 'utf8')),
  result,
});
/** vmInfo of NEW after the clone: its definition as defined, its state, its disk's size. */
const infoCalls = (w: World, disk: string, state = 'shut off'): Expected[] => [
  {
    cmd: 'virsh',
    args: ['-c', URI, 'dumpxml', 'new', '--inactive', '--security-info'],
    get result() {
      return { stdout: w.defined[0] };
    },
  },
  virshCall(['domstate', 'new'], `${state}\n`),
  {
    cmd: 'qemu-img',
    args: ['info', '-U', '--output=json', disk],
    result: { stdout: JSON.stringify({ filename: disk, format: 'qcow2', 'virtual-size': 1 << 30 }) },
  },
];
const undefineNewCalls: Expected[] = [
  virshCall(['domuuid', 'new'], 'uuid\n'),
  virshCall(['undefine', 'new', '--nvram', '--managed-save', '--snapshots-metadata', '--checkpoints-metadata']),
];

/** Runs the clone SRC → NEW on `calls`; `notes` gets what it tells the user on the side, `steps` its steps' titles. */
function run(
  w: World,
  calls: Expected[],
  opts: Partial<CloneOptions> = {},
  notes: string[] = [],
  steps: string[] = [],
) {
  const { ctx, runner } = fakeContext(watched(w, calls), { VMS_STATE_DIR: w.state, VMS_IMAGES_DIR: w.images });
  const progress = {
    step: <T>(title: string, fn: () => Promise<T>) => (steps.push(title), fn()),
    note: (m: string) => void notes.push(m),
  };
  const options = { source: 'src', name: 'new', full: false, start: false, ...opts };
  return { ctx, runner, clone: cloneVm({ ...ctx, progress }, options) };
}

/** The clone fails with `code`, `message` and `reason`, and its undo went through; returns the error. */
async function assertFails(p: Promise<unknown>, code: string, message: RegExp, reason?: string): Promise<VmsError> {
  let caught: unknown;
  await assert.rejects(p, (err: unknown) => ((caught = err), true));
  assert.ok(caught instanceof VmsError, String(caught));
  assert.equal(caught.code, code);
  assert.match(caught.message, message);
  assert.equal(caught.reason, reason);
  // Every undo step went through: an unexpected call inside one (the strict runner throws) would show up here.
  assert.deepEqual(leftBehind(caught), []);
  assert.doesNotMatch(caught.message + (caught.details ?? ''), /clean-up failed/);
  return caught;
}

const facts = async (xml: string) => domainFacts(await parseDomainXml(xml));
/** SRC's metadata as srcXml has it, as domainFacts reads it. */
const srcMetadata = (w: World) => ({
  profile: undefined,
  created: undefined,
  createdFrom: ISO,
  bases: [],
  made: [w.disk],
});

// ---- refused before anything is made ----------------------------------------------------------------------------

test('clone --full of a running VM: refused (clone.fullRunning, exit 4) after reading only, no file made', async () => {
  const w = newWorld();
  const { runner, clone } = run(w, checkCalls(srcXml(w), 'running'), { full: true });
  const err = await assertFails(
    clone,
    'conflict',
    /^src is running: a full copy needs it shut off$/,
    'clone.fullRunning',
  );
  assert.equal(err.exitCode, 4);
  assert.deepEqual(err.data, { source: 'src' });
  runner.done();
  assert.equal(files(w), 'src.qcow2 0644');
});

test("clone --full by SRC's libvirt state: running, paused, suspended, shutting down, idle refused; shut off or crashed copied", async () => {
  const active = ['running', 'paused', 'pmsuspended', 'in shutdown', 'idle'];
  for (const state of [...active, 'shut off', 'crashed']) {
    const w = newWorld();
    const newDisk = join(w.images, 'new.qcow2');
    const copy = [
      { cmd: 'qemu-img', args: ['convert', '-f', 'qcow2', '-O', 'qcow2', w.disk, newDisk] },
      defineCall(w),
      ...infoCalls(w, newDisk),
    ];
    const refused = active.includes(state);
    const { runner, clone } = run(w, [...checkCalls(srcXml(w), state), ...(refused ? [] : copy)], { full: true });
    if (refused) await assertFails(clone, 'conflict', /^src is running/, 'clone.fullRunning');
    else assert.equal((await clone).linked, false, state);
    runner.done();
    assert.equal(files(w), refused ? 'src.qcow2 0644' : 'new.qcow2, src.qcow2 0644, new/', state);
  }
});

test('clone onto a name taken: a conflict (exit 4) before any file exists', async () => {
  const w = newWorld();
  const { runner, clone } = run(w, checkCalls(srcXml(w), 'shut off', true));
  const err = await assertFails(clone, 'conflict', /^a VM named 'new' already exists$/);
  assert.equal(err.exitCode, 4);
  runner.done();
  assert.equal(files(w), 'src.qcow2 0644');
});

test('a linked clone of a disk vms did not make: refused (clone.foreignDisk), the disk not chmodded', async () => {
  const w = newWorld();
  const { runner, clone } = run(w, checkCalls(srcXml(w, { made: [] }), 'shut off'));
  const err = await assertFails(
    clone,
    'conflict',
    /^src's disk vda \(.*src\.qcow2\) was not made by vms/,
    'clone.foreignDisk',
  );
  assert.deepEqual(err.data, { source: 'src', target: 'vda' });
  runner.done();
  assert.equal(files(w), 'src.qcow2 0644');
});

test('a linked clone of a raw disk: refused (clone.notQcow2, exit 2); a disk that is not a file: refused (exit 2)', async () => {
  const raw = newWorld();
  const r = run(raw, checkCalls(srcXml(raw, { format: 'raw' }), 'shut off'));
  await assertFails(r.clone, 'usage', /^src's disk .*src\.qcow2 is raw: a linked clone needs qcow2$/, 'clone.notQcow2');
  r.runner.done();
  assert.equal(files(raw), 'src.qcow2 0644');
  const block = newWorld();
  const b = run(block, checkCalls(srcXml(block, { diskType: 'block' }), 'shut off'), { full: true });
  await assertFails(b.clone, 'usage', /^src's disk vda is not a plain file \(block\)$/);
  b.runner.done();
  assert.equal(files(block), 'src.qcow2 0644');
});

test('a running SRC whose live disks differ from its saved definition: refused before any file exists', async () => {
  const w = newWorld();
  const live = ` Target   Source\n------------------\n vda      ${w.images}/other.qcow2\n sda      ${ISO}\n`;
  const { runner, clone } = run(w, [...checkCalls(srcXml(w), 'running'), virshCall(['domblklist', 'src'], live)]);
  await assertFails(clone, 'conflict', /^src's running disks differ from its saved definition/);
  runner.done();
  assert.equal(files(w), 'src.qcow2 0644');
});

// ---- a linked clone of a shut-off SRC ------------------------------------------------------------------------------

/** The calls of a linked clone of the shut-off SRC up to NEW's start; `newDisk`: the path NEW's disk claims. */
const linkedOffCalls = (w: World, newDisk = 'new.qcow2'): Expected[] => [
  ...checkCalls(srcXml(w), 'shut off'),
  overlayCall(join(w.images, 'src-2.qcow2'), w.disk),
  overlayCall(join(w.images, newDisk), w.disk),
  defineCall(w),
  defineCall(w),
  virshCall(['domstate', 'src'], 'shut off\n'),
];

test('linked clone of a shut-off VM: exact calls, SRC frozen 0444 on a new overlay, NEW defined on its own overlay', async () => {
  const w = newWorld();
  // A base SRC already stood on (frozen by an earlier clone): recorded for NEW too, its mode left alone.
  const golden = join(w.dir, 'golden.qcow2');
  writeFileSync(golden, '');
  chmodSync(golden, 0o640);
  const calls = linkedOffCalls(w);
  calls[0] = virshCall(['dumpxml', 'src', '--inactive', '--security-info'], srcXml(w, { bases: [golden] }));
  const { runner, clone } = run(w, [...calls, ...infoCalls(w, join(w.images, 'new.qcow2'))]);
  const r = await clone;
  runner.done();
  assert.deepEqual(w.timeline, [
    'virsh dumpxml src --inactive --security-info | src.qcow2 0644',
    'virsh domstate src | src.qcow2 0644',
    'virsh domuuid new | src.qcow2 0644',
    // NEW's disk is claimed first (new.qcow2); SRC's overlay skips src.qcow2, which exists: src-2.qcow2.
    'qemu-img create -q -f qcow2 -b src.qcow2 -F qcow2 src-2.qcow2 | new.qcow2, src-2.qcow2, src.qcow2 0644, new/',
    'qemu-img create -q -f qcow2 -b src.qcow2 -F qcow2 new.qcow2 | new.qcow2, src-2.qcow2, src.qcow2 0644, new/',
    // Read-only before any VM records it as a base.
    'virsh define | new.qcow2, src-2.qcow2, src.qcow2 0444, new/',
    'virsh define | new.qcow2, src-2.qcow2, src.qcow2 0444, new/',
    'virsh domstate src | new.qcow2, src-2.qcow2, src.qcow2 0444, new/',
    'virsh dumpxml new --inactive --security-info | new.qcow2, src-2.qcow2, src.qcow2 0444, new/',
    'virsh domstate new | new.qcow2, src-2.qcow2, src.qcow2 0444, new/',
    'qemu-img info -U --output=json new.qcow2 | new.qcow2, src-2.qcow2, src.qcow2 0444, new/',
  ]);
  assert.equal(readFileSync(w.disk, 'utf8'), 'src data');
  // Each step's undo is journaled before the step runs; SRC's own disk, found taken by the claim, is not among them.
  const claims = ['remove new', 'remove new.qcow2 if still empty', 'remove new.qcow2'];
  const overlay = ['remove src-2.qcow2 if still empty', 'remove src-2.qcow2'];
  assert.deepEqual(w.journaled.slice(2, 8), [
    [],
    [...claims, ...overlay],
    [...claims, ...overlay],
    [...claims, ...overlay, 'make src.qcow2 writable again', 'undefine new'],
    [...claims, ...overlay, 'make src.qcow2 writable again', 'undefine new', "restore src's definition"],
    [...claims, ...overlay, 'make src.qcow2 writable again', 'undefine new', "restore src's definition"],
  ]);
  const [newXml, srcNow] = await Promise.all(w.defined.map(facts));
  assert.equal(newXml!.name, 'new');
  assert.doesNotMatch(w.defined[0]!, /<uuid>/, "never SRC's uuid");
  assert.deepEqual(
    newXml!.disks.map((d) => [d.target, d.path]),
    [
      ['vda', join(w.images, 'new.qcow2')],
      ['sda', ISO],
    ],
  );
  assert.deepEqual(newXml!.metadata.made, [join(w.images, 'new.qcow2')]);
  assert.deepEqual(newXml!.metadata.bases, [w.disk, golden]);
  assert.equal(newXml!.metadata.createdFrom, 'src');
  assert.equal(mode(golden), '0640');
  assert.equal(newXml!.serialSocket, undefined); // SRC has no console: none invented
  assert.equal(srcNow!.name, 'src');
  assert.deepEqual(
    srcNow!.disks.map((d) => d.path),
    [join(w.images, 'src-2.qcow2'), ISO],
  );
  const srcMade = [join(w.images, 'src-2.qcow2')];
  assert.deepEqual(srcNow!.metadata, { ...srcMetadata(w), bases: [w.disk, golden], made: srcMade });
  for (const f of ['root-password', 'settings.sh']) {
    assert.equal(readFileSync(join(w.state, 'new', f), 'utf8'), readFileSync(join(w.state, 'src', f), 'utf8'));
    assert.equal(mode(join(w.state, 'new', f)), '0600', f);
  }
  assert.deepEqual(
    { linked: r.linked, frozen: r.frozen, writable: r.writable, quiesced: r.quiesced, name: r.name },
    { linked: true, frozen: [w.disk], writable: [], quiesced: false, name: 'new' },
  );
  assert.deepEqual(
    [r.bases, r.createdFrom, r.disks[0]!.path, r.disks[0]!.capacity],
    [[w.disk, golden], 'src', join(w.images, 'new.qcow2'), 1 << 30],
  );
});

/** Everything a failed linked clone of the shut-off SRC must leave: SRC's disk as it was, nothing else. */
function assertNothingLeft(w: World, extra: string[] = []) {
  assert.equal(files(w), [...extra, 'src.qcow2 0644'].sort().join(', '));
  assert.equal(readFileSync(w.disk, 'utf8'), 'src data');
}

test("linked clone: SRC's overlay cannot be made: NEW's disk, SRC's overlay claim and NEW's dir go; SRC never chmodded", async () => {
  const w = newWorld();
  const full = { exitCode: 1, stderr: 'qemu-img: src-2.qcow2: Could not create: No space left on device\n' };
  const calls = [...checkCalls(srcXml(w), 'shut off'), overlayCall(join(w.images, 'src-2.qcow2'), w.disk, full)];
  const { runner, clone } = run(w, calls);
  const err = await assertFails(
    clone,
    'failed',
    /^cannot create overlay .*src-2\.qcow2: src-2\.qcow2: Could not create/,
  );
  assert.match(err.hint ?? '', /free some disk space/);
  runner.done();
  assertNothingLeft(w);
});

test("linked clone: NEW's overlay cannot be made: the same, SRC's disk still 0644 (frozen only after both overlays)", async () => {
  const w = newWorld();
  const calls = [
    ...checkCalls(srcXml(w), 'shut off'),
    overlayCall(join(w.images, 'src-2.qcow2'), w.disk),
    overlayCall(join(w.images, 'new.qcow2'), w.disk, FAIL),
  ];
  const { runner, clone } = run(w, calls);
  await assertFails(clone, 'failed', /^cannot create overlay .*new\.qcow2: internal error: injected failure$/);
  runner.done();
  assertNothingLeft(w);
});

test("linked clone: NEW's define fails: its undefine is tried (not defined: nothing), SRC made writable again, files go", async () => {
  const w = newWorld();
  writeFileSync(join(w.images, 'new.qcow2'), 'user data'); // someone's file: never reused, never removed
  const calls = [
    ...linkedOffCalls(w, 'new-2.qcow2').slice(0, 5),
    defineCall(w, FAIL),
    virshCall(['domuuid', 'new'], '', NOT_FOUND),
  ];
  const { runner, clone } = run(w, calls);
  await assertFails(clone, 'failed', /injected failure/);
  runner.done();
  assert.deepEqual(w.timeline.slice(3), [
    'qemu-img create -q -f qcow2 -b src.qcow2 -F qcow2 src-2.qcow2 | new-2.qcow2, new.qcow2, src-2.qcow2, src.qcow2 0644, new/',
    'qemu-img create -q -f qcow2 -b src.qcow2 -F qcow2 new-2.qcow2 | new-2.qcow2, new.qcow2, src-2.qcow2, src.qcow2 0644, new/',
    'virsh define | new-2.qcow2, new.qcow2, src-2.qcow2, src.qcow2 0444, new/',
    // The undo, newest first: undefine NEW (if defined) while the files are all still there.
    'virsh domuuid new | new-2.qcow2, new.qcow2, src-2.qcow2, src.qcow2 0444, new/',
  ]);
  assertNothingLeft(w, ['new.qcow2']);
  assert.equal(readFileSync(join(w.images, 'new.qcow2'), 'utf8'), 'user data');
});

test("linked clone: SRC's disk gone before it is frozen (ENOENT, not EPERM): the clone fails and is undone", async () => {
  const w = newWorld();
  const moved = join(w.dir, 'moved.qcow2');
  const overlay = overlayCall(join(w.images, 'new.qcow2'), w.disk);
  const calls = [
    ...linkedOffCalls(w).slice(0, 4),
    {
      ...overlay,
      args: (a: readonly string[]) => (renameSync(w.disk, moved), JSON.stringify(a) === JSON.stringify(overlay.args)),
    },
  ];
  const { runner, clone } = run(w, calls);
  await assert.rejects(clone, (err: NodeJS.ErrnoException) => err.code === 'ENOENT' && err.syscall === 'stat');
  runner.done();
  assert.equal(files(w), '');
  assert.equal(mode(moved), '0644');
});

/** The undo after NEW was defined on the shut-off SRC: SRC's definition back, NEW undefined, then the files. */
const undoAfterSwitch = (w: World): Expected[] => [defineCall(w), ...undefineNewCalls];

test("linked clone: SRC's switch fails: SRC's old definition back, NEW undefined, SRC writable again, files gone", async () => {
  const w = newWorld();
  const remaining: string[][] = []; // what a forced exit during the rollback would leave (ctx.rollbacks)
  const calls = [...linkedOffCalls(w).slice(0, 6), defineCall(w, FAIL), ...undoAfterSwitch(w)];
  const { ctx, runner, clone } = run(
    w,
    calls.map((c) => ({ ...c, args: (a) => (remaining.push(ctx.rollbacks.remaining().map(short)), matches(c, a)) })),
  );
  await assertFails(clone, 'failed', /injected failure/);
  runner.done();
  const frozen = 'new.qcow2, src-2.qcow2, src.qcow2 0444, new/';
  assert.deepEqual(w.timeline.slice(6), [
    `virsh define | ${frozen}`,
    `virsh define | ${frozen}`, // SRC's definition as it was
    `virsh domuuid new | ${frozen}`,
    `virsh undefine new --nvram --managed-save --snapshots-metadata --checkpoints-metadata | ${frozen}`,
  ]);
  // The journal and the rollback's account lose each undo step once it has run.
  const fileSteps = ['make src.qcow2 writable again', 'remove src-2.qcow2', 'remove src-2.qcow2 if still empty'];
  const all = [...fileSteps, 'remove new.qcow2', 'remove new.qcow2 if still empty', 'remove new'];
  assert.deepEqual(
    w.journaled.slice(7).map((j) => j.slice(5)),
    [
      ['make src.qcow2 writable again', 'undefine new', "restore src's definition"],
      ['make src.qcow2 writable again', 'undefine new'],
      ['make src.qcow2 writable again', 'undefine new'],
    ],
  );
  assert.deepEqual(remaining.slice(7), [
    ["restore src's definition", 'undefine new', ...all],
    ['undefine new', ...all],
    ['undefine new', ...all],
  ]);
  assert.deepEqual(ctx.rollbacks.remaining(), []);
  const restored = await facts(w.defined[2]!);
  assert.deepEqual(
    restored.disks.map((d) => d.path),
    [w.disk, ISO],
  );
  assert.deepEqual(restored.metadata, srcMetadata(w));
  assertNothingLeft(w);
});

test('linked clone: SRC started by someone meanwhile: a conflict, and all of it undone (SRC back on its own disk)', async () => {
  const w = newWorld();
  const calls = [...linkedOffCalls(w).slice(0, 7), virshCall(['domstate', 'src'], 'running\n'), ...undoAfterSwitch(w)];
  const { runner, clone } = run(w, calls);
  await assertFails(clone, 'conflict', /^src was started while it was being cloned$/);
  runner.done();
  assert.deepEqual(
    (await facts(w.defined[2]!)).disks.map((d) => d.path),
    [w.disk, ISO],
  );
  assertNothingLeft(w);
});

test('linked clone --start: NEW fails to start: powered off if running, SRC back, NEW undefined, files gone, in that order', async () => {
  const w = newWorld();
  const calls = [
    ...linkedOffCalls(w),
    virshCall(['start', 'new'], '', FAIL),
    virshCall(['domuuid', 'new'], 'uuid\n'),
    virshCall(['domstate', 'new'], 'running\n'),
    virshCall(['destroy', 'new']),
    ...undoAfterSwitch(w),
  ];
  const { runner, clone } = run(w, calls, { start: true });
  await assertFails(clone, 'failed', /injected failure/);
  runner.done();
  assert.deepEqual(
    w.timeline.slice(8).map((l) => l.split(' | ')[0]),
    [
      'virsh start new',
      'virsh domuuid new',
      'virsh domstate new',
      'virsh destroy new',
      'virsh define',
      'virsh domuuid new',
      'virsh undefine new --nvram --managed-save --snapshots-metadata --checkpoints-metadata',
    ],
  );
  assertNothingLeft(w);
});

// ---- a linked clone of a running SRC -------------------------------------------------------------------------------

const liveDisks = (vda: string) => ` Target   Source\n------------------\n vda      ${vda}\n sda      ${ISO}\n`;
const PING = ['qemu-agent-command', 'src', '{"execute":"guest-ping"}', '--timeout', '2'];
const NO_AGENT = { exitCode: 1, stderr: 'error: Guest agent is not responding: QEMU guest agent is not connected\n' };

/** The disk-only snapshot that moves the running SRC onto its overlay (its name carries the time). */
const snapshotCall = (w: World, quiesce: boolean, result?: Expected['result']): Expected => ({
  cmd: 'virsh',
  args: (a) =>
    /^vms-clone-\d+$/.test(a[4] ?? '') &&
    JSON.stringify([...a.slice(0, 4), ...a.slice(5)]) ===
      JSON.stringify([
        '-c',
        URI,
        'snapshot-create-as',
        'src',
        '--disk-only',
        '--atomic',
        '--no-metadata',
        ...(quiesce ? ['--quiesce'] : []),
        '--diskspec',
        `vda,snapshot=external,file=${join(w.images, 'src-2.qcow2')}`,
        '--diskspec',
        'sda,snapshot=no',
      ]),
  result,
});

const linkedRunningCalls = (w: World, agent: boolean): Expected[] => [
  ...checkCalls(srcXml(w), 'running'),
  virshCall(['domblklist', 'src'], liveDisks(w.disk)),
  virshCall(PING, agent ? '{"return":{}}' : '', agent ? {} : NO_AGENT),
  snapshotCall(w, agent),
  overlayCall(join(w.images, 'new.qcow2'), w.disk),
  defineCall(w),
  defineCall(w), // SRC's saved definition, as libvirt already runs it: no state check, no undo of its own
];

test('linked clone --start of a running VM: a quiesced disk-only snapshot onto the overlay, SRC 0444, NEW started', async () => {
  const w = newWorld();
  const calls = [
    ...linkedRunningCalls(w, true),
    virshCall(['start', 'new']),
    ...infoCalls(w, join(w.images, 'new.qcow2'), 'running'),
  ];
  const { runner, clone } = run(w, calls, { start: true });
  const r = await clone;
  runner.done();
  assert.equal(r.state, 'running');
  assert.equal(r.quiesced, true);
  assert.deepEqual(r.frozen, [w.disk]);
  assert.equal(mode(w.disk), '0444');
  const srcNow = await facts(w.defined[1]!);
  assert.deepEqual(
    srcNow.disks.map((d) => d.path),
    [join(w.images, 'src-2.qcow2'), ISO],
  );
  assert.deepEqual(srcNow.metadata.made, [join(w.images, 'src-2.qcow2')]);
});

test('linked clone of a running VM whose disk vms may not chmod (EPERM): kept writable and said, the clone made', async (t) => {
  const w = newWorld();
  // Root may chmod anything: an immutable file refuses root too (EPERM), as the qemu user's disk refuses a user.
  try {
    execFileSync('chattr', ['+i', w.disk], { stdio: 'pipe' });
  } catch {
    return t.skip('chattr +i needs root (CAP_LINUX_IMMUTABLE): EPERM cannot be made here');
  }
  const notes: string[] = [];
  try {
    const calls = [...linkedRunningCalls(w, false), ...infoCalls(w, join(w.images, 'new.qcow2'))];
    const { runner, clone } = run(w, calls, {}, notes);
    const r = await clone;
    runner.done();
    assert.deepEqual([r.frozen, r.writable], [[w.disk], [w.disk]]);
  } finally {
    execFileSync('chattr', ['-i', w.disk]);
  }
  assert.equal(mode(w.disk), '0644');
  assert.deepEqual(notes, [
    `${w.disk} stays writable: it belongs to the qemu user while src runs (\`sudo chmod 444 ${w.disk}\` protects it)`,
  ]);
});

test('linked clone of a running VM: the snapshot fails: the unfreeze finds SRC on its own disk and merges nothing', async () => {
  const w = newWorld();
  const calls = [
    ...linkedRunningCalls(w, false).slice(0, 5),
    snapshotCall(w, false, FAIL),
    virshCall(['domuuid', 'src'], 'uuid\n'),
    virshCall(['domstate', 'src'], 'running\n'),
    virshCall(['domblklist', 'src'], liveDisks(w.disk)),
  ];
  const { runner, clone } = run(w, calls);
  await assertFails(clone, 'failed', /injected failure/);
  runner.done();
  assertNothingLeft(w);
});

/**
 * The merge back of a running SRC's overlay: live while it runs (blockcommit and pivot, which puts its disk back in
 * the definition), or by qemu-img into its own disk when it was stopped meanwhile (its definition then still on the
 * overlay); either way its metadata as it was before the clone.
 */
const mergeBack = (w: World, running: boolean): Expected[] => [
  virshCall(['domuuid', 'src'], 'uuid\n'),
  virshCall(['domstate', 'src'], running ? 'running\n' : 'shut off\n'),
  virshCall(['domblklist', 'src', ...(running ? [] : ['--inactive'])], liveDisks(join(w.images, 'src-2.qcow2'))),
  running
    ? virshCall(['blockcommit', 'src', 'vda', '--active', '--pivot', '--shallow', '--wait'])
    : { cmd: 'qemu-img', args: ['commit', '-q', '-f', 'qcow2', join(w.images, 'src-2.qcow2')] },
  {
    cmd: 'virsh',
    args: ['-c', URI, 'dumpxml', 'src', '--inactive', '--security-info'],
    get result() {
      const switched = w.defined[1]!; // SRC as switchSource defined it
      return { stdout: running ? switched.replace('src-2.qcow2"/>', 'src.qcow2"/>') : switched };
    },
  },
  defineCall(w),
];

for (const running of [true, false]) {
  const how = running ? 'merged back live' : 'stopped meanwhile: merged back by qemu-img';
  test(`linked clone --start of a running VM: NEW fails to start: NEW goes, SRC writable again, then ${how}`, async () => {
    const w = newWorld();
    const calls = [
      ...linkedRunningCalls(w, false),
      virshCall(['start', 'new'], '', FAIL),
      virshCall(['domuuid', 'new'], 'uuid\n'),
      virshCall(['domstate', 'new'], 'shut off\n'),
      ...undefineNewCalls,
      ...mergeBack(w, running),
    ];
    const { runner, clone } = run(w, calls, { start: true });
    await assertFails(clone, 'failed', /injected failure/);
    runner.done();
    const all = 'new.qcow2, src-2.qcow2, src.qcow2';
    assert.deepEqual(w.timeline.slice(9), [
      `virsh start new | ${all} 0444, new/`,
      `virsh domuuid new | ${all} 0444, new/`,
      `virsh domstate new | ${all} 0444, new/`,
      `virsh domuuid new | ${all} 0444, new/`,
      `virsh undefine new --nvram --managed-save --snapshots-metadata --checkpoints-metadata | ${all} 0444, new/`,
      // SRC's disk is writable again before the merge writes into it.
      `virsh domuuid src | ${all} 0644, new/`,
      `virsh domstate src | ${all} 0644, new/`,
      `virsh domblklist src${running ? '' : ' --inactive'} | ${all} 0644, new/`,
      running
        ? `virsh blockcommit src vda --active --pivot --shallow --wait | ${all} 0644, new/`
        : `qemu-img commit -q -f qcow2 src-2.qcow2 | ${all} 0644, new/`,
      `virsh dumpxml src --inactive --security-info | ${all} 0644, new/`,
      `virsh define | ${all} 0644, new/`,
    ]);
    const restored = await facts(w.defined[2]!);
    assert.deepEqual(restored.metadata, srcMetadata(w));
    assert.deepEqual(
      restored.disks.map((d) => d.path),
      [w.disk, ISO],
    );
    assertNothingLeft(w);
  });
}

test('clone interrupted while the disks are made: everything undone, reported as an interrupt (exit 130)', async () => {
  const w = newWorld();
  const abort = new AbortController();
  const overlay = overlayCall(join(w.images, 'new.qcow2'), w.disk);
  const calls = [
    ...linkedOffCalls(w).slice(0, 4),
    { ...overlay, args: (a: readonly string[]) => (abort.abort(), JSON.stringify(a) === JSON.stringify(overlay.args)) },
  ];
  const { ctx, runner } = fakeContext(watched(w, calls), { VMS_STATE_DIR: w.state, VMS_IMAGES_DIR: w.images });
  const options = { source: 'src', name: 'new', full: false, start: false };
  const err = await assertFails(cloneVm({ ...ctx, signal: abort.signal }, options), 'interrupted', /^interrupted$/);
  assert.deepEqual([err.exitCode, err.hint], [130, 'everything this command had made so far was removed']);
  runner.done();
  assertNothingLeft(w);
  assert.deepEqual(
    readdirSync(join(w.state, '.operations')).filter((f) => f.endsWith('.json')),
    [],
    'nothing for a repair',
  );
});

// ---- a full copy ---------------------------------------------------------------------------------------------------

test('full clone of an EFI VM: qemu-img convert with the format stated, its NVRAM copied; SRC neither frozen nor switched', async () => {
  const w = newWorld();
  const nvram = join(w.state, 'src', 'nvram.fd');
  writeFileSync(nvram, 'boot entries');
  rmSync(join(w.state, 'src', 'settings.sh')); // a VM vms did not install: no settings to copy
  const xml = srcXml(w, { made: [], nvram }); // a disk vms did not make may be copied
  const newDisk = join(w.images, 'new.qcow2');
  const calls = [
    ...checkCalls(xml, 'shut off'),
    { cmd: 'qemu-img', args: ['convert', '-f', 'qcow2', '-O', 'qcow2', w.disk, newDisk] },
    defineCall(w),
    ...infoCalls(w, newDisk),
  ];
  const { runner, clone } = run(w, calls, { full: true });
  const r = await clone;
  runner.done();
  assert.deepEqual([r.linked, r.frozen, r.writable, r.quiesced], [false, [], [], false]);
  assert.equal(existsSync(join(w.state, 'new', 'settings.sh')), false, 'SRC had none: none copied');
  assert.equal(files(w), 'new.qcow2, src.qcow2 0644, new/');
  const made = await facts(w.defined[0]!);
  assert.deepEqual(made.metadata.bases, []);
  assert.deepEqual(made.metadata.made, [newDisk]);
  // NEW's own UEFI variables: a copy of SRC's, never SRC's file.
  assert.equal(made.nvramPath, join(w.state, 'new', 'nvram.fd'));
  assert.equal(readFileSync(join(w.state, 'new', 'nvram.fd'), 'utf8'), 'boot entries');
});

test('full clone: the copy fails: its disk and directory go, SRC untouched', async () => {
  const w = newWorld();
  const newDisk = join(w.images, 'new.qcow2');
  const calls = [
    ...checkCalls(srcXml(w), 'shut off'),
    { cmd: 'qemu-img', args: ['convert', '-f', 'qcow2', '-O', 'qcow2', w.disk, newDisk], result: FAIL },
  ];
  const { runner, clone } = run(w, calls, { full: true });
  await assertFails(clone, 'failed', /^cannot copy .*src\.qcow2: internal error: injected failure$/);
  runner.done();
  assertNothingLeft(w);
});

// ---- which disks and files a clone takes, and how ----------------------------------------------------------------

/** A full copy of the shut-off SRC (defined by `xml`) onto new.qcow2, converted from `format`. */
/** @param infoOfOthers the qemu-img calls vmInfo makes for NEW's other disks (after its own) */
function fullCopy(w: World, xml: string, format: string, steps: string[] = [], infoOfOthers: Expected[] = []) {
  const newDisk = join(w.images, 'new.qcow2');
  const calls = [
    ...checkCalls(xml, 'shut off'),
    { cmd: 'qemu-img', args: ['convert', '-f', format, '-O', 'qcow2', w.disk, newDisk] },
    defineCall(w),
    ...infoCalls(w, newDisk),
    ...infoOfOthers,
  ];
  return run(w, calls, { full: true }, [], steps);
}

test("full clone: a raw disk converted from raw, one without a stated format as qcow2; a BIOS VM's NEW has no NVRAM", async () => {
  const raw = newWorld();
  const r = fullCopy(raw, srcXml(raw, { format: 'raw' }), 'raw');
  await r.clone;
  r.runner.done();
  assert.equal((await facts(raw.defined[0]!)).nvramPath, undefined);
  const unstated = newWorld();
  const xml = srcXml(unstated).replace("<driver name='qemu' type='qcow2'/>", "<driver name='qemu'/>");
  const u = fullCopy(unstated, xml, 'qcow2');
  await u.clone;
  u.runner.done();
});

test("full clone of an EFI VM whose NVRAM file was never made (never booted): nothing copied, NEW's own path recorded", async () => {
  const w = newWorld();
  const nvram = join(w.state, 'src', 'nvram.fd'); // not there
  const { runner, clone } = fullCopy(w, srcXml(w, { nvram }), 'qcow2');
  await clone;
  runner.done();
  assert.equal((await facts(w.defined[0]!)).nvramPath, join(w.state, 'new', 'nvram.fd'));
  assert.equal(existsSync(join(w.state, 'new', 'nvram.fd')), false);
});

test('full clone of an EFI VM whose NVRAM cannot be read for another reason than EACCES: that error, no copy through libvirt', async () => {
  const w = newWorld();
  const nvram = join(w.state, 'src', 'nvram.fd');
  mkdirSync(nvram); // copyFile: EISDIR
  const newDisk = join(w.images, 'new.qcow2');
  const calls = [
    ...checkCalls(srcXml(w, { nvram }), 'shut off'),
    { cmd: 'qemu-img', args: ['convert', '-f', 'qcow2', '-O', 'qcow2', w.disk, newDisk] },
  ];
  const { runner, clone } = run(w, calls, { full: true });
  await assert.rejects(clone, (err: unknown) => (err as NodeJS.ErrnoException).code === 'EISDIR');
  runner.done();
  assertNothingLeft(w);
});

test('clone: read-only and non-disk devices that are not files (a shared block device, a host cdrom) are not refused', async () => {
  const w = newWorld();
  const devices =
    "<disk type='block' device='disk'><source dev='/dev/sdz'/><target dev='vdb' bus='virtio'/><readonly/></disk>" +
    "<disk type='block' device='cdrom'><source dev='/dev/sr0'/><target dev='sdb' bus='sata'/></disk></devices>";
  // The block device is a disk, so the info after the clone asks qemu-img about it too.
  const blockInfo = {
    cmd: 'qemu-img',
    args: ['info', '-U', '--output=json', '/dev/sdz'],
    result: { stdout: JSON.stringify({ filename: '/dev/sdz', format: 'raw', 'virtual-size': 1 << 20 }) },
  };
  const { runner, clone } = fullCopy(w, srcXml(w).replace('</devices>', devices), 'qcow2', [], [blockInfo]);
  await clone;
  runner.done();
  assert.deepEqual(
    (await facts(w.defined[0]!)).disks.map((d) => d.path),
    [join(w.images, 'new.qcow2'), ISO, '/dev/sdz', '/dev/sr0'],
  );
});

test('a running SRC with a disk removed live (saved definition has more): refused before any file exists', async () => {
  const w = newWorld();
  const live = ` Target   Source\n------------------\n sda      ${ISO}\n`;
  const { runner, clone } = run(w, [...checkCalls(srcXml(w), 'running'), virshCall(['domblklist', 'src'], live)]);
  await assertFails(clone, 'conflict', /^src's running disks differ from its saved definition/);
  runner.done();
  assert.equal(files(w), 'src.qcow2 0644');
});

test('linked clone of a running VM with an empty cdrom: not a difference between its live and saved disks', async () => {
  const w = newWorld();
  const calls = linkedRunningCalls(w, false);
  calls[0] = virshCall(
    ['dumpxml', 'src', '--inactive', '--security-info'],
    srcXml(w).replace(`<source file='${ISO}'/>`, ''),
  );
  calls[3] = virshCall(
    ['domblklist', 'src'],
    ` Target   Source\n------------------\n vda      ${w.disk}\n sda      -\n`,
  );
  const { runner, clone } = run(w, [...calls, ...infoCalls(w, join(w.images, 'new.qcow2'), 'running')]);
  assert.deepEqual((await clone).frozen, [w.disk]);
  runner.done();
});

test("linked clone: SRC's made keeps its files other than the frozen disk, and gains its overlay", async () => {
  const w = newWorld();
  const other = join(w.images, 'src-data.qcow2');
  const calls = linkedOffCalls(w);
  calls[0] = virshCall(['dumpxml', 'src', '--inactive', '--security-info'], srcXml(w, { made: [w.disk, other] }));
  const { runner, clone } = run(w, [...calls, ...infoCalls(w, join(w.images, 'new.qcow2'))]);
  await clone;
  runner.done();
  assert.deepEqual((await facts(w.defined[1]!)).metadata.made, [other, join(w.images, 'src-2.qcow2')]);
});

test('clone: the steps it shows, and the undo written down when NEW starts (linked, of a running VM; full)', async () => {
  const w = newWorld();
  const steps: string[] = [];
  const calls = [
    ...linkedRunningCalls(w, false),
    virshCall(['start', 'new']),
    ...infoCalls(w, join(w.images, 'new.qcow2'), 'running'),
  ];
  const { runner, clone } = run(w, calls, { start: true }, [], steps);
  await clone;
  runner.done();
  assert.deepEqual(steps, [
    'Checking input',
    "Freezing src's disk as a read-only base",
    'Creating overlays',
    'Defining new',
    'Switching src to its overlay',
    'Starting new',
  ]);
  assert.deepEqual(w.journaled[w.timeline.findIndex((t) => t.startsWith('virsh start new'))]!.slice(-2), [
    'undefine new',
    'stop new',
  ]);
  assert.ok(w.journaled.flat().includes('switch src back to its own disk'), w.journaled.flat().join('; '));
  const full = newWorld();
  const fullSteps: string[] = [];
  const f = fullCopy(full, srcXml(full), 'qcow2', fullSteps);
  await f.clone;
  f.runner.done();
  assert.deepEqual(fullSteps, ['Checking input', 'Copying 1 disk(s)', 'Defining new']);
});

test('clone refusals: each says the way out', async () => {
  const differ = (w: World) => ` Target   Source\n------------------\n sda      ${ISO}\n vda      ${w.dir}/x\n`;
  const cases: [string, (w: World) => Expected[], Partial<CloneOptions>, string][] = [
    ['taken', (w) => checkCalls(srcXml(w), 'shut off', true), {}, 'pick another name for the clone'],
    [
      'block',
      (w) => checkCalls(srcXml(w, { diskType: 'block' }), 'shut off'),
      { full: true },
      'vms clones only file-backed disks: copy it by hand',
    ],
    [
      'foreign',
      (w) => checkCalls(srcXml(w, { made: [] }), 'shut off'),
      {},
      'make an independent full copy, or `vms disk detach src vda` first',
    ],
    ['raw', (w) => checkCalls(srcXml(w, { format: 'raw' }), 'shut off'), {}, 'make an independent full copy'],
    [
      'full running',
      (w) => checkCalls(srcXml(w), 'running'),
      { full: true },
      '`vms stop src` first, or make an instant linked clone',
    ],
    [
      'live differs',
      (w) => [...checkCalls(srcXml(w), 'running'), virshCall(['domblklist', 'src'], differ(w))],
      {},
      'stop src and start it again, then clone',
    ],
  ];
  for (const [what, calls, opts, hint] of cases) {
    const w = newWorld();
    const { runner, clone } = run(w, calls(w), opts);
    await assert.rejects(clone, (err: unknown) => err instanceof VmsError && err.hint === hint, what);
    runner.done();
  }
});
