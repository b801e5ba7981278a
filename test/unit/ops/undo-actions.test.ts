import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFileAction, runUndoAction, type UndoAction } from '../../../src/core/ops/undo-actions.js';
import { domainFacts, parseDomainXml } from '../../../src/libvirt/domain-parse.js';
import { VMS_NS } from '../../../src/libvirt/metadata.js';
import type { Expected } from '../../helpers/fake-runner.js';
import { afterLooking } from '../../helpers/fs-race.js';
import { fakeContext, virshCall } from '../../helpers/virsh-fake.js';

// Undo steps as data, as a failed command and a repair after a kill run them: the file actions on real files in a
// temp dir (each safe whether or not its step got to finish), the libvirt ones on the strict fake runner.

const scratch = () => mkdtempSync(join(tmpdir(), 'vms-undo-'));

test('remove-claim removes the empty file claimed at `since` (also claimed that very millisecond), nothing else', async () => {
  const dir = scratch();
  const claim = (path: string, since: number): UndoAction => ({ kind: 'remove-claim', path, since });
  const [exact, later, full] = ['exact', 'later', 'full'].map((n) => join(dir, n)) as [string, string, string];
  writeFileSync(exact, '');
  writeFileSync(later, '');
  writeFileSync(full, 'data');
  const made = (p: string) => statSync(p).ctimeMs;
  await runFileAction(claim(exact, made(exact)));
  await runFileAction(claim(later, made(later) + 1)); // already there before the claim: someone else's
  await runFileAction(claim(full, made(full))); // has content: written by someone else
  await runFileAction(claim(join(dir, 'gone'), 0)); // the claim never happened
  assert.deepEqual(
    [exact, later, full].map((p) => existsSync(p)),
    [false, true, true],
  );
});

test('a claim removed by someone else between the look and the removal is no error', async () => {
  const path = join(scratch(), 'claim');
  writeFileSync(path, '');
  // The file goes right after remove-claim has looked at it.
  await afterLooking(
    'stat',
    path,
    () => rm(path),
    () => runFileAction({ kind: 'remove-claim', path, since: 0 }),
  );
  assert.equal(existsSync(path), false);
});

test('remove-dir-if-empty removes an empty dir, keeps a full one or none, and fails on anything else', async () => {
  const dir = scratch();
  const [empty, full, file] = ['empty', 'full', 'file'].map((n) => join(dir, n)) as [string, string, string];
  mkdirSync(empty);
  mkdirSync(full);
  writeFileSync(join(full, 'notes'), 'the user put this here');
  writeFileSync(file, 'x');
  const action = (path: string): UndoAction => ({ kind: 'remove-dir-if-empty', path });
  await runFileAction(action(empty));
  await runFileAction(action(full));
  await runFileAction(action(join(dir, 'gone')));
  assert.deepEqual([existsSync(empty), readFileSync(join(full, 'notes'), 'utf8')], [false, 'the user put this here']);
  await assert.rejects(runFileAction(action(file)), { code: 'ENOTDIR' });
  assert.equal(existsSync(file), true, 'not a directory: left alone');
});

test('runFileAction refuses an action that needs libvirt: it must run with a context', async () => {
  await assert.rejects(runFileAction({ kind: 'undefine', vm: 'v' }), {
    message: 'internal: undo step undefine needs a context (withUndo inside an operation)',
  });
});

const domain = (disks: string, metadata = '') =>
  `<domain type='qemu'><name>v</name><metadata>${metadata}</metadata><memory unit='MiB'>256</memory><vcpu>1</vcpu>` +
  `<os><type arch='x86_64' machine='q35'>hvm</type></os><devices>${disks}</devices></domain>`;
const disk = (target: string, file: string) =>
  `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${file}'/>` +
  `<target dev='${target}' bus='virtio'/></disk>`;
const vmsMetadata = (made: string[]) =>
  `<vms:vm xmlns:vms="${VMS_NS}">${made.map((f) => `<vms:made>${f}</vms:made>`).join('')}</vms:vm>`;
const dumpxml = (xml: string) => virshCall(['dumpxml', 'v', '--inactive', '--security-info'], xml);
/** `virsh define FILE`: the XML defined goes into `defined`. */
const define = (defined: string[]): Expected => ({
  cmd: 'virsh',
  args: (a) => a.length === 4 && a[2] === 'define' && defined.push(readFileSync(a[3]!, 'utf8')) > 0,
});
const sources = async (xml: string) =>
  Object.fromEntries(domainFacts(await parseDomainXml(xml)).disks.map((d) => [d.target, d.path]));

test("unplug-disk takes the disk vms made out of a shut-off VM's definition and its made list", async () => {
  const [vda, vdb] = ['/img/v.qcow2', '/img/v-data.qcow2'];
  const xml = domain(disk('vda', vda) + disk('vdb', vdb), vmsMetadata([vda, vdb]));
  const defined: string[] = [];
  const { ctx, runner } = fakeContext([
    dumpxml(xml),
    virshCall(['domstate', 'v'], 'shut off\n'),
    dumpxml(xml),
    define(defined),
  ]);
  await runUndoAction(ctx, { kind: 'unplug-disk', vm: 'v', target: 'vdb', path: vdb, created: true });
  runner.done();
  const facts = domainFacts(await parseDomainXml(defined[0]!));
  assert.deepEqual(
    facts.disks.map((d) => d.target),
    ['vda'],
  );
  assert.deepEqual(facts.metadata.made, [vda]);
});

test('unfreeze of a shut-off VM merges back only the overlays it stands on, and puts back only their bases', async () => {
  // vda stands on its clone-time overlay; vdb was moved by the user onto a file of their own since.
  const [vdaBase, vdaOverlay, vdbBase, vdbOverlay, vdbNow] = ['a', 'a-2', 'b', 'b-2', 'mine'].map(
    (n) => `/img/${n}.qcow2`,
  );
  const xml = domain(disk('vda', vdaOverlay) + disk('vdb', vdbNow), vmsMetadata([vdaOverlay]));
  const defined: string[] = [];
  const { ctx, runner } = fakeContext([
    virshCall(['domuuid', 'v'], 'uuid\n'),
    virshCall(['domstate', 'v'], 'shut off\n'),
    virshCall(['domblklist', 'v', '--inactive'], ` Target Source\n---------\n vda ${vdaOverlay}\n vdb ${vdbNow}\n`),
    { cmd: 'qemu-img', args: ['commit', '-q', '-f', 'qcow2', vdaOverlay] },
    dumpxml(xml),
    define(defined),
  ]);
  await runUndoAction(ctx, {
    kind: 'unfreeze',
    vm: 'v',
    overlays: [
      ['vda', vdaOverlay],
      ['vdb', vdbOverlay],
    ],
    bases: [
      ['vda', vdaBase],
      ['vdb', vdbBase],
    ],
    metadata: { bases: [], made: [vdaBase] },
  });
  runner.done();
  assert.deepEqual(await sources(defined[0]!), { vda: vdaBase, vdb: vdbNow });
  assert.deepEqual(domainFacts(await parseDomainXml(defined[0]!)).metadata.made, [vdaBase]);
});
