import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { collectGarbage, planGc } from '../../../src/core/storage/gc.js';
import { VmsError } from '../../../src/errors.js';
import { VMS_NS } from '../../../src/libvirt/metadata.js';
import { defineCall } from '../../helpers/domain-fake.js';
import type { Expected } from '../../helpers/fake-runner.js';
import { batchCall, fakeContext, virshCall } from '../../helpers/virsh-fake.js';

const NONE = ' Name   Creation Time   State\n-----\n';
const dir = mkdtempSync(join(tmpdir(), 'vms-unit-gc-'));
const outside = mkdtempSync(join(tmpdir(), 'vms-unit-gc-other-')); // another configuration's images dir
const f = (name: string) => join(dir, name);
const vm = (name: string, disks: string[], made: string[], bases: string[] = []) =>
  `<domain type='qemu'><name>${name}</name><metadata><vms:vm xmlns:vms="${VMS_NS}">${bases.map((b) => `<vms:base>${b}</vms:base>`).join('')}` +
  `${made.map((m) => `<vms:made>${m}</vms:made>`).join('')}</vms:vm></metadata><devices>` +
  disks
    .map(
      (d, i) =>
        `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${d}'/><target dev='vd${'abc'[i]}'/></disk>`,
    )
    .join('') +
  `</devices></domain>`;

// a made its disk and a data disk since detached; its base is still under b's disk (raw here: no chain to read).
const A = vm('a', [f('a.img')], [f('a.img'), f('a-data.img'), f('gone.img'), join(outside, 'x.img')], [f('base.img')]);
const B = vm('b', [f('b.img'), f('base.img')], [f('b.img')]);
const readAll = (extra: string[] = []): Expected[] => [
  virshCall(['list', '--all', '--name'], ['a', 'b', ...extra].join('\n') + '\n'),
  batchCall(
    ['dumpxml a --inactive', 'dumpxml b --inactive'],
    [A, A, NONE, '', B, B, NONE, '', ...extra.flatMap(() => ['', '', '', ''])],
  ),
  ...extra.map((n) => virshCall(['domuuid', n], 'u\n')),
  // read once more, still broken
  ...(extra.length
    ? [
        batchCall(
          extra.map((n) => `dumpxml ${n} --inactive`),
          extra.flatMap(() => ['', '', '', '']),
        ),
        ...extra.map((n) => virshCall(['domuuid', n], 'u\n')),
      ]
    : []),
];

test('gc plans to remove only files vms made that no VM uses; a VM it cannot read keeps them all', async (t) => {
  for (const name of ['a.img', 'a-data.img', 'b.img', 'base.img']) writeFileSync(join(dir, name), 'x');
  writeFileSync(join(outside, 'x.img'), 'x');
  const { ctx, runner } = fakeContext(readAll(), { VMS_IMAGES_DIR: dir });
  t.after(() => runner.done());
  const plan = await planGc(ctx);
  assert.deepEqual(
    plan.remove.map((r) => [r.path, r.madeFor]),
    [[f('a-data.img'), ['a']]],
    'not a disk in use, not a base in use, not a file already gone, not another images dir',
  );
  assert.deepEqual(plan.keep, []);

  const broken = fakeContext(readAll(['x']), { VMS_IMAGES_DIR: dir });
  const kept = await planGc(broken.ctx);
  broken.runner.done();
  assert.deepEqual(kept.remove, []);
  assert.deepEqual(
    kept.keep.map((k) => [k.path, k.reason]),
    [[f('a-data.img'), 'VM x cannot be read (virsh cannot print its definition): it may use it']],
  );
});

test('gc plans again under its locks and removes the files, dropping them from the records; a changed plan removes nothing', async () => {
  for (const name of ['a.img', 'a-data.img', 'b.img', 'base.img']) writeFileSync(join(dir, name), 'x');
  const shown = await planGc(fakeContext(readAll(), { VMS_IMAGES_DIR: dir }).ctx);
  // Planned again, a VM cannot be read now: the plan differs and nothing is removed.
  const stale = fakeContext(readAll(['x']), { VMS_IMAGES_DIR: dir });
  await assert.rejects(
    collectGarbage(stale.ctx, shown, true),
    (e: unknown) => e instanceof VmsError && e.code === 'conflict' && /while you were asked/.test(e.message),
  );
  assert.ok(existsSync(f('a-data.img')));

  const { ctx, runner } = fakeContext(
    [
      ...readAll(),
      virshCall(['dumpxml', 'a', '--inactive', '--security-info'], A),
      {
        cmd: 'virsh',
        args: (a) =>
          a[2] === 'define' &&
          !readFileSync(a[3]!, 'utf8').includes('a-data') &&
          readFileSync(a[3]!, 'utf8').includes(f('gone.img')),
      },
    ],
    { VMS_IMAGES_DIR: dir },
  );
  const r = await collectGarbage(ctx, shown);
  runner.done();
  assert.deepEqual([r.removed, r.notUpdated], [[f('a-data.img')], []]);
  assert.equal(existsSync(f('a-data.img')), false);
});

// ---- what exactly gc removes, under which locks, and what it writes back ------------------------------------------

const qcowVm = (name: string, diskPath: string) =>
  `<domain type='qemu'><name>${name}</name><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>` +
  `<source file='${diskPath}'/><target dev='vda'/></disk></devices></domain>`;
/** readAll's batch for more VMs: each with its saved and running definition and no snapshots. */
const readVms = (vms: [string, string][]): Expected[] => [
  virshCall(['list', '--all', '--name'], vms.map(([n]) => n).join('\n') + '\n'),
  batchCall(
    vms.map(([n]) => `dumpxml ${n} --inactive`),
    vms.flatMap(([, xml]) => (xml ? [xml, xml, NONE, ''] : ['', '', '', ''])),
  ),
];

test('gc: a VM with only a missing file does not block it; several unreadable VMs are all named', async (t) => {
  for (const name of ['a.img', 'a-data.img', 'b.img', 'base.img']) writeFileSync(join(dir, name), 'x');
  // m's qcow2 disk is missing: m names all it uses (incomplete: false), so gc goes on.
  const { ctx, runner } = fakeContext(
    readVms([
      ['a', A],
      ['b', B],
      ['m', qcowVm('m', f('m-missing.qcow2'))],
    ]),
    {
      VMS_IMAGES_DIR: dir,
    },
  );
  t.after(() => runner.done());
  const plan = await planGc(ctx);
  assert.deepEqual(plan.unreadable, [
    { vm: 'm', reason: `its disk ${f('m-missing.qcow2')} is missing`, incomplete: false },
  ]);
  assert.deepEqual(
    plan.remove.map((r) => r.path),
    [f('a-data.img')],
  );
  assert.deepEqual(plan.keep, []);

  const twoBroken = fakeContext(
    [
      ...readVms([
        ['a', A],
        ['b', B],
        ['x', ''],
        ['y', ''],
      ]),
      virshCall(['domuuid', 'x'], 'u\n'),
      virshCall(['domuuid', 'y'], 'u\n'),
      ...readVms([
        ['x', ''],
        ['y', ''],
      ]).slice(1),
      virshCall(['domuuid', 'x'], 'u\n'),
      virshCall(['domuuid', 'y'], 'u\n'),
    ],
    { VMS_IMAGES_DIR: dir },
  );
  const kept = await planGc(twoBroken.ctx);
  twoBroken.runner.done();
  assert.deepEqual(
    kept.keep.map((k) => k.reason),
    [
      'VM x cannot be read (virsh cannot print its definition); ' +
        'VM y cannot be read (virsh cannot print its definition): it may use it',
    ],
  );
});

test('gc: a file in a sibling dir whose name starts like the images dir is not ours', async (t) => {
  const sibling = `${dir}-sibling`; // "/tmp/vms-unit-gc-XXXX-sibling" starts with "/tmp/vms-unit-gc-XXXX"
  mkdirSync(sibling, { recursive: true });
  writeFileSync(join(sibling, 's.img'), 'x');
  writeFileSync(f('s.img'), 'x');
  const S = vm('s', [], [join(sibling, 's.img'), f('s.img')]);
  const { ctx, runner } = fakeContext(readVms([['s', S]]), { VMS_IMAGES_DIR: dir });
  t.after(() => runner.done());
  const plan = await planGc(ctx);
  assert.deepEqual(
    plan.remove.map((r) => r.path),
    [f('s.img')],
  );
});

test('gc removes in path order, reports the space, locks the VMs it edits, drops made files and bases from them', async (t) => {
  const files = ['p.img', 'p-z.img', 'p-data.img', 'p-base.img', 'q.img', 'q-data.img'];
  for (const name of files) writeFileSync(f(name), 'x'.repeat(5000));
  // p lists its files out of order: the plan is sorted by path.
  const P = vm('p', [f('p.img')], [f('p.img'), f('p-z.img'), f('p-data.img')], [f('p-base.img')]);
  const Q = vm('q', [f('q.img')], [f('q.img'), f('q-data.img')]);
  const pq: [string, string][] = [
    ['p', P],
    ['q', Q],
  ];
  const shown = await planGc(fakeContext(readVms(pq), { VMS_IMAGES_DIR: dir }).ctx);
  const gone = [f('p-base.img'), f('p-data.img'), f('p-z.img'), f('q-data.img')];
  assert.deepEqual(
    shown.remove.map((r) => [r.path, r.madeFor, r.bytes]),
    gone.map((p) => [p, [p.includes('/q') ? 'q' : 'p'], statSync(p).blocks * 512]),
  );
  assert.ok(
    shown.remove.every((r) => r.bytes >= 5000),
    'bytes, not blocks',
  );

  let defined = '';
  const { ctx, runner } = fakeContext(
    [
      ...readVms(pq),
      virshCall(['dumpxml', 'p', '--inactive', '--security-info'], P),
      defineCall((xml) => (defined = xml)),
      virshCall(['dumpxml', 'q', '--inactive', '--security-info'], '', {
        exitCode: 1,
        stderr: "error: failed to get domain 'q'",
      }),
    ],
    { VMS_IMAGES_DIR: dir },
  );
  t.after(() => runner.done());
  const requests: unknown[] = [];
  const locks = ctx.locks;
  const steps: string[] = [];
  const progress = {
    ...ctx.progress,
    step: <T>(title: string, fn: () => Promise<T>) => {
      steps.push(title);
      // one of the files goes meanwhile (another gc, the user): gone is as good as removed
      if (title.startsWith('Removing')) rmSync(f('p-z.img'));
      return fn();
    },
  };
  const r = await collectGarbage(
    {
      ...ctx,
      progress,
      locks: { acquire: (req) => (requests.push(req), locks.acquire(req)) },
    },
    shown,
  );
  assert.deepEqual(requests, [{ command: 'gc', vms: ['p', 'q'], host: true }]);
  assert.deepEqual(steps, ['Removing 4 file(s)']);
  assert.deepEqual(r.removed, gone);
  for (const p of files) assert.equal(existsSync(f(p)), !gone.includes(f(p)), p);
  // p's record keeps its disk, loses the removed files and the removed base
  assert.match(defined, new RegExp(`<vms:made>${f('p.img')}</vms:made>`));
  for (const p of gone) assert.ok(!defined.includes(p), p);
  assert.deepEqual(r.notUpdated, [{ vm: 'q', reason: "no VM named 'q'" }]);
});

test('gc: a plan that changed since it was made (not asked) is a conflict that says so and removes nothing', async () => {
  writeFileSync(f('a-data.img'), 'x');
  for (const name of ['a.img', 'b.img', 'base.img']) writeFileSync(f(name), 'x');
  const shown = await planGc(fakeContext(readAll(), { VMS_IMAGES_DIR: dir }).ctx);
  const stale = fakeContext(readAll(['x']), { VMS_IMAGES_DIR: dir });
  await assert.rejects(collectGarbage(stale.ctx, shown), (e: unknown) => {
    assert.ok(e instanceof VmsError);
    assert.equal(e.code, 'conflict');
    assert.equal(e.message, 'the files to remove changed meanwhile (a VM started using one, or a new one is unused)');
    assert.equal(e.hint, 'nothing was removed: run the command again');
    return true;
  });
  stale.runner.done();
  assert.ok(existsSync(f('a-data.img')));
});
