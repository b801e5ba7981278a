import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Context } from '../../../src/core/context.js';
import { ChainReader } from '../../../src/core/storage/backing-chain.js';
import { interrupted } from '../../../src/errors.js';
import type { ImageInfo, QemuImg } from '../../../src/libvirt/qemu-img.js';

// ChainReader on a qemu-img of the test's own (its answers by path, each call recorded) and real files: which files
// exist decides as much as what qemu-img says.

const dir = mkdtempSync(join(tmpdir(), 'vms-unit-chain-'));
const f = (name: string) => join(dir, name);
for (const name of ['top.qcow2', 'mid.qcow2', 'base.qcow2', 'loop.qcow2']) writeFileSync(f(name), '');

type Answer = ImageInfo | ImageInfo[] | Error;
const info = (path: string, backing: Partial<ImageInfo> = {}): ImageInfo => ({
  filename: path,
  format: 'qcow2',
  'virtual-size': 1,
  ...backing,
});

/** A reader whose qemu-img answers `chain` and `info` calls from these tables; `calls` lists what was asked. */
function reader(chains: Record<string, Answer>, infos: Record<string, Answer> = {}) {
  const calls: string[] = [];
  const answer = async <T>(table: Record<string, Answer>, key: string): Promise<T> => {
    const a = table[key];
    if (a === undefined) throw new Error(`unexpected: ${key}`);
    if (a instanceof Error) throw a;
    return a as T;
  };
  const qemuImg = {
    chain: (path: string) => (calls.push(`chain ${path}`), answer<ImageInfo[]>(chains, path)),
    info: (path: string, format?: string) => (
      calls.push(`info ${path} ${format ?? '-'}`),
      answer<ImageInfo>(infos, path)
    ),
  } as unknown as QemuImg;
  return { chains: new ChainReader({ qemuImg } as Context), calls };
}

test('the whole chain in one read, nearest first, each disk read once however often asked', async () => {
  const { chains, calls } = reader({
    [f('top.qcow2')]: [info(f('top.qcow2')), info(f('mid.qcow2')), info(f('base.qcow2'))],
  });
  const [a, b] = await Promise.all([chains.read(f('top.qcow2')), chains.read(f('top.qcow2'))]);
  assert.deepEqual(a, { files: [f('mid.qcow2'), f('base.qcow2')] });
  assert.equal(a, b);
  assert.deepEqual(calls, [`chain ${f('top.qcow2')}`]);
});

test('a missing disk: nothing read, and all it names is known (not incomplete)', async () => {
  const { chains, calls } = reader({});
  assert.deepEqual(await chains.read(f('gone.qcow2')), {
    files: [],
    problem: { reason: `its disk ${f('gone.qcow2')} is missing`, incomplete: false },
  });
  assert.deepEqual(calls, []);
});

test('when the whole-chain read fails, level by level: relative names, each level read as the format above says', async () => {
  const { chains, calls } = reader(
    { [f('top.qcow2')]: new Error('qemu-img: one level is garbled') },
    {
      [f('top.qcow2')]: info(f('top.qcow2'), { 'backing-filename': 'mid.qcow2', 'backing-filename-format': 'qcow2' }),
      [f('mid.qcow2')]: info(f('mid.qcow2'), { 'full-backing-filename': f('base.qcow2') }),
      [f('base.qcow2')]: info(f('base.qcow2')),
    },
  );
  // read to the end after all: no problem to report
  assert.deepEqual(await chains.read(f('top.qcow2')), { files: [f('mid.qcow2'), f('base.qcow2')] });
  assert.deepEqual(calls, [
    `chain ${f('top.qcow2')}`,
    `info ${f('top.qcow2')} -`,
    `info ${f('mid.qcow2')} qcow2`,
    `info ${f('base.qcow2')} -`,
  ]);
});

test('level by level: a level that cannot be read leaves the chain incomplete; a missing base does not', async () => {
  const broken = reader(
    { [f('top.qcow2')]: new Error('no') },
    { [f('top.qcow2')]: info(f('top.qcow2'), { 'backing-filename': 'mid.qcow2' }), [f('mid.qcow2')]: new Error('bad') },
  );
  assert.deepEqual(await broken.chains.read(f('top.qcow2')), {
    files: [f('mid.qcow2')],
    problem: { reason: `cannot read the disk chain under ${f('top.qcow2')}: bad`, incomplete: true },
  });
  const missing = reader(
    { [f('top.qcow2')]: new Error('no') },
    { [f('top.qcow2')]: info(f('top.qcow2'), { 'backing-filename': 'nowhere.qcow2' }) },
  );
  assert.deepEqual(await missing.chains.read(f('top.qcow2')), {
    files: [f('nowhere.qcow2')],
    problem: { reason: `backing file ${f('nowhere.qcow2')} of ${f('top.qcow2')} is missing`, incomplete: false },
  });
});

test('a chain that loops (back to the disk, or to a base further up) stops there and says where', async () => {
  const toDisk = reader(
    { [f('loop.qcow2')]: new Error('loop') },
    { [f('loop.qcow2')]: info(f('loop.qcow2'), { 'backing-filename': 'loop.qcow2' }) },
  );
  assert.deepEqual(await toDisk.chains.read(f('loop.qcow2')), {
    files: [],
    problem: { reason: `the disk chain under ${f('loop.qcow2')} loops at ${f('loop.qcow2')}`, incomplete: false },
  });
  const below = reader(
    { [f('top.qcow2')]: new Error('loop') },
    {
      [f('top.qcow2')]: info(f('top.qcow2'), { 'backing-filename': 'mid.qcow2' }),
      [f('mid.qcow2')]: info(f('mid.qcow2'), { 'backing-filename': 'base.qcow2' }),
      [f('base.qcow2')]: info(f('base.qcow2'), { 'backing-filename': 'mid.qcow2' }),
    },
  );
  assert.deepEqual(await below.chains.read(f('top.qcow2')), {
    files: [f('mid.qcow2'), f('base.qcow2')],
    problem: { reason: `the disk chain under ${f('top.qcow2')} loops at ${f('mid.qcow2')}`, incomplete: false },
  });
});

test('Ctrl-C is not a broken chain: it stops the read, in either kind of read', async () => {
  const whole = reader({ [f('top.qcow2')]: interrupted() });
  await assert.rejects(whole.chains.read(f('top.qcow2')), (e: unknown) => (e as Error).message === 'interrupted');
  assert.deepEqual(whole.calls, [`chain ${f('top.qcow2')}`], 'no level-by-level read after Ctrl-C');
  const walk = reader({ [f('top.qcow2')]: new Error('no') }, { [f('top.qcow2')]: interrupted() });
  await assert.rejects(walk.chains.read(f('top.qcow2')), (e: unknown) => (e as Error).message === 'interrupted');
});

test('six reads at a time: the seventh waits for one to finish, and every read ends', async () => {
  const names = Array.from({ length: 9 }, (_, i) => f(`d${i}.qcow2`));
  for (const n of names) writeFileSync(n, '');
  const started: string[] = [];
  const finish: (() => void)[] = [];
  const qemuImg = {
    chain: (path: string) =>
      new Promise<ImageInfo[]>((resolve) => {
        started.push(path);
        finish.push(() => resolve([info(path), info(f('base.qcow2'))]));
      }),
  } as unknown as QemuImg;
  const chains = new ChainReader({ qemuImg } as Context);
  const reads = names.map((n) => chains.read(n));
  const settle = () => new Promise((r) => setImmediate(r));
  await settle();
  assert.deepEqual(started, names.slice(0, 6));
  finish[0]!();
  await settle();
  assert.deepEqual(started, names.slice(0, 7), 'one ended, one more starts');
  for (let i = 1; i < 9; i++) {
    finish[i]!();
    await settle();
  }
  assert.deepEqual(started, names);
  for (const r of await Promise.all(reads)) assert.deepEqual(r, { files: [f('base.qcow2')] });
});
