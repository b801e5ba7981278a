import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderSet, toSetOptions, type SetFlags } from '../../../src/cli/commands/set.js';
import { forCommandLine, needsOffFlag } from '../../../src/cli/hints.js';
import { resolveConfig } from '../../../src/config.js';
import { createContext } from '../../../src/core/context.js';
import { planSet, setVm, type SetResult, type VmSettings } from '../../../src/core/vm/set.js';
import { VmsError } from '../../../src/errors.js';
import { buildDomainXml, domainFacts, parseDomainXml, readMetadata } from '../../../src/libvirt/domain-parse.js';
import { withMetadata } from '../../../src/libvirt/domain-edit.js';
import {
  readResources,
  withCpus,
  withDisplays,
  withMemory,
  withMovedDir,
  type Resources,
} from '../../../src/libvirt/set-xml.js';
import { FakeRunner, type Expected } from '../../helpers/fake-runner.js';
import { assertValidDomainXml } from '../../helpers/validate-xml.js';

// `virsh dumpxml` of a running EFI VM: 4G, 4 vCPUs, one display head, its files in /var/lib/vms/work.
const FIXTURE = readFileSync(new URL('../../fixtures/dumpxml-efi-running.xml', import.meta.url), 'utf8');
const GiB = 2 ** 30;
const MiB = 2 ** 20;

const minimal = (inner: string) =>
  `<domain type='kvm'><name>m</name><memory unit='KiB'>262144</memory>${inner}</domain>`;

const isUsage = (message: RegExp) => (err: unknown) =>
  err instanceof VmsError && err.code === 'usage' && message.test(err.message);

// ---- option parsing ------------------------------------------------------------------------------------------

test('toSetOptions parses sizes and counts; --timeout defaults to 60 s', () => {
  const flags: SetFlags = {
    memory: '1.5G',
    cpus: '4',
    displays: '2',
    rename: 'b',
    notes: 'x',
    restart: true,
    timeout: '60',
  };
  assert.deepEqual(toSetOptions('a', flags), {
    name: 'a',
    memory: 1.5 * GiB,
    cpus: 4,
    displays: 2,
    rename: 'b',
    notes: 'x',
    restart: true,
    timeoutSeconds: 60,
  });
  const notesOnly = toSetOptions('a', { notes: '', timeout: '5' });
  assert.equal(notesOnly.notes, '', 'an empty --notes removes them');
  assert.equal(notesOnly.memory, undefined);
  assert.equal(notesOnly.restart, false);
  assert.equal(toSetOptions('a', { memory: '300.3M', timeout: '60' }).memory! % 1024, 0, 'memory is whole KiB');
});

test('toSetOptions refuses bad input with a usage error', () => {
  const cases: [Partial<SetFlags>, RegExp][] = [
    [{}, /^nothing to change$/],
    [{ memory: 'lots' }, /invalid memory 'lots'/],
    [{ memory: '4' }, /invalid memory '4'/], // no unit: ambiguous
    [{ memory: '1M' }, /out of range/],
    [{ cpus: '0' }, /invalid CPU count '0'/],
    [{ cpus: '1.5' }, /invalid CPU count/],
    [{ displays: '0' }, /invalid display count '0'/],
    [{ displays: '17' }, /invalid display count '17'/],
    [{ notes: 'x', timeout: '-1' }, /invalid --timeout '-1'/],
  ];
  for (const [flags, message] of cases)
    assert.throws(() => toSetOptions('a', { timeout: '60', ...flags }), isUsage(message), JSON.stringify(flags));
});

// ---- reading and editing the definition ----------------------------------------------------------------------

test('readResources: memory, vCPUs (in use of the maximum) and display heads', async () => {
  assert.deepEqual(readResources(await parseDomainXml(FIXTURE)), {
    memory: { max: 4 * GiB, current: 4 * GiB },
    cpus: { max: 4, current: 4 },
    displays: 1,
  });
  const cases: [string, Resources][] = [
    [
      `<currentMemory unit='KiB'>131072</currentMemory><vcpu placement='static' current='2'>4</vcpu>`,
      { memory: { max: 256 * MiB, current: 128 * MiB }, cpus: { max: 4, current: 2 }, displays: undefined },
    ],
    [
      `<devices><video><model type='none'/></video></devices>`,
      { memory: { max: 256 * MiB, current: 256 * MiB }, cpus: { max: 1, current: 1 }, displays: undefined },
    ],
    [
      `<devices><video><model type='qxl'/></video><video><model type='virtio' heads='3' primary='yes'/></video></devices>`,
      { memory: { max: 256 * MiB, current: 256 * MiB }, cpus: { max: 1, current: 1 }, displays: 3 },
    ],
  ];
  for (const [inner, expected] of cases)
    assert.deepEqual(readResources(await parseDomainXml(minimal(inner))), expected, inner);
  await assert.rejects(
    async () => readResources(await parseDomainXml(`<domain><name>m</name><memory unit='GiB'>2</memory></domain>`)),
    /unexpected memory unit 'GiB'/,
  );
});

test('withMemory, withCpus and withDisplays edit a copy that libvirt accepts', async () => {
  const domain = await parseDomainXml(FIXTURE);
  const before = structuredClone(domain);
  const out = withDisplays(withCpus(withMemory(domain, { max: 8 * GiB, current: 6 * GiB }), { max: 6, current: 2 }), 2);
  assert.deepEqual(domain, before, 'the input is left alone');
  assert.deepEqual(out.vcpu, [{ $: { placement: 'static', current: '2' }, _: '6' }]);
  assert.deepEqual(out.devices[0].video[0].model, [{ $: { type: 'virtio', heads: '2', primary: 'yes' } }]);
  const xml = await buildDomainXml(out);
  assertValidDomainXml(xml, 'memory, vCPUs and heads edited');
  assert.deepEqual(readResources(await parseDomainXml(xml)), {
    memory: { max: 8 * GiB, current: 6 * GiB },
    cpus: { max: 6, current: 2 },
    displays: 2,
  });

  // All vCPUs in use again: no `current`; libvirt's per-vCPU list of the old count goes.
  const listed = await parseDomainXml(
    minimal(
      `<vcpu placement='static' current='1'>2</vcpu><vcpus><vcpu id='0' enabled='yes' hotpluggable='no'/><vcpu id='1' enabled='no' hotpluggable='yes'/></vcpus>`,
    ),
  );
  const full = withCpus(listed, { max: 2, current: 2 });
  assert.deepEqual(full.vcpu, [{ $: { placement: 'static' }, _: '2' }]);
  assert.equal(full.vcpus, undefined);
  assert.throws(() => withDisplays(listed, 2), /no video device/);
});

test('withMovedDir points the files in the VM directory into the new one, and nothing else', async () => {
  const domain = await parseDomainXml(
    FIXTURE.replace('<vms:base>/var/lib/libvirt/images/golden.qcow2', '<vms:base>/var/lib/vms/work/golden.qcow2'),
  );
  const out = withMovedDir(domain, '/var/lib/vms/work', '/var/lib/vms/play');
  const xml = await buildDomainXml(out);
  assertValidDomainXml(xml, 'moved directory');
  const facts = domainFacts(await parseDomainXml(xml));
  assert.equal(facts.serialSocket, '/var/lib/vms/play/serial.sock');
  assert.equal(facts.serialLog, '/var/lib/vms/play/console.log');
  assert.equal(facts.nvramPath, '/var/lib/vms/play/nvram.fd');
  assert.deepEqual(out.os[0].nvram[0].$, { template: '/usr/share/edk2/x64/OVMF_VARS.4m.fd' });
  assert.deepEqual(out.devices[0].console[0].source[0].$, { mode: 'bind', path: '/var/lib/vms/play/serial.sock' });
  assert.deepEqual(
    facts.disks.map((d) => d.path),
    ['/var/lib/libvirt/images/work.qcow2', '/var/lib/libvirt/iso/archlinux.iso'],
    'disks stay',
  );
  assert.deepEqual(
    facts.metadata.bases,
    ['/var/lib/vms/work/golden.qcow2', '/var/lib/libvirt/images/arch-base.qcow2'],
    'metadata is left alone',
  );
  assert.ok(!xml.replace('<vms:base>/var/lib/vms/work/', '').includes('/var/lib/vms/work/'), xml);

  // Only whole directory names: /var/lib/vms/work2 is another VM's.
  const neighbour = withMovedDir(
    await parseDomainXml(FIXTURE.replaceAll('/var/lib/vms/work/', '/var/lib/vms/work2/')),
    '/var/lib/vms/work',
    '/x',
  );
  assert.equal(domainFacts(neighbour).serialSocket, '/var/lib/vms/work2/serial.sock');
});

// ---- planning ------------------------------------------------------------------------------------------------

const res = (memory: [number, number], cpus: [number, number], displays?: number): Resources => ({
  memory: { max: memory[0] * GiB, current: memory[1] * GiB },
  cpus: { max: cpus[0], current: cpus[1] },
  displays,
});
const off = (saved: Resources, notes?: string): VmSettings => ({ name: 'w', notes, saved });
const running = (saved: Resources, live = saved): VmSettings => ({ name: 'w', saved, live });

test('planSet on a shut-off VM: memory is what it boots with; the vCPU maximum never shrinks', () => {
  const vm = off(res([4, 4], [4, 4], 1));
  assert.deepEqual(planSet(vm, { memory: 2 * GiB, cpus: 2 }), {
    changes: [
      { setting: 'memory', before: 4 * GiB, after: 2 * GiB, applied: 'config' },
      { setting: 'cpus', before: 4, after: 2, applied: 'config' },
    ],
    needsOff: [],
    memory: { max: 2 * GiB, current: 2 * GiB },
    cpus: { max: 4, current: 2 },
  });
  assert.deepEqual(planSet(vm, { memory: 8 * GiB, cpus: 6 }).cpus, { max: 6, current: 6 });
  assert.deepEqual(planSet(vm, { displays: 2, rename: 'v', notes: 'n' }).changes, [
    { setting: 'displays', before: 1, after: 2, applied: 'config' },
    { setting: 'name', before: 'w', after: 'v', applied: 'config' },
    { setting: 'notes', before: null, after: 'n', applied: 'config' },
  ]);
  assert.deepEqual(
    planSet(vm, { memory: 4 * GiB, cpus: 4, displays: 1, rename: 'w', notes: '' }),
    { changes: [], needsOff: [] },
    'the same values change nothing',
  );
  assert.deepEqual(planSet(off(vm.saved, 'old'), { notes: '' }).changes, [
    { setting: 'notes', before: 'old', after: null, applied: 'config' },
  ]);
});

test('planSet on a running VM: live up to the maxima, the rest needs it shut off', () => {
  const vm = running(res([4, 4], [4, 2], 1));
  const live = planSet(vm, { memory: 3 * GiB, cpus: 3, notes: 'n' });
  assert.deepEqual(live.needsOff, []);
  assert.equal(live.liveMemory, 3 * GiB);
  assert.equal(live.liveCpus, 3);
  assert.deepEqual(live.memory, { max: 4 * GiB, current: 3 * GiB }, 'the maximum stays what it was started with');
  assert.deepEqual(live.cpus, { max: 4, current: 3 });
  assert.deepEqual(
    live.changes.map((c) => c.applied),
    ['live', 'live', 'config'],
  );

  // As the command line names them (src/cli/hints.ts).
  assert.deepEqual(planSet(vm, { memory: 8 * GiB, cpus: 6, displays: 2, rename: 'v' }).needsOff.map(needsOffFlag), [
    '--memory 8G (above the 4G it was started with)',
    '--cpus 6 (above its maximum of 4)',
    '--displays',
    '--rename',
  ]);
  assert.match(needsOffFlag(planSet(vm, { cpus: 1 }).needsOff[0]!), /^--cpus 1 \(fewer than the 2 it runs with/);

  // The balloon did not follow earlier (no driver in the guest): the saved value is right, the live one is sent again.
  const lagging = running(res([4, 3], [4, 4]), res([4, 4], [4, 4]));
  const again = planSet(lagging, { memory: 3 * GiB });
  assert.equal(again.liveMemory, 3 * GiB);
  assert.equal(again.changes[0]!.before, 4 * GiB, 'before is what the VM runs with');
});

test('planSet: --displays on a VM without a display is a conflict', () => {
  assert.throws(
    () => planSet(off(res([1, 1], [1, 1])), { displays: 2 }),
    (err: unknown) =>
      err instanceof VmsError && err.code === 'conflict' && /has no graphical display/.test(err.message),
  );
});

test('renderSet shows each change, before → after, and how it took effect', () => {
  const result: SetResult = {
    name: 'w',
    state: 'running',
    live: true,
    config: true,
    restarted: false,
    warnings: [],
    changes: [
      { setting: 'memory', before: 4 * GiB, after: 1536 * MiB, applied: 'live' },
      { setting: 'displays', before: 1, after: 2, applied: 'restart' },
      { setting: 'notes', before: null, after: 'a "b"', applied: 'config' },
    ],
  };
  assert.equal(
    renderSet(result),
    'memory    4G → 1.5G (now and saved)\ndisplays  1 → 2 (saved, restarted)\nnotes     - → "a \\"b\\"" (saved)',
  );
  assert.equal(renderSet({ ...result, changes: [] }), 'nothing to change: w already has these settings');
});

// ---- applying: all or nothing --------------------------------------------------------------------------------

const URI = 'qemu:///system';
const virsh = (args: string[], stdout = '', exitCode = 0, stderr = ''): Expected => ({
  cmd: 'virsh',
  args: ['-c', URI, ...args],
  result: { stdout, exitCode, stderr },
});
/** A define whose file content is kept for the test to look at. */
const define = (into: string[]): Expected => ({
  cmd: 'virsh',
  args: (a) => a[2] === 'define' && Boolean(into.push(readFileSync(a[3]!, 'utf8'))),
});
const SAVED = FIXTURE.replace("<vcpu placement='static'>4</vcpu>", "<vcpu placement='static' current='2'>4</vcpu>");
const reads = [
  virsh(['dumpxml', 'work', '--inactive', '--security-info'], SAVED),
  virsh(['domstate', 'work'], 'running\n'),
  virsh(['dumpxml', 'work'], SAVED),
];
const STATE = mkdtempSync(join(tmpdir(), 'vms-set-'));
const context = (runner: FakeRunner) =>
  createContext({
    config: resolveConfig({ env: { VMS_STATE_DIR: join(STATE, 'vms'), VMS_CONFIG: join(STATE, 'config.json') } }),
    runner,
  });
const request = { name: 'work', restart: false, timeoutSeconds: 60 };

test('setVm refuses a change that needs the VM off, having only read', async () => {
  const runner = new FakeRunner(reads);
  await assert.rejects(setVm(context(runner), { ...request, memory: 2 * GiB, displays: 2 }), (err: unknown) => {
    assert.ok(err instanceof VmsError);
    assert.equal(err.exitCode, 4);
    assert.equal(
      forCommandLine(err).message,
      'work is running: changing --displays requires the VM to be shut off; use --restart',
    );
    assert.equal(
      err.message,
      'work is running: changing displays requires the VM to be shut off',
      'the core names no flag',
    );
    assert.deepEqual(err.data, { name: 'work', needsOff: [{ setting: 'displays' }] });
    return true;
  });
  runner.done();
});

test('setVm --restart of a paused VM: refused (reason vm.paused) having only read, since it cannot shut down', async () => {
  const paused = [reads[0]!, virsh(['domstate', 'work'], 'paused\n'), reads[2]!];
  const runner = new FakeRunner(paused);
  await assert.rejects(setVm(context(runner), { ...request, restart: true, displays: 2 }), (err: unknown) => {
    assert.ok(err instanceof VmsError);
    assert.deepEqual([err.exitCode, err.reason, err.message], [4, 'vm.paused', 'work is paused and cannot shut down']);
    return true;
  });
  runner.done();
});

test("setVm (the library, past the CLI) refuses notes with U+FFFF before reading anything: exit 2, not the XML builder's error", async () => {
  const runner = new FakeRunner([]);
  await assert.rejects(
    setVm(context(runner), { ...request, notes: 'bad \uFFFF' }),
    (err: unknown) => err instanceof VmsError && err.exitCode === 2 && /may not hold U\+FFFF/.test(err.message),
  );
  await assert.rejects(
    setVm(context(runner), { ...request, memory: 2 * GiB, notes: '\uFFFE' }),
    (err: unknown) => err instanceof VmsError && err.exitCode === 2,
  );
  runner.done();
});

test('setVm on a running VM: the definition first, then live; a failing step undoes the earlier ones', async () => {
  const defined: string[] = [];
  const runner = new FakeRunner([
    ...reads,
    define(defined),
    virsh(['setmem', 'work', String(2 * 1024 * 1024), '--live']),
    virsh(['dommemstat', 'work'], `actual ${2 * 1024 * 1024}\nrss 1000\n`),
    virsh(
      ['setvcpus', 'work', '3', '--live'],
      '',
      1,
      'error: internal error: unable to execute QEMU command device_add\n',
    ),
    virsh(['setmem', 'work', String(4 * 1024 * 1024), '--live']),
    define(defined),
  ]);
  await assert.rejects(
    setVm(context(runner), { ...request, memory: 2 * GiB, cpus: 3, notes: 'n' }),
    /virsh setvcpus failed: .*device_add/,
  );
  runner.done();
  const [edited, restored] = await Promise.all(defined.map(parseDomainXml));
  assert.deepEqual(readResources(edited!), {
    memory: { max: 4 * GiB, current: 2 * GiB },
    cpus: { max: 4, current: 3 },
    displays: 1,
  });
  assert.equal(domainFacts(edited!).metadata.notes, 'n');
  assert.deepEqual(
    restored,
    await parseDomainXml(await buildDomainXml(await parseDomainXml(SAVED))),
    'the saved definition is back',
  );
});

test('notes survive the metadata round trip, markup and lines included; no notes, no key', async () => {
  const notes = 'needs 2G & <a quiet> "desk"\nsecond line';
  const xml = await buildDomainXml(
    await withMetadata(await parseDomainXml(FIXTURE), { profile: 'dev', bases: [], made: [], notes }),
  );
  assertValidDomainXml(xml, 'notes in the metadata');
  assert.equal(readMetadata(await parseDomainXml(xml)).notes, notes);
  const without = readMetadata(
    await parseDomainXml(
      await buildDomainXml(await withMetadata(await parseDomainXml(FIXTURE), { bases: [], made: [] })),
    ),
  );
  assert.ok(!('notes' in without));
});

test('planSet at the edges: a value equal to the maximum is live, one the VM already runs with is only saved', () => {
  // Memory and vCPUs up to exactly their maxima: live, nothing needs it off.
  const atMax = planSet(running(res([4, 2], [4, 2], 1)), { memory: 4 * GiB, cpus: 4 });
  assert.deepEqual([atMax.needsOff, atMax.liveMemory, atMax.liveCpus], [[], 4 * GiB, 4]);

  // Running with what is asked, but saved with something else: the saved definition changes, the running VM not.
  const lagging = planSet(running(res([4, 3], [4, 2], 1), res([4, 4], [4, 3], 1)), { memory: 4 * GiB, cpus: 3 });
  assert.deepEqual(lagging, {
    changes: [
      { setting: 'memory', before: 4 * GiB, after: 4 * GiB, applied: 'config' },
      { setting: 'cpus', before: 3, after: 3, applied: 'config' },
    ],
    needsOff: [],
    memory: { max: 4 * GiB, current: 4 * GiB },
    cpus: { max: 4, current: 3 },
  });

  // Saved as asked, but running with something else: the running VM changes.
  const behind = planSet(running(res([4, 3], [4, 3], 1), res([4, 4], [4, 2], 1)), { cpus: 3 });
  assert.deepEqual([behind.liveCpus, behind.changes], [3, [{ setting: 'cpus', before: 2, after: 3, applied: 'live' }]]);

  // On a shut-off VM, heads and a rename need nothing off.
  assert.deepEqual(planSet(off(res([4, 4], [4, 4], 1)), { displays: 2, rename: 'v' }), {
    changes: [
      { setting: 'displays', before: 1, after: 2, applied: 'config' },
      { setting: 'name', before: 'w', after: 'v', applied: 'config' },
    ],
    needsOff: [],
    displays: 2,
    name: 'v',
  });
});

test('planSet: --displays on a VM without a display names why, with its reason', () => {
  assert.throws(
    () => planSet(off(res([1, 1], [1, 1])), { displays: 2 }),
    (err: unknown) =>
      err instanceof VmsError &&
      err.reason === 'set.noGraphics' &&
      err.hint === 'it was created without one' &&
      err.message === 'w has no graphical display to give more heads',
  );
});
