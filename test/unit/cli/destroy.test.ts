import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import {
  chainCall,
  disk,
  domainXml,
  listCall,
  loadCalls,
  metadata,
  readable,
  readCall,
} from '../../helpers/domain-fake.js';
import { FakeRunner } from '../../helpers/fake-runner.js';
import { runCli } from '../../helpers/test-io.js';
import { assertUnchanged, tempHost } from '../../helpers/temp-host.js';
import { virshCall } from '../../helpers/virsh-fake.js';

// `vms destroy` asks on a terminal, showing what goes and what stays; what it then removes is what it showed.
// (Without --yes and without a terminal it refuses before any process runs: test/unit/cli/commands.test.ts.)

/** web on its own disk over a base vms froze and a golden image the user made; db is unreadable. */
function host() {
  const h = tempHost();
  const web = h.file(h.img('web.qcow2'));
  const base = h.file(h.img('base.qcow2'));
  const golden = h.file(h.img('golden.qcow2'));
  const xml = domainXml('web', disk(web, 'vda'), metadata([web], [base]));
  const unreadableDb: [string, string[]] = ['db', ['', '', '', '']];
  const dbExists = virshCall(['domuuid', 'db'], 'b7c1\n');
  const reads = () => [
    ...loadCalls('web', xml),
    listCall(['db', 'web']),
    ...[readCall([unreadableDb]), dbExists],
    ...[readCall([unreadableDb]), dbExists], // read once more: still so
    chainCall(web, [web, base, golden]),
  ];
  /** The same, with web2 (a clone of web on the same base) defined meanwhile. */
  const readsWithClone = (cloneDisk: string) => [
    ...loadCalls('web', xml),
    listCall(['db', 'web', 'web2']),
    readCall([
      unreadableDb,
      ['web2', readable(domainXml('web2', disk(cloneDisk, 'vda'), metadata([cloneDisk], [base])))],
    ]),
    dbExists,
    chainCall(cloneDisk, [cloneDisk, base]),
    ...[readCall([unreadableDb]), dbExists],
    chainCall(web, [web, base, golden]),
  ];
  return { ...h, web, base, golden, reads, readsWithClone };
}

const plan = (h: ReturnType<typeof host>) =>
  [
    'This removes VM web (powered off first if it runs) and deletes:',
    `  ${h.web}`,
    `  ${h.vmDir('web')}`,
    `It keeps ${h.base} (db cannot be read and may stand on it).`,
    `It keeps ${h.golden} (vms did not make it).`,
    'warning: db cannot be read; every base they may stand on is kept',
  ].join('\n') + '\n';

test('vms destroy on a terminal shows what goes and what stays, and asks; no: exit 4, only read', async () => {
  const h = host();
  const runner = new FakeRunner(h.reads());
  const r = await runCli(['destroy', 'web'], { runner, env: h.env, tty: true, answers: [false] });
  runner.done();
  assert.deepEqual(
    [r.exitCode, r.stdout, r.stderr, r.asked],
    [4, '', plan(h) + 'error: not destroyed\nhint: nothing was changed\n', ['Destroy it?']],
  );
  assertUnchanged([h.web, h.base, h.golden]);
});

test('vms destroy on a terminal, yes: destroys what it showed and says what it deleted and kept', async () => {
  const h = host();
  const runner = new FakeRunner([
    ...h.reads(),
    ...h.reads(), // planned again under the lock: the same
    virshCall(['domstate', 'web'], 'shut off\n'),
    virshCall(['domuuid', 'web'], 'b7c1\n'),
    virshCall(['undefine', 'web', '--nvram', '--managed-save', '--snapshots-metadata', '--checkpoints-metadata']),
  ]);
  const r = await runCli(['destroy', 'web'], { runner, env: h.env, tty: true, answers: [true] });
  runner.done();
  assert.equal(r.exitCode, 0, r.stderr);
  assert.ok(r.stderr.startsWith(plan(h)), r.stderr);
  assert.equal(
    r.stdout,
    [
      'web destroyed',
      `  deleted ${h.web}`,
      `  kept ${h.base} (db cannot be read and may stand on it)`,
      `  kept ${h.golden} (vms did not make it)`,
    ].join('\n') + '\n',
  );
  assert.deepEqual(readdirSync(h.images).sort(), ['base.qcow2', 'golden.qcow2']);
  assertUnchanged([h.base, h.golden]);
  assert.equal(existsSync(h.web), false);
});

test('vms destroy on a terminal, yes, but a clone came to stand on the base: exit 4, nothing removed', async () => {
  const h = host();
  const cloneDisk = h.file(h.img('web2.qcow2'));
  const runner = new FakeRunner([...h.reads(), ...h.readsWithClone(cloneDisk)]);
  const r = await runCli(['destroy', 'web'], { runner, env: h.env, tty: true, answers: [true] });
  runner.done();
  assert.deepEqual(
    [r.exitCode, r.stderr.slice(plan(h).length)],
    [
      4,
      'error: web changed while you were asked (a clone, a disk)\nhint: nothing was removed: run the command again\n',
    ],
  );
  assertUnchanged([h.web, h.base, h.golden, cloneDisk]);
});
