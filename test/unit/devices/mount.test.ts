import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../../src/config.js';
import { createContext } from '../../../src/core/context.js';
import {
  checkGuestDir,
  fstabCommand,
  fstabLine,
  guestDirStateCommand,
  isSystemDir,
  mountShare,
  refuseSystemDir,
  unmountShare,
  requireVirtiofsd,
  resolveHostDir,
  type MountOptions,
} from '../../../src/core/devices/mount.js';
import { VmsError } from '../../../src/errors.js';
import { describeMount } from '../../../src/cli/commands/mount.js';
import { forCommandLine } from '../../../src/cli/hints.js';
import { buildDomainXml, parseDomainXml, readMetadata } from '../../../src/libvirt/domain-parse.js';
import { renderMetadata } from '../../../src/libvirt/metadata.js';
import {
  filesystemXml,
  hasSharedMemory,
  shareTag,
  virtiofsShares,
  withShare,
  withSharedMemory,
  withoutShare,
} from '../../../src/libvirt/fs-xml.js';
import { FakeRunner, type Expected } from '../../helpers/fake-runner.js';
import { mountOptions } from '../../helpers/mount-vm.js';

const URI = 'qemu:///system';
const tmp = mkdtempSync(join(tmpdir(), 'vms-mount-test-'));
const hostDir = join(tmp, 'share');
mkdirSync(hostDir);

const domainXml = (extra = '', devices = '') =>
  `<domain type='qemu'><name>m</name>${extra}<memory unit='KiB'>262144</memory><devices>` +
  `<disk type='file' device='disk'><source file='/i/m.qcow2'/><target dev='vda' bus='virtio'/></disk>${devices}</devices></domain>`;
const SHARED = "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>";
const share = (tag: string, dir: string) =>
  `<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='${dir}'/><target dir='${tag}'/></filesystem>`;

const isVmsError = (code: string, message: RegExp) => (err: unknown) => {
  assert.ok(err instanceof VmsError, String(err));
  assert.equal(err.code, code);
  assert.match(forCommandLine(err).message, message); // as the command line words it
  return true;
};

// ---- tags and paths ----------------------------------------------------------------------------------------------

test('shareTag: readable, unique, at most 36 characters, never a package-cache tag', () => {
  assert.match(shareTag('/mnt/share'), /^vms-mnt-mnt-share-[0-9a-f]{8}$/);
  assert.equal(shareTag('/mnt/share'), shareTag('/mnt/share'));
  assert.notEqual(shareTag('/a/b'), shareTag('/a-b')); // same readable part, different hash
  const long = shareTag('/home/someone/projects/a-very-long-directory-name/with/more/inside');
  assert.equal(long.length, 36);
  assert.match(long, /^vms-mnt-[a-z0-9][a-z0-9-]*-[0-9a-f]{8}$/);
  assert.match(shareTag('/___'), /^vms-mnt-[0-9a-f]{8}$/);
});

test('checkGuestDir: absolute, normalized, fstab-safe; the root and relative paths are usage errors', () => {
  assert.equal(checkGuestDir('/mnt//share/'), '/mnt/share');
  assert.equal(checkGuestDir('/srv/a/../b'), '/srv/b');
  assert.throws(() => checkGuestDir('mnt/share'), isVmsError('usage', /not an absolute path/));
  assert.throws(() => checkGuestDir('/'), isVmsError('usage', /root directory/));
  assert.throws(() => checkGuestDir('/a/..'), isVmsError('usage', /root directory/));
  assert.throws(() => checkGuestDir('/mnt/my share'), isVmsError('usage', /characters/));
  assert.throws(() => checkGuestDir("/mnt/it's"), isVmsError('usage', /characters/));
});

test('resolveHostDir: an existing directory, symbolic links resolved; missing is notFound, a file a usage error', async () => {
  symlinkSync(hostDir, join(tmp, 'link'));
  writeFileSync(join(tmp, 'file'), '');
  assert.equal(await resolveHostDir(join(tmp, 'link')), hostDir);
  await assert.rejects(resolveHostDir(join(tmp, 'missing')), isVmsError('notFound', /does not exist/));
  await assert.rejects(resolveHostDir(join(tmp, 'file')), isVmsError('usage', /not a directory/));
});

test("isSystemDir: /, system trees and every file below them, and the parents of everyone's files as a whole", () => {
  const system = [
    '/',
    '/etc',
    '/etc/ssh',
    '/usr',
    '/var',
    '/run',
    '/home',
    '/boot',
    '/boot/efi',
    '/root',
    '/root/.ssh',
    '/proc',
    '/proc/1',
    '/sys',
    '/dev',
    '/dev/shm',
    '/bin',
    '/sbin',
    '/lib',
    '/lib64',
    '/lib32',
    '/libx32',
    '/lib/modules',
    '/usr/bin',
    '/usr/sbin',
    '/usr/lib',
    '/usr/lib/x86_64-linux-gnu',
    '/usr/libexec',
    '/usr/lib64',
  ];
  const fine = [
    '/home/alice',
    '/home/alice/src',
    '/var/www',
    '/var/lib/vms-test/x',
    '/run/media/alice/usb',
    '/srv/data',
    '/mnt/x',
    '/opt/app',
    '/usr/local/src',
    '/usr/share/doc',
    '/tmp/x',
    '/etcetera',
    '/rooted',
    '/devices',
    '/binaries',
    '/usr/binx',
    '/data/etc',
  ];
  for (const dir of system) assert.equal(isSystemDir(dir), true, dir);
  for (const dir of fine) assert.equal(isSystemDir(dir), false, dir);
});

test('refuseSystemDir: a usage error that says why and names the override; the override and other dirs pass', () => {
  assert.throws(
    () => refuseSystemDir('/etc', '/etc', false),
    (err: unknown) => {
      assert.ok(err instanceof VmsError);
      assert.equal(err.exitCode, 2);
      assert.equal(
        err.message,
        "/etc is a system directory: virtiofsd runs as root, so the guest would get it with root's rights on the host",
      );
      assert.equal(
        forCommandLine(err).hint,
        'share a directory of your own (your home or one below it is fine), or add --allow-system-dir if you mean it',
      );
      return true;
    },
  );
  assert.throws(
    () => refuseSystemDir('/home/a/etc-link', '/etc', false),
    isVmsError('usage', /^\/home\/a\/etc-link is \/etc, which is a system directory:/),
  );
  assert.doesNotThrow(() => refuseSystemDir('/', '/', true));
  assert.doesNotThrow(() => refuseSystemDir('/home/a', '/home/a', false));
});

test('requireVirtiofsd: a missing virtiofsd is a missing-tool error (exit 7) that says how to install it', () => {
  assert.doesNotThrow(() => requireVirtiofsd(() => '/usr/lib/qemu/virtiofsd'));
  assert.throws(
    () => requireVirtiofsd(() => undefined),
    (err: unknown) => {
      assert.ok(err instanceof VmsError);
      assert.equal(err.exitCode, 7);
      assert.match(err.message, /virtiofsd is not installed/);
      assert.match(err.hint ?? '', /apt install virtiofsd/);
      return true;
    },
  );
});

// ---- domain XML ----------------------------------------------------------------------------------------------------

test('shares and shared memory are read from a domain; adding and removing a share round-trips', async () => {
  const plain = await parseDomainXml(domainXml());
  assert.equal(hasSharedMemory(plain), false);
  assert.deepEqual(virtiofsShares(plain), []);
  const s = { tag: 'vms-mnt-x-12345678', source: '/srv/a & b', readonly: true };
  const added = withShare(withSharedMemory(plain), s);
  const reparsed = await parseDomainXml(await buildDomainXml(added)); // what libvirt would be given
  assert.equal(hasSharedMemory(reparsed), true);
  assert.deepEqual(virtiofsShares(reparsed), [s]);
  assert.deepEqual(virtiofsShares(plain), [], 'the input is left alone');
  const removed = withoutShare(reparsed, s.tag);
  assert.deepEqual(virtiofsShares(removed), []);
  assert.equal(removed.devices[0].filesystem, undefined);
  assert.equal(hasSharedMemory(removed), true, 'shared memory stays for the next share');
});

test('withSharedMemory keeps hugepages and memfd, replaces anonymous memory', async () => {
  const huge = withSharedMemory(
    await parseDomainXml(domainXml("<memoryBacking><hugepages/><source type='file'/></memoryBacking>")),
  );
  assert.deepEqual(huge.memoryBacking[0].hugepages, ['']);
  assert.equal(huge.memoryBacking[0].source[0].$.type, 'file');
  assert.equal(huge.memoryBacking[0].access[0].$.mode, 'shared');
  const anon = withSharedMemory(
    await parseDomainXml(domainXml("<memoryBacking><source type='anonymous'/></memoryBacking>")),
  );
  assert.equal(anon.memoryBacking[0].source[0].$.type, 'memfd');
});

test('filesystemXml: the element for attach-device, escaped, <readonly/> only when asked', async () => {
  assert.equal(
    await filesystemXml({ tag: 't', source: '/a&b', readonly: false }),
    `<filesystem type="mount" accessmode="passthrough">\n  <driver type="virtiofs"/>\n  <source dir="/a&amp;b"/>\n  <target dir="t"/>\n</filesystem>`,
  );
  assert.match(
    await filesystemXml({ tag: 't', source: '/a', readonly: true }),
    /<target dir="t"\/>\n {2}<readonly\/>\n<\/filesystem>$/,
  );
});

// ---- guest commands, run in a real shell ----------------------------------------------------------------------------

const sh = (command: string) => execFileSync('sh', ['-c', command], { encoding: 'utf8' });

test('guestDirStateCommand tells empty (or missing), nonempty and notdir apart', () => {
  const g = join(tmp, 'guest');
  mkdirSync(join(g, 'empty'), { recursive: true });
  mkdirSync(join(g, 'full'));
  writeFileSync(join(g, 'full', '.hidden'), '');
  writeFileSync(join(g, 'file'), '');
  const state = (dir: string) => sh(guestDirStateCommand('vms-mnt-t-00000000', join(g, dir))).trim();
  assert.equal(state('empty'), 'empty');
  assert.equal(state('missing'), 'empty');
  assert.equal(state('full'), 'nonempty');
  assert.equal(state('file'), 'notdir');
});

test('fstabCommand adds the line once, keeps the other lines, and removes it again', () => {
  const fstab = join(tmp, 'fstab');
  writeFileSync(fstab, 'UUID=1 / ext4 rw 0 1\nvms-mnt-other-11111111 /o virtiofs defaults,nofail 0 0'); // no newline at the end
  const run = (cmd: string) => sh(cmd.replaceAll('/etc/fstab', fstab));
  const line = fstabLine('vms-mnt-s-22222222', '/mnt/s', true);
  assert.equal(line, 'vms-mnt-s-22222222 /mnt/s virtiofs defaults,ro,nofail 0 0');
  run(fstabCommand('vms-mnt-s-22222222', line));
  run(fstabCommand('vms-mnt-s-22222222', line));
  assert.equal(
    readFileSync(fstab, 'utf8'),
    `UUID=1 / ext4 rw 0 1\nvms-mnt-other-11111111 /o virtiofs defaults,nofail 0 0\n${line}\n`,
  );
  run(fstabCommand('vms-mnt-s-22222222'));
  assert.equal(
    readFileSync(fstab, 'utf8'),
    'UUID=1 / ext4 rw 0 1\nvms-mnt-other-11111111 /o virtiofs defaults,nofail 0 0\n',
  );
  run(fstabCommand('vms-mnt-other-11111111'));
  run(fstabCommand('vms-mnt-other-11111111'));
  assert.equal(readFileSync(fstab, 'utf8'), 'UUID=1 / ext4 rw 0 1\n');
});

// ---- decisions before anything changes ---------------------------------------------------------------------------

const opts = (o: Partial<MountOptions> = {}) => mountOptions(hostDir, o);
const ctxWith = (calls: Expected[]) => {
  const runner = new FakeRunner(calls);
  return {
    runner,
    ctx: createContext({ config: resolveConfig({ env: { VMS_STATE_DIR: join(tmp, 'state') } }), runner }),
  };
};
const virsh = (args: string[], stdout = '', exitCode = 0, stderr = ''): Expected => ({
  cmd: 'virsh',
  args: ['-c', URI, ...args],
  result: { stdout, exitCode, stderr },
});
const loads = (inactive: string, state: string, live?: string) => [
  virsh(['dumpxml', 'm', '--inactive', '--security-info'], inactive),
  virsh(['domstate', 'm'], `${state}\n`),
  ...(live ? [virsh(['dumpxml', 'm'], live)] : []),
];
/** A `virsh define` call; `check` sees the XML it defines (the temp file exists during the call). */
const define = (check: (xml: string) => void, stderr = ''): Expected => ({
  cmd: 'virsh',
  args: (args) => {
    if (args[2] !== 'define') return false;
    check(readFileSync(args[3]!, 'utf8'));
    return true;
  },
  result: { exitCode: stderr ? 1 : 0, stderr },
});

test('/ and /etc (also through a link) are refused before libvirt is asked anything; --allow-system-dir goes on', async () => {
  const link = join(tmp, 'etc-link');
  symlinkSync('/etc', link);
  for (const dir of ['/', '/etc', link, '/usr/bin', '/var']) {
    const { ctx, runner } = ctxWith([]);
    await assert.rejects(
      mountShare(ctx, opts({ hostDir: dir, force: true }), () => 'virtiofsd'),
      isVmsError('usage', /is a system directory: virtiofsd runs as root/),
      dir,
    );
    runner.done();
  }
  const { ctx, runner } = ctxWith([
    ...loads(domainXml(), 'shut off'),
    define((xml) => assert.match(xml, /<source dir="\/etc"\/>/)),
  ]);
  const r = await mountShare(ctx, opts({ hostDir: link, allowSystemDir: true }), () => 'virtiofsd');
  runner.done();
  assert.equal(r.hostDir, '/etc');
});

test('without virtiofsd nothing is asked of libvirt', async () => {
  const { ctx, runner } = ctxWith([]);
  await assert.rejects(
    mountShare(ctx, opts(), () => undefined),
    isVmsError('missingTool', /virtiofsd/),
  );
  runner.done();
});

test('a running VM without shared memory: refused with a hint at --restart, after reading only', async () => {
  const { ctx, runner } = ctxWith(loads(domainXml(), 'running', domainXml()));
  await assert.rejects(
    mountShare(ctx, opts(), () => 'virtiofsd'),
    (err: unknown) => {
      assert.ok(err instanceof VmsError && err.code === 'conflict');
      assert.match(err.message, /needs a restart for virtiofs: it runs without shared memory/);
      assert.match(forCommandLine(err).hint ?? '', /--restart/);
      return true;
    },
  );
  runner.done();
});

test('a paused VM: mount and umount refused (reason vm.paused) before its running definition is read', async () => {
  for (const state of ['paused', 'pmsuspended']) {
    const paused = (err: unknown) =>
      err instanceof VmsError &&
      err.code === 'conflict' &&
      err.reason === 'vm.paused' &&
      err.message === `m is ${state}`;
    const mount = ctxWith(loads(domainXml(), state));
    await assert.rejects(
      mountShare(mount.ctx, opts(), () => 'virtiofsd'),
      paused,
    );
    mount.runner.done();
    const umount = ctxWith(loads(domainXml(), state));
    await assert.rejects(unmountShare(umount.ctx, 'm', '/mnt/s'), paused);
    umount.runner.done();
  }
});

test('GUESTDIR shared from another host directory: a conflict naming it', async () => {
  const other = domainXml(SHARED, share(shareTag('/mnt/s'), '/elsewhere'));
  const { ctx, runner } = ctxWith(loads(other, 'shut off'));
  await assert.rejects(
    mountShare(ctx, opts(), () => 'virtiofsd'),
    isVmsError('conflict', /already shared from \/elsewhere/),
  );
  runner.done();
});

test('--temp on a shut-off VM is refused', async () => {
  const { ctx, runner } = ctxWith(loads(domainXml(), 'shut off'));
  await assert.rejects(
    mountShare(ctx, opts({ temp: true }), () => 'virtiofsd'),
    isVmsError('conflict', /shut off: --temp/),
  );
  runner.done();
});

test('a shut-off VM: shared memory and the share go into its definition; read-only falls back when libvirt refuses it', async () => {
  const tag = shareTag('/mnt/s');
  const defined: string[] = [];
  const { ctx, runner } = ctxWith([
    ...loads(domainXml(), 'shut off'),
    define(
      (xml) => defined.push(xml),
      'error: unsupported configuration: virtiofs does not yet support read-only mode',
    ),
    define((xml) => defined.push(xml)),
  ]);
  const r = await mountShare(ctx, opts({ readonly: true }), () => 'virtiofsd');
  runner.done();
  assert.deepEqual(r, {
    name: 'm',
    hostDir,
    guestDir: '/mnt/s',
    tag,
    readonly: true,
    readonlyOnHost: false,
    persistent: true,
    mounted: false,
    fstab: false,
    restarted: false,
  });
  const [first, second] = await Promise.all(defined.map(parseDomainXml));
  assert.deepEqual(virtiofsShares(first!), [{ tag, source: hostDir, readonly: true }]);
  assert.deepEqual(virtiofsShares(second!), [{ tag, source: hostDir, readonly: false }]);
  assert.equal(hasSharedMemory(second!), true);
  assert.deepEqual(
    readMetadata(second!).readonlyShares,
    [tag],
    'read-only is kept in the definition, where libvirt cannot keep it',
  );
});

const keptReadonly = (tags: string[]) =>
  `<metadata>${renderMetadata({ bases: [], made: [], readonlyShares: tags })}</metadata>`;

test('a shut-off VM whose definition keeps the share read-only: a mount without --readonly is read-only too, nothing to do', async () => {
  const tag = shareTag('/mnt/s');
  const { ctx, runner } = ctxWith(loads(domainXml(keptReadonly([tag]) + SHARED, share(tag, hostDir)), 'shut off'));
  const r = await mountShare(ctx, opts(), () => 'virtiofsd');
  runner.done();
  assert.deepEqual(
    { readonly: r.readonly, readonlyOnHost: r.readonlyOnHost },
    { readonly: true, readonlyOnHost: false },
  );
});

test("--readonly for a share the definition has writable: only vms' record changes; umount takes the record away again", async () => {
  const tag = shareTag('/mnt/s');
  const defined: string[] = [];
  const { ctx, runner } = ctxWith([
    ...loads(domainXml(SHARED, share(tag, hostDir)), 'shut off'),
    define((xml) => defined.push(xml)),
  ]);
  const r = await mountShare(ctx, opts({ readonly: true }), () => 'virtiofsd');
  runner.done();
  assert.equal(r.readonly, true);
  const edited = await parseDomainXml(defined[0]!);
  assert.deepEqual(virtiofsShares(edited), [{ tag, source: hostDir, readonly: false }]);
  assert.deepEqual(readMetadata(edited).readonlyShares, [tag]);

  const other = shareTag('/mnt/other');
  const off = ctxWith([
    ...loads(domainXml(keptReadonly([other, tag]) + SHARED, share(tag, hostDir)), 'shut off'),
    define((xml) => defined.push(xml)),
  ]);
  await unmountShare(off.ctx, 'm', '/mnt/s');
  off.runner.done();
  const after = await parseDomainXml(defined[1]!);
  assert.deepEqual(virtiofsShares(after), []);
  assert.deepEqual(readMetadata(after).readonlyShares, [other], "only this share's record goes");
});

const shutOffResult = {
  name: 'm',
  hostDir: "/srv/it's $(touch x) dir",
  guestDir: '/mnt/s',
  tag: 't',
  readonlyOnHost: false,
  persistent: true,
  mounted: false,
  fstab: false,
  restarted: false,
};

test('describeMount on a shut-off VM: the hint carries --readonly (and the overrides given), quoted for the shell, and says libvirt cannot enforce it', () => {
  const text = describeMount({ ...shutOffResult, readonly: true }, { readonly: true, allowSystemDir: true });
  assert.equal(
    text,
    [
      "/srv/it's $(touch x) dir is shared read-only into m (shut off) as t: only its definition changed",
      "next: vms start m && vms mount m '/srv/it'\\''s $(touch x) dir' /mnt/s --readonly --allow-system-dir   # mounts it read-only in the guest and adds it to /etc/fstab",
      'note: read-only in the guest only: libvirt cannot make this virtiofs share read-only on the host (libvirt 9.0 refuses <readonly/> for virtiofs), so root in the guest could remount it writable',
    ].join('\n'),
  );
  const kept = describeMount({ ...shutOffResult, readonly: true }, {});
  assert.match(kept, /--readonly {3}# mounts it read-only/, 'read-only kept in the definition: the hint says so too');
  assert.match(kept, /note: read-only, as m's definition keeps this share since it was mounted with --readonly/);
  assert.doesNotMatch(describeMount({ ...shutOffResult, readonly: false }, {}), /--readonly|note:/);
});

test('a shut-off VM that has the share already: nothing to do', async () => {
  const { ctx, runner } = ctxWith(loads(domainXml(SHARED, share(shareTag('/mnt/s'), hostDir)), 'shut off'));
  const r = await mountShare(ctx, opts(), () => 'virtiofsd');
  runner.done();
  assert.equal(r.persistent, true);
});
