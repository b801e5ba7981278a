import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeRunner } from '../../helpers/fake-runner.js';
import { virshCommands } from '../../helpers/virsh-tokenizer.js';
import { VmsError } from '../../../src/errors.js';
import { Virsh, classifyVirshError, parseNames, pickDomainType } from '../../../src/libvirt/virsh.js';

const URI = 'qemu:///system';
const CONNECT_ERROR =
  "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory\n";

// ---- capabilities ------------------------------------------------------------------------------------------------

const guest = (arch: string, domains: string[]) =>
  `  <guest>\n    <os_type>hvm</os_type>\n    <arch name='${arch}'>\n      <wordsize>64</wordsize>\n` +
  `      <emulator>/usr/bin/qemu-system-${arch}</emulator>\n      <machine maxCpus='288'>pc-q35-9.0</machine>\n` +
  domains.map((d) => `      <domain type='${d}'/>\n`).join('') +
  `    </arch>\n    <features>\n      <acpi default='on' toggle='yes'/>\n    </features>\n  </guest>\n`;
const caps = (...guests: string[]) =>
  `<capabilities>\n  <host>\n    <cpu><arch>x86_64</arch></cpu>\n  </host>\n${guests.join('')}</capabilities>\n`;

test('pickDomainType prefers KVM for x86_64 and falls back to TCG', () => {
  const cases: [string, 'kvm' | 'qemu'][] = [
    [caps(guest('i686', ['qemu', 'kvm']), guest('x86_64', ['qemu', 'kvm'])), 'kvm'],
    [caps(guest('x86_64', ['qemu'])), 'qemu'],
    [caps(guest('i686', ['qemu', 'kvm']), guest('x86_64', ['qemu'])), 'qemu'], // KVM for another arch does not count
    [caps(guest('x86_64', ['qemu', 'kvm'])).replaceAll("'", '"'), 'kvm'],
  ];
  for (const [xml, type] of cases) assert.equal(pickDomainType(xml), type);
});

test('pickDomainType fails when libvirt offers no x86_64 guest', () => {
  for (const xml of [caps(), caps(guest('aarch64', ['qemu', 'kvm']))]) {
    assert.throws(
      () => pickDomainType(xml),
      (err: unknown) => {
        assert.ok(err instanceof VmsError);
        assert.equal(err.message, 'libvirt offers no x86_64 guests');
        assert.match(err.hint ?? '', /vms bootstrap/);
        return true;
      },
    );
  }
});

// ---- virsh list --------------------------------------------------------------------------------------------------

test('parseNames reads `virsh list --all --name`, names with spaces whole', () => {
  assert.deepEqual(parseNames('a\nmy vm\nb-2\n\n'), ['a', 'my vm', 'b-2']);
  assert.deepEqual(parseNames('\n'), []);
  assert.deepEqual(parseNames(''), []);
});

// ---- errors ------------------------------------------------------------------------------------------------------

const result = (stderr: string, exitCode = 1) => ({ stdout: '', stderr, exitCode });

test('classifyVirshError maps virsh messages to error codes', () => {
  const cases: [string, string | undefined, string, RegExp][] = [
    [CONNECT_ERROR, undefined, 'unreachable', /^cannot reach libvirt at qemu:\/\/\/system: /],
    [CONNECT_ERROR, 'x', 'unreachable', /^cannot reach libvirt/], // unreachable wins over "no such VM"
    ["error: failed to get domain 'x'\n", 'x', 'notFound', /^no VM named 'x'$/],
    [
      "error: failed to get domain 'x'\nerror: Domain not found: no domain with matching name 'x'\n",
      'x',
      'notFound',
      /^no VM named 'x'$/,
    ],
    [
      "error: operation failed: domain 'x' already exists with uuid 6695eb01\n",
      undefined,
      'conflict',
      /already exists/,
    ],
    ['error: Requested operation is not valid: domain is not running\n', 'x', 'conflict', /domain is not running/],
    ["error: failed to get domain 'x'\n", undefined, 'failed', /^virsh dumpxml failed: failed to get domain 'x'/], // no subject
    ['error: internal error: something odd\n', 'x', 'failed', /^virsh dumpxml failed: internal error: something odd$/],
    ['', undefined, 'failed', /^virsh dumpxml failed: exit status 1$/],
  ];
  for (const [stderr, subject, code, message] of cases) {
    const err = classifyVirshError(['dumpxml', 'x'], result(stderr), URI, subject);
    assert.equal(err.code, code, stderr);
    assert.match(err.message, message, stderr);
    if (code !== 'conflict') assert.ok(err.hint, `a hint for ${stderr}`);
  }
  const unreachable = classifyVirshError(['list'], result(CONNECT_ERROR), URI);
  assert.match(unreachable.hint!, /`vms bootstrap`/);
  assert.equal(unreachable.exitCode, 5);
});

test('the unreachable message keeps the reason virsh gave, once', () => {
  const err = classifyVirshError(['list'], result(CONNECT_ERROR), URI);
  assert.equal(
    err.message,
    "cannot reach libvirt at qemu:///system: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory",
  );
});

test('turned away by libvirtd (socket permissions, polkit): the hint is the libvirt group, not starting libvirtd', () => {
  // Both as measured: a user outside the group on a 0770 socket, and polkit without an agent (Arch, Fedora).
  for (const reason of [
    "Failed to connect socket to '/var/run/libvirt/libvirt-sock': Permission denied",
    "authentication unavailable: no polkit agent available to authenticate action 'org.libvirt.unix.manage'",
  ]) {
    const err = classifyVirshError(
      ['list'],
      result(`error: failed to connect to the hypervisor\nerror: ${reason}\n`),
      URI,
    );
    assert.equal(err.code, 'unreachable');
    assert.match(
      err.hint!,
      /^libvirt lets the libvirt group in: `vms bootstrap` adds you to it, then log out and in again/,
      reason,
    );
  }
  assert.match(
    classifyVirshError(['list'], result(CONNECT_ERROR), URI).hint!,
    /^is libvirtd running\?/,
    'no socket: not running',
  );
});

// ---- Virsh.exists ------------------------------------------------------------------------------------------------

test('Virsh.exists: true, false, or the connection error', async () => {
  const domuuid = ['-c', URI, 'domuuid', 'a'];
  const cases: [{ stdout?: string; stderr?: string; exitCode: number }, boolean | string][] = [
    [{ stdout: '3f1c9b9e-5b7a-4d2e-9a55-0c1f3c2b8e41\n\n', exitCode: 0 }, true],
    [{ stderr: "error: failed to get domain 'a'\n", exitCode: 1 }, false],
    [{ stderr: CONNECT_ERROR, exitCode: 1 }, 'unreachable'],
    [{ stderr: 'error: internal error: oops\n', exitCode: 1 }, 'failed'],
  ];
  for (const [res, expected] of cases) {
    const runner = new FakeRunner([{ cmd: 'virsh', args: domuuid, result: res }]);
    const virsh = new Virsh(runner, URI);
    if (typeof expected === 'boolean') assert.equal(await virsh.exists('a'), expected);
    else await assert.rejects(virsh.exists('a'), (err: unknown) => err instanceof VmsError && err.code === expected);
    runner.done();
  }
});

test('Virsh.state trims, and a missing VM is notFound', async () => {
  const runner = new FakeRunner([
    { cmd: 'virsh', args: ['-c', URI, 'domstate', 'a'], result: { stdout: 'shut off\n\n' } },
    {
      cmd: 'virsh',
      args: ['-c', URI, 'domstate', 'b'],
      result: { stderr: "error: failed to get domain 'b'\n", exitCode: 1 },
    },
  ]);
  const virsh = new Virsh(runner, URI);
  assert.equal(await virsh.state('a'), 'shut off');
  await assert.rejects(
    virsh.state('b'),
    (err: unknown) => err instanceof VmsError && err.code === 'notFound' && err.message === "no VM named 'b'",
  );
  runner.done();
});

// ---- Virsh.batch -------------------------------------------------------------------------------------------------

/**
 * What virsh 9 prints for a batch (checked against `virsh -c test:///default`): `echo` prints its words and a
 * newline; every other command prints its output and then an extra "\n"; a failed command prints only that "\n"
 * (its message goes to stderr).
 */
function virshStdout(line: string, outputs: Record<string, string>): string {
  return virshCommands(line)
    .map(([cmd, ...args]) => (cmd === 'echo' ? `${args.join(' ')}\n` : `${outputs[[cmd, ...args].join(' ')] ?? ''}\n`))
    .join('');
}

/** A FakeRunner expecting exactly one `virsh -c URI <line>` call and answering it like virsh would. */
function batchRunner(outputs: Record<string, string>, seen: { line?: string }): FakeRunner {
  const call = {
    cmd: 'virsh',
    args: (args: readonly string[]) => {
      if (args.length !== 3 || args[0] !== '-c' || args[1] !== URI) return false;
      seen.line = args[2];
      call.result = { stdout: virshStdout(args[2]!, outputs) };
      return true;
    },
    result: {} as { stdout?: string },
  };
  return new FakeRunner([call]);
}

const XML = "<domain type='kvm' id='1'>\n  <name>a</name>\n</domain>\n";

test('Virsh.batch runs every command in ONE virsh process and splits the output per command', async () => {
  const seen: { line?: string } = {};
  const runner = batchRunner({ 'dumpxml a': XML, 'domstate c': 'running\n' }, seen);
  const out = await new Virsh(runner, URI).batch([
    ['dumpxml', 'a'],
    ['domstate', 'b'],
    ['domstate', 'c'],
  ]);
  runner.done();
  assert.equal(runner.calls.length, 1);
  assert.deepEqual(out, [`${XML}\n`, undefined, 'running\n\n']);

  const commands = virshCommands(seen.line!);
  const marker = commands[0]![1]!.slice(0, -1);
  assert.match(marker, /^@@vms-\d+-\d+@@$/);
  assert.deepEqual(commands, [
    ['echo', `${marker}0`],
    ['dumpxml', 'a'],
    ['echo', `${marker}1`],
    ['domstate', 'b'],
    ['echo', `${marker}2`],
    ['domstate', 'c'],
    ['echo', `${marker}end`],
  ]);
});

test('Virsh.batch: every command failing gives undefined for each; no commands spawn nothing', async () => {
  const runner = batchRunner({}, {});
  assert.deepEqual(
    await new Virsh(runner, URI).batch([
      ['dumpxml', 'x'],
      ['domstate', 'x'],
    ]),
    [undefined, undefined],
  );
  runner.done();
  const none = new FakeRunner([]);
  assert.deepEqual(await new Virsh(none, URI).batch([]), []);
  none.done();
});

test('Virsh.batch without the end marker (virsh could not connect) throws the classified error', async () => {
  const runner = new FakeRunner([
    { cmd: 'virsh', args: (a) => a.length === 3, result: { stderr: CONNECT_ERROR, exitCode: 1 } },
  ]);
  await assert.rejects(
    new Virsh(runner, URI).batch([['dumpxml', 'a']]),
    (err: unknown) => err instanceof VmsError && err.code === 'unreachable',
  );
  runner.done();
});

test('Virsh.batch quotes arguments so virsh reads them back unchanged', async () => {
  const args = ['qemu-agent-command', 'a b', '{"execute":"guest-ping"}', 'semi;colon', 'tab\there', '--timeout', '2'];
  const seen: { line?: string } = {};
  const runner = batchRunner({ [args.join(' ')]: '{"return":{}}\n' }, seen);
  assert.deepEqual(await new Virsh(runner, URI).batch([args]), ['{"return":{}}\n\n']);
  assert.deepEqual(virshCommands(seen.line!)[1], args);
  runner.done();
});

test('Virsh.batch quotes single quotes and backslashes the way virsh reads them', async () => {
  const args = ['dumpxml', "it's", 'back\\slash'];
  const seen: { line?: string } = {};
  const runner = batchRunner({ [args.join(' ')]: XML }, seen);
  const out = await new Virsh(runner, URI).batch([args, ['domstate', 'b']]).catch((err: Error) => err);
  assert.deepEqual(virshCommands(seen.line!)[1], args);
  assert.deepEqual(out, [`${XML}\n`, undefined]);
});

// ---- Virsh.downloadFile ------------------------------------------------------------------------------------------

test("Virsh.downloadFile reads through a transient pool on the file's directory, and destroys it even on failure", async () => {
  let pool = '';
  const create = {
    cmd: 'virsh',
    args: (a: readonly string[]) => (
      (pool = a[3]!),
      a.join(' ') === `-c ${URI} pool-create-as ${pool} dir --target /var/lib/vms/a` &&
        /^vms-copy-[0-9a-f]{8}$/.test(pool)
    ),
  };
  const download = (result = {}) => ({
    cmd: 'virsh',
    args: (a: readonly string[]) => a.join(' ') === `-c ${URI} vol-download --pool ${pool} nvram.fd /tmp/b/nvram.fd`,
    result,
  });
  const destroy = { cmd: 'virsh', args: (a: readonly string[]) => a.join(' ') === `-c ${URI} pool-destroy ${pool}` };
  const ok = new FakeRunner([create, download(), destroy]);
  await new Virsh(ok, URI).downloadFile('/var/lib/vms/a/nvram.fd', '/tmp/b/nvram.fd');
  ok.done();
  const failing = new FakeRunner([create, download({ exitCode: 1, stderr: 'error: Permission denied\n' }), destroy]);
  await assert.rejects(
    new Virsh(failing, URI).downloadFile('/var/lib/vms/a/nvram.fd', '/tmp/b/nvram.fd'),
    /virsh vol-download failed: Permission denied/,
  );
  failing.done();
});
