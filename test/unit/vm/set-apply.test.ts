import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setVm, type SetOptions } from '../../../src/core/vm/set.js';
import { VmsError } from '../../../src/errors.js';
import { buildDomainXml, parseDomainXml } from '../../../src/libvirt/domain-parse.js';
import { renderMetadata } from '../../../src/libvirt/metadata.js';
import type { Expected } from '../../helpers/fake-runner.js';
import { FakeRunner } from '../../helpers/fake-runner.js';
import { defineCall, disk, loadCalls, when } from '../../helpers/domain-fake.js';
import { tempHost } from '../../helpers/temp-host.js';
import { contextOn, virshCall } from '../../helpers/virsh-fake.js';
import { PolledStateRunner, recordingProgress, virshFails } from '../../helpers/vm-fake.js';

// setVm past its planner (src/core/vm/set.ts): the exact virsh calls of each change, a running VM's restart, and the
// rename that moves the VM's directory, with the undo of every step. Real files in a temp dir, processes from the
// strict fake runner; the calls each undo makes are listed too, so an undo that does more or less fails the test.

const VM = 'web';
const NEW = 'db';
const KiB = 1024;
const GiB = 2 ** 30;

/** A VM's saved definition: its serial console and NVRAM in its own directory, its disk in the images dir. */
function domainXml(
  h: ReturnType<typeof tempHost>,
  o: { dir?: string; memKiB?: number; cpus?: [number, number]; heads?: number; notes?: string; pending?: boolean } = {},
) {
  const dir = o.dir ?? h.vmDir(VM);
  const [max, current] = o.cpus ?? [4, 2];
  const metadata = renderMetadata({
    bases: [],
    made: [h.img('web.qcow2')],
    notes: o.notes,
    pending: o.pending ? 'install' : undefined,
  });
  return (
    `<domain type='qemu'><name>${VM}</name><uuid>00000000-0000-4000-8000-00000000000a</uuid>` +
    `<metadata>${metadata}</metadata>` +
    `<memory unit='KiB'>${4 * 1024 * 1024}</memory><currentMemory unit='KiB'>${o.memKiB ?? 4 * 1024 * 1024}</currentMemory>` +
    `<vcpu placement='static' current='${current}'>${max}</vcpu>` +
    `<os><type arch='x86_64' machine='q35'>hvm</type><nvram>${dir}/nvram.fd</nvram></os>` +
    `<devices>${disk(h.img('web.qcow2'), 'vda')}` +
    `<serial type='unix'><source mode='bind' path='${dir}/serial.sock'/><log file='${dir}/serial.log'/>` +
    `<target port='0'/></serial><graphics type='spice' autoport='yes'/>` +
    `<video><model type='virtio' heads='${o.heads ?? 1}' primary='yes'/></video></devices></domain>`
  );
}

/** The same definition as text that went through the XML parser and builder: comparable with what was defined. */
const normal = async (xml: string) => parseDomainXml(await buildDomainXml(await parseDomainXml(xml)));

/** Every file and directory under `dir` with its content ('dir' for a directory); vms' own bookkeeping left out. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string) => {
    for (const name of readdirSync(d).sort()) {
      if (rel === '' && (name === '.operations' || name === '.locks')) continue;
      const path = join(d, name);
      const key = rel + name;
      if (statSync(path).isDirectory()) {
        out[key + '/'] = 'dir';
        walk(path, key + '/');
      } else out[key] = readFileSync(path, 'utf8');
    }
  };
  walk(dir, '');
  return out;
}

/** A host with web's directory full of its files, and its disk. */
function webHost() {
  const h = tempHost();
  mkdirSync(h.vmDir(VM));
  mkdirSync(join(h.vmDir(VM), 'events'));
  for (const f of ['serial.log', 'nvram.fd', 'root-password', 'settings.sh', 'install.log', 'events/1.ndjson'])
    h.file(join(h.vmDir(VM), f));
  h.file(h.img('web.qcow2'));
  return h;
}

/** The tree of web's files, as if its directory were called `name`. */
function webFilesAt(before: Record<string, string>, name: string) {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(before)) out[k.replace(/^web\//, `${name}/`)] = v;
  return out;
}

/** A context on `runner` in h's dirs, with its steps recorded. */
function recorded(h: ReturnType<typeof tempHost>, runner: FakeRunner | PolledStateRunner) {
  const { ctx } = contextOn(runner, h.env);
  const rec = recordingProgress();
  ctx.progress = rec.progress;
  return { ctx, ...rec };
}

const absent = (name: string) =>
  virshCall(['domuuid', name], '', { exitCode: 1, stderr: `error: failed to get domain '${name}'\n` });
const present = (name: string) => virshCall(['domuuid', name], '00000000-0000-4000-8000-00000000000a\n');
const state = (name: string, s: string) => virshCall(['domstate', name], `${s}\n`);
const liveXml = (xml: string) => virshCall(['dumpxml', VM], xml);
const NO_SNAPSHOTS = virshCall(['snapshot-list', VM, '--name'], '');
/** checkRename's questions for a free name: no VM of that name, no snapshots of web. */
const renameChecks = [absent(NEW), NO_SNAPSHOTS];

const ask = (o: Partial<SetOptions>): SetOptions => ({ name: VM, restart: false, timeoutSeconds: 5, ...o });

/** The error is a VmsError with these fields (those given). */
const isError =
  (want: { code?: string; reason?: string; message: string; hint?: string; data?: unknown }) => (err: unknown) => {
    assert.ok(err instanceof VmsError, String(err));
    const got = { code: err.code, reason: err.reason, message: err.message, hint: err.hint, data: err.data };
    for (const k of Object.keys(got) as (keyof typeof got)[]) if (!(k in want)) delete got[k];
    assert.deepEqual(got, want);
    return true;
  };

// ---- rename: refused before anything moves ---------------------------------------------------------------------

/** Runs a set that must be refused with `want`, after exactly `calls`: nothing on the host changed, no journal left. */
async function refused(h: ReturnType<typeof tempHost>, o: Partial<SetOptions>, calls: Expected[], want: object) {
  const before = tree(h.state);
  const runner = new FakeRunner(calls);
  const { ctx, steps } = recorded(h, runner);
  await assert.rejects(setVm(ctx, ask(o)), isError(want as Parameters<typeof isError>[0]));
  runner.done();
  assert.deepEqual(tree(h.state), before, 'nothing moved');
  assert.deepEqual(h.journals(), []);
  assert.deepEqual(steps, ['Checking input']);
}

test('rename refused: a VM of that name exists (conflict), having asked only that', async () => {
  const h = webHost();
  const calls = [...loadCalls(VM, domainXml(h)), present(NEW)];
  await refused(h, { rename: NEW }, calls, {
    code: 'conflict',
    message: "a VM named 'db' already exists",
    hint: 'pick another name',
  });
});

test('rename refused: an invalid name is a usage error before anything is asked', async () => {
  const h = webHost();
  const before = tree(h.state);
  const runner = new FakeRunner([]);
  const { ctx } = recorded(h, runner);
  await assert.rejects(
    setVm(ctx, ask({ rename: '../db' })),
    isError({ code: 'usage', message: "invalid VM name '../db'" }),
  );
  runner.done();
  assert.deepEqual(tree(h.state), before);
});

test("rename refused: the new name's directory holds something (it is left alone)", async () => {
  const h = webHost();
  mkdirSync(h.vmDir(NEW));
  h.file(join(h.vmDir(NEW), 'other'));
  const calls = [...loadCalls(VM, domainXml(h)), absent(NEW)];
  await refused(h, { rename: NEW }, calls, {
    code: 'conflict',
    message: `${h.vmDir(NEW)} already exists and is not empty`,
    hint: 'move it away or pick another name',
  });
});

test('rename refused: an unfinished create (reason set.unfinished), before its snapshots are asked', async () => {
  const h = webHost();
  const calls = [...loadCalls(VM, domainXml(h, { pending: true })), absent(NEW)];
  await refused(h, { rename: NEW }, calls, {
    code: 'conflict',
    reason: 'set.unfinished',
    message: 'web is an unfinished create',
    hint: 'finish its create (or destroy it) first',
    data: { name: 'web' },
  });
});

test('rename refused: a VM with snapshots (libvirt cannot rename it)', async () => {
  const h = webHost();
  const calls = [...loadCalls(VM, domainXml(h)), absent(NEW), virshCall(['snapshot-list', VM, '--name'], 'before\n')];
  await refused(h, { rename: NEW }, calls, {
    code: 'conflict',
    message: 'web has snapshots, and libvirt cannot rename a VM that has them',
    hint: '`virsh snapshot-list web` shows them',
  });
});

test('rename refused: a running VM without restart (set.needsOff), every change that needs it off named', async () => {
  const h = webHost();
  const xml = domainXml(h);
  const calls = [...loadCalls(VM, xml, 'running'), liveXml(xml), ...renameChecks];
  await refused(h, { rename: NEW, displays: 2 }, calls, {
    code: 'conflict',
    reason: 'set.needsOff',
    message: 'web is running: changing displays and rename requires the VM to be shut off',
    hint:
      'a restart shuts it down (ACPI), applies everything and starts it again; or `vms stop web` first. ' +
      'Nothing was changed.',
    data: { name: 'web', needsOff: [{ setting: 'displays' }, { setting: 'rename' }] },
  });
});

test('a rename to its own name changes nothing: no check of the name, no define', async () => {
  const h = webHost();
  const before = tree(h.state);
  const runner = new FakeRunner(loadCalls(VM, domainXml(h)));
  const { ctx, steps } = recorded(h, runner);
  assert.deepEqual(await setVm(ctx, ask({ rename: VM })), {
    name: VM,
    state: 'shut off',
    changes: [],
    live: false,
    config: false,
    restarted: false,
    warnings: [],
  });
  runner.done();
  assert.deepEqual(steps, ['Checking input']);
  assert.deepEqual(tree(h.state), before);
});

// ---- rename: the directory moves, then the definition, then the name --------------------------------------------

test('rename of a shut-off VM: its directory moves whole, the definition points into it, then virsh domrename', async () => {
  const h = webHost();
  const before = tree(h.state);
  const xml = domainXml(h);
  const defined: string[] = [];
  const journals: unknown[] = [];
  const runner = new FakeRunner([
    when(loadCalls(VM, xml)[0]!, () => journals.push(...h.journals().map((j) => [j.command, j.vms]))),
    loadCalls(VM, xml)[1]!,
    ...renameChecks,
    when(
      defineCall((x) => defined.push(x)),
      () => assert.deepEqual(tree(h.state), webFilesAt(before, NEW), 'moved before the define'),
    ),
    virshCall(['domrename', VM, NEW]),
    state(NEW, 'shut off'),
  ]);
  const { ctx, steps } = recorded(h, runner);
  assert.deepEqual(await setVm(ctx, ask({ rename: NEW })), {
    name: NEW,
    state: 'shut off',
    changes: [{ setting: 'name', before: VM, after: NEW, applied: 'config' }],
    live: false,
    config: true,
    restarted: false,
    warnings: [],
  });
  runner.done();
  assert.deepEqual(journals, [['set', [NEW, VM]]], 'one operation, both names locked');
  assert.deepEqual(steps, [
    'Checking input',
    `Moving ${h.vmDir(VM)} to ${h.vmDir(NEW)}`,
    "Saving web's definition",
    'Renaming web to db',
  ]);
  // The same definition (still named web: domrename renames it) with its own files in the new directory.
  assert.deepEqual(await normal(defined[0]!), await normal(domainXml(h, { dir: h.vmDir(NEW) })));
  assert.deepEqual(tree(h.state), webFilesAt(before, NEW));
  assert.ok(!existsSync(h.vmDir(VM)));
  assert.deepEqual(h.journals(), []);
});

test('rename onto an empty directory of the new name: allowed, the VM directory takes its place', async () => {
  const h = webHost();
  const before = tree(h.state);
  mkdirSync(h.vmDir(NEW));
  const runner = new FakeRunner([
    ...loadCalls(VM, domainXml(h)),
    ...renameChecks,
    defineCall(() => {}),
    virshCall(['domrename', VM, NEW]),
    state(NEW, 'shut off'),
  ]);
  const { ctx } = recorded(h, runner);
  assert.equal((await setVm(ctx, ask({ rename: NEW }))).name, NEW);
  runner.done();
  assert.deepEqual(tree(h.state), webFilesAt(before, NEW));
});

test('rename of a VM without a directory: nothing to move, no step for it', async () => {
  const h = tempHost();
  const runner = new FakeRunner([
    ...loadCalls(VM, domainXml(h)),
    ...renameChecks,
    defineCall(() => {}),
    virshCall(['domrename', VM, NEW]),
    state(NEW, 'shut off'),
  ]);
  const { ctx, steps } = recorded(h, runner);
  assert.equal((await setVm(ctx, ask({ rename: NEW }))).name, NEW);
  runner.done();
  assert.deepEqual(steps, ['Checking input', "Saving web's definition", 'Renaming web to db']);
  assert.deepEqual(tree(h.state), {});
});

test('rename: virsh domrename fails; the definition is put back, then the directory (nothing renamed back)', async () => {
  const h = webHost();
  const before = tree(h.state);
  const xml = domainXml(h);
  const defined: string[] = [];
  const runner = new FakeRunner([
    ...loadCalls(VM, xml),
    ...renameChecks,
    defineCall((x) => defined.push(x)),
    virshFails(['domrename', VM, NEW], 'error: internal error: cannot rename\n'),
    absent(NEW), // the undo of the rename: no db, so nothing to rename back
    when(
      defineCall((x) => defined.push(x)),
      () => assert.deepEqual(tree(h.state), webFilesAt(before, NEW), 'the definition first, the files after'),
    ),
  ]);
  const { ctx, failed } = recorded(h, runner);
  await assert.rejects(
    setVm(ctx, ask({ rename: NEW })),
    isError({ code: 'failed', message: 'virsh domrename failed: internal error: cannot rename' }),
  );
  runner.done();
  assert.deepEqual(failed, ['Renaming web to db']);
  assert.equal(defined[1], await buildDomainXml(await parseDomainXml(xml)), 'the saved definition, as it was');
  assert.deepEqual(tree(h.state), before, 'every file back in its place');
  assert.deepEqual(h.journals(), []);
});

test('rename: the define fails; the directory is moved back', async () => {
  const h = webHost();
  const before = tree(h.state);
  const runner = new FakeRunner([
    ...loadCalls(VM, domainXml(h)),
    ...renameChecks,
    defineCall(() => {}, { exitCode: 1, stderr: 'error: internal error: bad definition\n' }),
    defineCall(() => {}),
  ]);
  const { ctx } = recorded(h, runner);
  await assert.rejects(
    setVm(ctx, ask({ rename: NEW })),
    isError({ message: 'virsh define failed: internal error: bad definition' }),
  );
  runner.done();
  assert.deepEqual(tree(h.state), before);
});

test('rename: a directory that vanishes before it moves fails the move; its undo does not try to move it back', async () => {
  const h = webHost();
  const runner = new FakeRunner([...loadCalls(VM, domainXml(h)), ...renameChecks]);
  const { ctx, steps } = recorded(h, runner);
  const progress = ctx.progress;
  ctx.progress = {
    ...progress,
    step: (title, fn) => {
      if (title.startsWith('Moving')) renameSync(h.vmDir(VM), join(h.outside, 'web'));
      return progress.step(title, fn);
    },
  };
  await assert.rejects(setVm(ctx, ask({ rename: NEW })), (err: unknown) => {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOENT');
    assert.ok(!(err as Error).message.includes('clean-up failed'), (err as Error).message);
    return true;
  });
  runner.done();
  assert.equal(steps.length, 2);
  assert.ok(!existsSync(h.vmDir(NEW)) && !existsSync(h.vmDir(VM)));
});

test('rename: an undo that cannot move the directory back says so, and leaves both where they are', async () => {
  const h = webHost();
  const runner = new FakeRunner([
    ...loadCalls(VM, domainXml(h)),
    ...renameChecks,
    when(
      defineCall(() => {}, { exitCode: 1, stderr: 'error: bad\n' }),
      () => {
        mkdirSync(h.vmDir(VM));
        writeFileSync(join(h.vmDir(VM), 'new'), 'x'); // something made web's directory again meanwhile
      },
    ),
    defineCall(() => {}),
  ]);
  const { ctx } = recorded(h, runner);
  await assert.rejects(setVm(ctx, ask({ rename: NEW })), (err: unknown) => {
    assert.match(
      (err as Error).message,
      new RegExp(`^virsh define failed: bad \\(and clean-up failed: move ${h.vmDir(NEW)} back: ENOTEMPTY`),
    );
    return true;
  });
  runner.done();
  assert.deepEqual(readdirSync(h.vmDir(VM)), ['new']);
  assert.ok(existsSync(join(h.vmDir(NEW), 'nvram.fd')));
});

// ---- restart: shut down, apply, start again -------------------------------------------------------------------

/** stopVm's calls inside set: web loaded again, ACPI, and off at the first question. */
const shutsDown = (xml: string) => [
  ...loadCalls(VM, xml, 'running'),
  virshCall(['shutdown', VM]),
  state(VM, 'shut off'),
  state(VM, 'shut off'),
];

test('restart of a running VM renamed and given a head: shut down, move, define, rename, start db', async () => {
  const h = webHost();
  const before = tree(h.state);
  const xml = domainXml(h);
  const defined: string[] = [];
  const runner = new FakeRunner([
    ...loadCalls(VM, xml, 'running'),
    liveXml(xml),
    ...renameChecks,
    ...shutsDown(xml),
    defineCall((x) => defined.push(x)),
    virshCall(['domrename', VM, NEW]),
    virshCall(['start', NEW]),
    state(NEW, 'running'),
  ]);
  const { ctx, steps } = recorded(h, runner);
  assert.deepEqual(await setVm(ctx, ask({ rename: NEW, displays: 2, restart: true, timeoutSeconds: 7 })), {
    name: NEW,
    state: 'running',
    changes: [
      { setting: 'displays', before: 1, after: 2, applied: 'restart' },
      { setting: 'name', before: VM, after: NEW, applied: 'restart' },
    ],
    live: false,
    config: true,
    restarted: true,
    warnings: [],
  });
  runner.done();
  assert.deepEqual(steps, [
    'Checking input',
    'Shutting down web (ACPI, up to 7s)',
    `Moving ${h.vmDir(VM)} to ${h.vmDir(NEW)}`,
    "Saving web's definition",
    'Renaming web to db',
    'Starting db',
  ]);
  assert.deepEqual(await normal(defined[0]!), await normal(domainXml(h, { dir: h.vmDir(NEW), heads: 2 })));
  assert.deepEqual(tree(h.state), webFilesAt(before, NEW));
});

test('restart: db fails to start; undone newest first: not stopped, renamed back, definition, files, web started', async () => {
  const h = webHost();
  const before = tree(h.state);
  const xml = domainXml(h);
  const defined: string[] = [];
  const filesAtNew = () => assert.deepEqual(tree(h.state), webFilesAt(before, NEW));
  const runner = new FakeRunner([
    ...loadCalls(VM, xml, 'running'),
    liveXml(xml),
    ...renameChecks,
    ...shutsDown(xml),
    defineCall((x) => defined.push(x)),
    virshCall(['domrename', VM, NEW]),
    virshFails(['start', NEW], "error: Failed to start domain 'db'\nerror: internal error: no\n"),
    present(NEW), // stop db: it is there, but off
    state(NEW, 'shut off'),
    present(NEW), // rename it back
    when(virshCall(['domrename', NEW, VM]), filesAtNew),
    when(
      defineCall((x) => defined.push(x)),
      filesAtNew,
    ),
    when(present(VM), () => assert.deepEqual(tree(h.state), before, 'the files back before web starts')),
    state(VM, 'shut off'),
    virshCall(['start', VM]),
  ]);
  const { ctx, failed } = recorded(h, runner);
  await assert.rejects(
    setVm(ctx, ask({ rename: NEW, restart: true, timeoutSeconds: 7 })),
    isError({ code: 'failed', message: "virsh start failed: Failed to start domain 'db': internal error: no" }),
  );
  runner.done();
  assert.deepEqual(failed, ['Starting db']);
  assert.equal(defined[1], await buildDomainXml(await parseDomainXml(xml)));
  assert.deepEqual(h.journals(), []);
});

test('restart: a failed start and an undo libvirt no longer answers: each step left is named', async () => {
  const h = webHost();
  const xml = domainXml(h);
  const gone = 'error: failed to connect to the hypervisor\nerror: no socket\n';
  const runner = new FakeRunner([
    ...loadCalls(VM, xml, 'running'),
    liveXml(xml),
    ...renameChecks,
    ...shutsDown(xml),
    defineCall(() => {}),
    virshCall(['domrename', VM, NEW]),
    virshFails(['start', NEW], 'error: internal error: no\n'),
    virshFails(['domuuid', NEW], gone),
    virshFails(['domuuid', NEW], gone),
    { ...defineCall(() => {}), result: { exitCode: 1, stderr: gone } },
    virshFails(['domuuid', VM], gone),
  ]);
  const { ctx } = recorded(h, runner);
  const unreachable = 'cannot reach libvirt at qemu:///system: no socket';
  await assert.rejects(setVm(ctx, ask({ rename: NEW, restart: true })), (err: unknown) => {
    assert.equal(
      (err as Error).message,
      'virsh start failed: internal error: no (and clean-up failed: ' +
        [`stop db: ${unreachable}`, `rename db back to web: ${unreachable}`, `restore web's definition: ${unreachable}`]
          .concat(`start web again: ${unreachable}`)
          .join('; ') +
        ')',
    );
    return true;
  });
  runner.done();
});

test('restart: a guest that ignores ACPI for the whole timeout: set.shutdownTimeout, nothing changed, not started', async () => {
  const h = webHost();
  const before = tree(h.state);
  const xml = domainXml(h);
  const strict = new FakeRunner([
    loadCalls(VM, xml)[0]!, // domstate web is answered "running" however often it is asked
    liveXml(xml),
    loadCalls(VM, xml)[0]!,
    virshCall(['shutdown', VM]),
    present(VM), // start web again, if off: it runs
  ]);
  const runner = new PolledStateRunner(strict, VM, () => 'running');
  const { ctx, steps } = recorded(h, runner);
  const started = Date.now();
  await assert.rejects(
    setVm(ctx, ask({ displays: 2, restart: true, timeoutSeconds: 1 })),
    isError({
      code: 'timeout',
      reason: 'set.shutdownTimeout',
      message: 'web did not shut down within 1s; nothing was changed',
      hint: 'the guest may ignore ACPI: wait longer, or power it off and run this again',
      data: { name: 'web' },
    }),
  );
  const took = Date.now() - started;
  strict.done();
  assert.ok(took >= 1000 && took < 2500, `waited the timeout: ${took} ms`);
  assert.deepEqual(steps, ['Checking input', 'Shutting down web (ACPI, up to 1s)']);
  assert.deepEqual(tree(h.state), before);
});

test('restart: a shutdown virsh refuses fails with its own error (not a timeout); web is not started', async () => {
  const h = webHost();
  const xml = domainXml(h);
  const runner = new FakeRunner([
    ...loadCalls(VM, xml, 'running'),
    liveXml(xml),
    ...loadCalls(VM, xml, 'running'),
    virshFails(['shutdown', VM], 'error: internal error: refused\n'),
    present(VM),
    state(VM, 'running'),
  ]);
  const { ctx } = recorded(h, runner);
  await assert.rejects(
    setVm(ctx, ask({ displays: 2, restart: true })),
    isError({ code: 'failed', reason: undefined, message: 'virsh shutdown failed: internal error: refused' }),
  );
  runner.done();
});

// ---- changes without a restart: the definition, then live ------------------------------------------------------

test('a shut-off VM: memory, vCPUs, heads and notes in one define, and nothing else of it changed', async () => {
  const h = webHost();
  const before = tree(h.state);
  const defined: string[] = [];
  const runner = new FakeRunner([
    ...loadCalls(VM, domainXml(h, { notes: 'old' })),
    defineCall((x) => defined.push(x)),
    state(VM, 'shut off'),
  ]);
  const { ctx, steps } = recorded(h, runner);
  const r = await setVm(ctx, ask({ memory: 2 * GiB, cpus: 3, displays: 2, notes: 'new' }));
  runner.done();
  assert.deepEqual(r, {
    name: VM,
    state: 'shut off',
    changes: [
      { setting: 'memory', before: 4 * GiB, after: 2 * GiB, applied: 'config' },
      { setting: 'cpus', before: 2, after: 3, applied: 'config' },
      { setting: 'displays', before: 1, after: 2, applied: 'config' },
      { setting: 'notes', before: 'old', after: 'new', applied: 'config' },
    ],
    live: false,
    config: true,
    restarted: false,
    warnings: [],
  });
  assert.deepEqual(steps, ['Checking input', "Saving web's definition"]);
  const want = domainXml(h, { cpus: [4, 3], heads: 2, notes: 'new' })
    .replace(`<memory unit='KiB'>${4 * 1024 * 1024}`, `<memory unit='KiB'>${2 * 1024 * 1024}`)
    .replace(`<currentMemory unit='KiB'>${4 * 1024 * 1024}`, `<currentMemory unit='KiB'>${2 * 1024 * 1024}`);
  assert.deepEqual(await normal(defined[0]!), await normal(want));
  assert.deepEqual(tree(h.state), before, 'no file moved');
});

test('only the heads change: memory, vCPUs and the notes the VM has are kept as they are', async () => {
  const h = webHost();
  const defined: string[] = [];
  const runner = new FakeRunner([
    ...loadCalls(VM, domainXml(h, { notes: 'keep' })),
    defineCall((x) => defined.push(x)),
    state(VM, 'shut off'),
  ]);
  const { ctx } = recorded(h, runner);
  await setVm(ctx, ask({ displays: 3 }));
  runner.done();
  assert.deepEqual(await normal(defined[0]!), await normal(domainXml(h, { heads: 3, notes: 'keep' })));
});

/** The guest agent's ping: answered, or no agent. */
const agentPing = (answers: boolean) =>
  answers
    ? virshCall(['qemu-agent-command', VM, '{"execute":"guest-ping"}', '--timeout', '2'], '{"return":{}}')
    : virshFails(
        ['qemu-agent-command', VM, '{"execute":"guest-ping"}', '--timeout', '2'],
        'error: Guest agent is not responding: QEMU guest agent is not connected\n',
      );

/** A running web: its reads, then the define of the plan (notes and all). */
const runningWeb = (xml: string, defined: string[]) => [
  ...loadCalls(VM, xml, 'running'),
  liveXml(xml),
  defineCall((x) => defined.push(x)),
];

test('a running VM: the define, the balloon (followed), vCPUs plugged and brought online by the agent', async () => {
  const h = webHost();
  const xml = domainXml(h);
  const defined: string[] = [];
  const runner = new FakeRunner([
    ...runningWeb(xml, defined),
    virshCall(['setmem', VM, String((2 * GiB) / KiB), '--live']),
    virshCall(['dommemstat', VM], `actual ${(2 * GiB) / KiB}\nrss 1000\n`),
    virshCall(['setvcpus', VM, '3', '--live']),
    agentPing(true),
    virshCall(['setvcpus', VM, '3', '--guest']),
    state(VM, 'running'),
  ]);
  const { ctx, steps, notes } = recorded(h, runner);
  assert.deepEqual(await setVm(ctx, ask({ memory: 2 * GiB, cpus: 3, notes: 'n' })), {
    name: VM,
    state: 'running',
    changes: [
      { setting: 'memory', before: 4 * GiB, after: 2 * GiB, applied: 'live' },
      { setting: 'cpus', before: 2, after: 3, applied: 'live' },
      { setting: 'notes', before: null, after: 'n', applied: 'config' },
    ],
    live: true,
    config: true,
    restarted: false,
    warnings: [],
  });
  runner.done();
  assert.deepEqual(steps, [
    'Checking input',
    "Saving web's definition",
    "Setting web's memory to 2G (balloon)",
    'Plugging in vCPUs (3 in all)',
  ]);
  assert.deepEqual(notes, []);
  const want = domainXml(h, { memKiB: (2 * GiB) / KiB, cpus: [4, 3], notes: 'n' });
  assert.deepEqual(await normal(defined[0]!), await normal(want), 'the maximum memory stays');
});

const NO_UDEV =
  'no guest agent brought the new vCPUs online: a guest without a udev rule for it needs ' +
  '`echo 1 > /sys/devices/system/cpu/cpuN/online`';

test('vCPUs plugged but not brought online (no agent; an agent that fails): a warning, also as a note', async () => {
  for (const agent of [
    [agentPing(false)],
    [agentPing(true), virshFails(['setvcpus', VM, '4', '--guest'], 'error: x\n')],
  ]) {
    const h = webHost();
    const runner = new FakeRunner([
      ...runningWeb(domainXml(h), []),
      virshCall(['setvcpus', VM, '4', '--live']),
      ...agent,
      state(VM, 'running'),
    ]);
    const { ctx, notes } = recorded(h, runner);
    const r = await setVm(ctx, ask({ cpus: 4 }));
    runner.done();
    assert.deepEqual([r.warnings, notes, r.live], [[NO_UDEV], [NO_UDEV], true]);
  }
});

test('a balloon the guest does not follow: asked for 4.5 s, then a warning (the memory stays set)', async () => {
  const h = webHost();
  const strict = new FakeRunner([
    ...runningWeb(domainXml(h), []),
    virshCall(['setmem', VM, String((3 * GiB) / KiB), '--live']),
    state(VM, 'running'),
  ]);
  let asked = 0;
  const runner = {
    run: (cmd: string, args: readonly string[]) => {
      if (args[2] !== 'dommemstat') return strict.run(cmd, args);
      asked++;
      return Promise.resolve({ stdout: `actual ${(4 * GiB) / KiB}\n`, stderr: '', exitCode: 0 });
    },
    interactive: () => Promise.resolve(1),
  };
  const { ctx } = contextOn(runner, h.env);
  const started = Date.now();
  const r = await setVm(ctx, ask({ memory: 3 * GiB }));
  const took = Date.now() - started;
  strict.done();
  assert.deepEqual(r.warnings, [
    'the guest has not followed the balloon to 3G (does it run the virtio_balloon driver?)',
  ]);
  assert.ok(took >= 4500 && took < 6500, `waited 4.5 s: ${took} ms`);
  assert.ok(asked >= 9 && asked <= 11, `about ten questions: ${asked}`);
});

test('plugging vCPUs fails: the memory set back live fails too, and is named; the definition is restored', async () => {
  const h = webHost();
  const xml = domainXml(h);
  const defined: string[] = [];
  const runner = new FakeRunner([
    ...runningWeb(xml, defined),
    virshCall(['setmem', VM, String((2 * GiB) / KiB), '--live']),
    virshCall(['dommemstat', VM], `actual ${(2 * GiB) / KiB}\n`),
    virshFails(['setvcpus', VM, '3', '--live'], 'error: internal error: device_add\n'),
    virshFails(['setmem', VM, String((4 * GiB) / KiB), '--live'], 'error: internal error: balloon\n'),
    defineCall((x) => defined.push(x)),
  ]);
  const { ctx } = recorded(h, runner);
  await assert.rejects(
    setVm(ctx, ask({ memory: 2 * GiB, cpus: 3 })),
    isError({
      message:
        'virsh setvcpus failed: internal error: device_add (and clean-up failed: ' +
        "set web's memory back: virsh setmem failed: internal error: balloon)",
    }),
  );
  runner.done();
  assert.equal(defined[1], await buildDomainXml(await parseDomainXml(xml)));
});

test('notes XML cannot hold are refused with the words of set (usage), before anything is read', async () => {
  const h = webHost();
  const runner = new FakeRunner([]);
  const { ctx } = recorded(h, runner);
  await assert.rejects(
    setVm(ctx, ask({ notes: 'a\u0001' })),
    isError({
      code: 'usage',
      message:
        'the notes may not hold U+0001: control characters, U+FFFE, U+FFFF and lone surrogates cannot be kept in ' +
        "the domain's XML",
    }),
  );
  runner.done();
});
