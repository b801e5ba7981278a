import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { JournalRecord } from '../../../src/core/ops/journal.js';
import { destroyVm, planDestroy } from '../../../src/core/vm/destroy.js';
import { VmsError } from '../../../src/errors.js';
import {
  chainCall,
  disk,
  domainXml,
  listCall,
  loadCalls,
  metadata,
  readable,
  readCall,
  when,
} from '../../helpers/domain-fake.js';
import { assertUnchanged, tempHost } from '../../helpers/temp-host.js';
import { virshCall } from '../../helpers/virsh-fake.js';

// What destroy deletes is decided on every VM of the host (src/core/vm/destroy.ts): only files vms made for the VM,
// and of those only the ones nothing else uses. Real files in a temp dir, processes from the strict fake runner.

const load = (xml: string, state?: string) => loadCalls('web', xml, state);

const UNDEFINE = ['undefine', 'web', '--nvram', '--managed-save', '--snapshots-metadata', '--checkpoints-metadata'];
const FILES_OF_VMS = [
  'serial.sock',
  'serial.log',
  'nvram.fd',
  'root-password',
  'settings.sh',
  'install.log',
  'apply.log',
];

/** Planning web, alone on the host and on its own disk. */
const planAlone = (web: string, xml: string) => [...load(xml), listCall(['web']), chainCall(web, [web])];
/** Then destroying it, shut off, up to its undefine. */
const UNTIL_UNDEFINE_OFF = [virshCall(['domstate', 'web'], 'shut off\n'), virshCall(['domuuid', 'web'], 'b7c1\n')];

/** web on its own disk, over a base vms froze for it. */
function webOnBase() {
  const h = tempHost();
  const web = h.file(h.img('web.qcow2'));
  const base = h.file(h.img('base.qcow2'));
  return { h, web, base, xml: domainXml('web', disk(web, 'vda'), metadata([web], [base])) };
}

// ---- planDestroy: which files go ------------------------------------------------------------------------------

// Its disks and the base only it stood on go; what vms did not make stays, in the images dir or not.
test('planDestroy keeps golden images the user made, in the images dir and outside it', async () => {
  const h = tempHost();
  const web = h.file(h.img('web.qcow2'));
  const data = h.file(h.img('web-data.qcow2'));
  const golden = h.file(h.img('golden.qcow2'));
  const base = h.file(h.img('base.qcow2'));
  const outsideGolden = h.file(join(h.outside, 'golden.qcow2'));
  const xml = domainXml('web', disk(web, 'vda') + disk(data, 'vdb'), metadata([web, data], [base]));
  // c's disk is missing: c is not read to the end, but all it names is known, which is no reason to keep anything.
  const c = domainXml('c', disk(h.img('c.qcow2'), 'vda'));
  const { ctx, runner } = h.context([
    ...load(xml),
    listCall(['web', 'c']),
    readCall([['c', readable(c)]]),
    chainCall(web, [web, golden]),
    chainCall(data, [data, base, outsideGolden]),
  ]);
  assert.deepEqual(await planDestroy(ctx, 'web'), {
    name: 'web',
    remove: [web, data, base],
    keep: [
      { path: golden, reason: 'vms did not make it' },
      { path: outsideGolden, reason: 'vms did not make it' },
    ],
    dir: h.vmDir('web'),
    unreadable: [],
  });
  runner.done();
  assertUnchanged([web, data, golden, base, outsideGolden]);
});

// A made file web no longer uses (dropped by a revert) goes; one already gone is not listed.
test('planDestroy keeps a base another VM stands on, naming it, and a disk that is not a file', async () => {
  const h = tempHost();
  const web = h.file(h.img('web.qcow2'));
  const shared = h.file(h.img('shared.qcow2'));
  const dropped = h.file(h.img('web-old.qcow2')); // made for web, dropped from it by a snapshot revert
  const gone = h.img('web-gone.qcow2'); // made for web, no longer there
  const dbDisk = h.file(h.img('db.qcow2'));
  const block =
    `<disk type='block' device='disk'><driver name='qemu' type='raw'/>` +
    `<source dev='/dev/vms-test-sdz'/><target dev='vdb'/></disk>`;
  const xml = domainXml('web', disk(web, 'vda') + block + disk(gone, 'vdc'), metadata([web, dropped, gone], [shared]));
  const db = domainXml('db', disk(dbDisk, 'vda'), metadata([dbDisk], [shared]));
  const { ctx, runner } = h.context([
    ...load(xml),
    listCall(['db', 'web']),
    readCall([['db', readable(db)]]),
    chainCall(dbDisk, [dbDisk, shared]),
    chainCall(web, [web, shared]), // none for the gone disk
  ]);
  assert.deepEqual(await planDestroy(ctx, 'web'), {
    name: 'web',
    remove: [web, dropped],
    keep: [
      { path: shared, reason: 'used by db' },
      { path: '/dev/vms-test-sdz', reason: 'not a file: vms did not make it' },
    ],
    dir: h.vmDir('web'),
    unreadable: [],
  });
  runner.done();
});

// Fail closed on deleting, not on destroying: its own disk still goes.
test('planDestroy with other VMs unreadable keeps every base they may stand on, and says so', async () => {
  const { h, web, base, xml } = webOnBase();
  // broken: only its running definition prints and its snapshots cannot be listed (two reasons, one VM);
  // other: virsh prints no definition of it at all, though it exists.
  const broken = ['', domainXml('broken', disk(join(h.outside, 'broken.raw'), 'vda', 'raw')), '', ''];
  const other = ['', '', '', ''];
  const readOthers = [
    readCall([
      ['broken', broken],
      ['other', other],
    ]),
    virshCall(['domuuid', 'other'], 'b7c1\n'),
  ];
  const { ctx, runner } = h.context([
    ...load(xml),
    listCall(['broken', 'other', 'web']),
    ...readOthers,
    ...readOthers, // read once more (a VM may look broken for a moment): still so
    chainCall(web, [web, base]),
  ]);
  assert.deepEqual(await planDestroy(ctx, 'web'), {
    name: 'web',
    remove: [web],
    keep: [{ path: base, reason: 'broken, other cannot be read and may stand on it' }],
    dir: h.vmDir('web'),
    unreadable: ['broken', 'other'],
  });
  runner.done();
});

test('planDestroy of a disk whose chain cannot be read: the disk goes, what lies under it stays, and why', async () => {
  const { h, web, base, xml } = webOnBase();
  const { ctx, runner } = h.context([
    ...load(xml),
    listCall(['web']),
    {
      cmd: 'qemu-img',
      args: ['info', '-U', '--backing-chain', '--output=json', web],
      result: { exitCode: 1, stderr: `qemu-img: Could not open '${base}': Permission denied\n` },
    },
  ]);
  assert.deepEqual(await planDestroy(ctx, 'web'), {
    name: 'web',
    remove: [web],
    keep: [
      {
        path: `(the backing files of ${web})`,
        reason: `its backing chain cannot be read: cannot read ${web}: Could not open '${base}': Permission denied`,
      },
    ],
    dir: h.vmDir('web'),
    unreadable: [],
  });
  runner.done();
});

test('planDestroy interrupted while it reads a chain: the interrupt goes up (exit 130), not "chain unreadable"', async () => {
  const { h, xml } = webOnBase();
  const { ctx, runner } = h.context([...load(xml), listCall(['web'])]);
  const aborted = Object.assign(new Error('The operation was aborted'), { name: 'AbortError' });
  const qemuImg = Object.create(ctx.qemuImg, { chain: { value: () => Promise.reject(aborted) } });
  await assert.rejects(planDestroy({ ...ctx, qemuImg }, 'web'), (e: unknown) => e === aborted);
  runner.done();
});

// ---- destroyVm: the steps ------------------------------------------------------------------------------------

// The journal first; then power off, undefine with every flag, and only vms' own files (a user's file keeps the dir).
test('destroyVm of a running VM: the steps in order, and only what vms made goes', async () => {
  const h = tempHost();
  const dir = h.vmDir('web');
  const web = h.file(h.img('web.qcow2'));
  const base = h.file(h.img('base.qcow2'));
  const golden = h.file(h.img('golden.qcow2'));
  mkdirSync(join(dir, 'events'), { recursive: true });
  h.file(join(dir, 'events', 'op1.ndjson'));
  const own = FILES_OF_VMS.map((f) => h.file(join(dir, f)));
  const rotated = h.file(join(dir, 'serial.log.12')); // virtlogd's
  const users = ['notes.txt', 'serial.log.1.bak', 'serial.log.x', 'x-serial.log.1'];
  for (const f of users) h.file(join(dir, f));
  const pkgCache = join(h.cache, 'pkg-vm', 'web');
  mkdirSync(pkgCache, { recursive: true });
  h.file(join(pkgCache, 'a.pkg.tar.zst'));
  const xml = domainXml('web', disk(web, 'vda'), metadata([web], [base]));

  let journal: JournalRecord | undefined;
  let diskAtUndefine: boolean | undefined;
  const { ctx, runner } = h.context([
    ...load(xml, 'running'),
    listCall(['web']),
    chainCall(web, [web, base, golden]),
    when(virshCall(['domstate', 'web'], 'running\n'), () => ([journal] = h.journals())),
    virshCall(['domuuid', 'web'], 'b7c1\n'),
    virshCall(['domstate', 'web'], 'running\n'),
    virshCall(['destroy', 'web']),
    virshCall(['domuuid', 'web'], 'b7c1\n'),
    when(virshCall(UNDEFINE), () => (diskAtUndefine = existsSync(web))),
  ]);
  const result = await destroyVm(ctx, 'web');
  runner.done();

  assert.deepEqual(result, {
    name: 'web',
    removed: [web, base],
    kept: [
      { path: golden, reason: 'vms did not make it' },
      { path: dir, reason: 'it holds files vms did not make' },
    ],
  });
  assert.ok(journal, 'the journal is written before the first step');
  assert.deepEqual([journal.command, journal.vms, journal.host, journal.steps], ['destroy', ['web'], true, []]);
  assert.deepEqual(journal.finish, {
    what: 'destroy web',
    actions: [
      { kind: 'power-off', vm: 'web' },
      { kind: 'undefine', vm: 'web' },
      { kind: 'remove-file', path: web },
      { kind: 'remove-file', path: base },
      ...[...own, rotated].map((path) => ({ kind: 'remove-file', path })),
      { kind: 'remove-dir', path: pkgCache },
      { kind: 'remove-dir', path: join(dir, 'events') },
      { kind: 'remove-dir-if-empty', path: dir },
    ],
  });
  assert.equal(diskAtUndefine, true, 'no file goes before the domain is undefined');
  assert.deepEqual(h.journals(), [], 'the journal goes once the destroy is done');
  assert.deepEqual(readdirSync(h.images), ['golden.qcow2']);
  assert.deepEqual(readdirSync(dir).sort(), users, "only the user's files are left");
  assertUnchanged([golden, ...users.map((f) => join(dir, f))]);
  assert.deepEqual(readdirSync(join(h.cache, 'pkg-vm')), [], 'its package cache went, with what was in it');
});

test('destroyVm of a shut-off VM: not powered off; a directory of only its own files goes', async () => {
  const h = tempHost();
  const web = h.file(h.img('web.qcow2'));
  mkdirSync(h.vmDir('web'));
  for (const f of FILES_OF_VMS) h.file(join(h.vmDir('web'), f));
  const xml = domainXml('web', disk(web, 'vda'), metadata([web], []));
  const { ctx, runner } = h.context([...planAlone(web, xml), ...UNTIL_UNDEFINE_OFF, virshCall(UNDEFINE)]);
  assert.deepEqual(await destroyVm(ctx, 'web'), { name: 'web', removed: [web], kept: [] });
  runner.done();
  assert.deepEqual([readdirSync(h.images), existsSync(h.vmDir('web'))], [[], false]);
});

test('destroyVm: a plan other than the one agreed to (a clone came) is a conflict; nothing changes', async () => {
  const { h, web, base, xml } = webOnBase();
  const cloneDisk = h.file(h.img('web2.qcow2'));
  const clone = domainXml('web2', disk(cloneDisk, 'vda'), metadata([cloneDisk], [base]));
  const { ctx, runner } = h.context([
    ...load(xml),
    listCall(['web']),
    chainCall(web, [web, base]),
    // planned again under the lock: web2 stands on the base now
    ...load(xml),
    listCall(['web', 'web2']),
    readCall([['web2', readable(clone)]]),
    chainCall(cloneDisk, [cloneDisk, base]),
    chainCall(web, [web, base]),
  ]);
  const shown = await planDestroy(ctx, 'web');
  assert.deepEqual(shown.remove, [web, base]);
  await assert.rejects(destroyVm(ctx, 'web', shown), (err: unknown) => {
    assert.ok(err instanceof VmsError, String(err));
    assert.deepEqual(
      [err.code, err.exitCode, err.message, err.hint],
      [
        'conflict',
        4,
        'web changed while you were asked (a clone, a disk)',
        'nothing was removed: run the command again',
      ],
    );
    return true;
  });
  runner.done();
  assertUnchanged([web, base, cloneDisk]);
  assert.deepEqual(h.journals(), []);
});

test('destroyVm interrupted while it planned: stops before the journal or any step', async () => {
  const h = tempHost();
  const web = h.file(h.img('web.qcow2'));
  const stop = new AbortController();
  const reason = new Error('stopped by the test');
  const { ctx, runner } = h.context([
    ...planAlone(web, domainXml('web', disk(web, 'vda'), metadata([web], []))).slice(0, -1),
    when(chainCall(web, [web]), () => stop.abort(reason)),
  ]);
  await assert.rejects(destroyVm({ ...ctx, signal: stop.signal }, 'web'), (err) => err === reason);
  runner.done();
  assertUnchanged([web]);
  assert.deepEqual(h.journals(), []);
});

test('destroyVm whose undefine fails: its files stay, and the journal keeps the rest for a repair', async () => {
  const h = tempHost();
  const web = h.file(h.img('web.qcow2'));
  const xml = domainXml('web', disk(web, 'vda'), metadata([web], []));
  const { ctx, runner } = h.context([
    ...planAlone(web, xml),
    ...UNTIL_UNDEFINE_OFF,
    virshCall(UNDEFINE, '', { exitCode: 1, stderr: "error: Failed to undefine domain 'web'\nerror: out of memory\n" }),
  ]);
  await assert.rejects(destroyVm(ctx, 'web'), /out of memory/);
  runner.done();
  assertUnchanged([web]);
  const left = h.journals();
  assert.deepEqual(
    left.map((j) => j.finish?.actions.slice(0, 3)),
    [
      [
        { kind: 'power-off', vm: 'web' },
        { kind: 'undefine', vm: 'web' },
        { kind: 'remove-file', path: web },
      ],
    ],
  );
});
