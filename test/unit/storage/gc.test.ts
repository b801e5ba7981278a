import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { collectGarbage, planGc } from '../../../src/core/storage/gc.js';
import { VmsError } from '../../../src/errors.js';
import { VMS_NS } from '../../../src/libvirt/metadata.js';
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
