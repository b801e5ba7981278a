import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { consoleTarget, viewerPlan } from '../../../src/core/vm/attach.js';
import { VmsError } from '../../../src/errors.js';
import { FakeRunner, type Expected } from '../../helpers/fake-runner.js';
import { runCli } from '../../helpers/test-io.js';
import { fakeContext, virshCall } from '../../helpers/virsh-fake.js';
import { loadCalls, vmXml } from '../../helpers/vm-fake.js';

// What `vms console` and `vms viewer` attach to: the core's answer (a socket, or a program and its arguments) for
// each case, from the VM's definition, its state and the caller's environment (DISPLAY, PATH); nothing is launched.

const VM = 'att';
const URI_SHOWN = 'spice://127.0.0.1:5900';
const display = virshCall(['domdisplay', VM], `${URI_SHOWN}\n`);

/** A PATH holding executables of these names (and nothing else). */
function pathWith(...programs: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'vms-path-'));
  for (const p of programs) {
    writeFileSync(join(dir, p), '#!/bin/sh\n');
    chmodSync(join(dir, p), 0o755);
  }
  return dir;
}

async function plan(expected: Expected[], env: Record<string, string>) {
  const { ctx, runner } = fakeContext(expected);
  ctx.host = { ...ctx.host, env };
  const result = await viewerPlan(ctx, VM);
  runner.done();
  return result;
}

const isConflict = (message: string, hint: string) => (e: unknown) =>
  e instanceof VmsError && e.code === 'conflict' && e.message === message && e.hint === hint;

test('console: the unix socket and transcript of a running VM', async () => {
  const { ctx, runner } = fakeContext(loadCalls(VM, 'running'));
  assert.deepEqual(await consoleTarget(ctx, VM), {
    name: VM,
    socket: '/state/att/serial.sock',
    log: '/state/att/serial.log',
  });
  runner.done();
});

test('console: a VM vms did not make (no unix-socket console) is sent to virsh console', async () => {
  const { ctx, runner } = fakeContext(loadCalls(VM, 'running', vmXml(VM, { serial: false })));
  await assert.rejects(
    consoleTarget(ctx, VM),
    isConflict('att has no unix-socket serial console', 'it was not made by vms: use `virsh console att`'),
  );
  runner.done();
});

test('viewer: with a display, virt-viewer (preferred to remote-viewer) on the connection and the name', async () => {
  const PATH = pathWith('virt-viewer', 'remote-viewer');
  for (const env of [
    { DISPLAY: ':0', PATH },
    { WAYLAND_DISPLAY: 'wayland-0', PATH },
  ] as Record<string, string>[]) {
    assert.deepEqual(await plan([...loadCalls(VM, 'running'), display], env), {
      name: VM,
      uri: URI_SHOWN,
      launch: { cmd: 'virt-viewer', args: ['--connect', 'qemu:///system', VM] },
    });
  }
});

test('viewer: only remote-viewer: it opens the URI', async () => {
  const env = { DISPLAY: ':0', PATH: pathWith('remote-viewer') };
  assert.deepEqual(await plan([...loadCalls(VM, 'running'), display], env), {
    name: VM,
    uri: URI_SHOWN,
    launch: { cmd: 'remote-viewer', args: [URI_SHOWN] },
  });
});

test('viewer: no graphical session, or no viewer: the URI and the reason, nothing to launch', async () => {
  const noSession = await plan([...loadCalls(VM, 'running'), display], { PATH: pathWith('virt-viewer') });
  assert.deepEqual(noSession, {
    name: VM,
    uri: URI_SHOWN,
    reason:
      'no graphical session (DISPLAY and WAYLAND_DISPLAY are unset): ' +
      'open the URI with remote-viewer on a machine with a display',
  });
  const noViewer = await plan([...loadCalls(VM, 'running'), display], { DISPLAY: ':0', PATH: pathWith('ls') });
  assert.deepEqual(noViewer, {
    name: VM,
    uri: URI_SHOWN,
    reason: 'neither virt-viewer nor remote-viewer is installed: `vms bootstrap` installs virt-viewer',
  });
});

test('viewer: no graphics: sent to the console; shut off: refused before its display is asked', async () => {
  const { ctx, runner } = fakeContext(loadCalls(VM, 'running', vmXml(VM, { graphics: false })));
  await assert.rejects(viewerPlan(ctx, VM), isConflict('att has no graphical display', 'use `vms console att`'));
  runner.done();
  const off = fakeContext(loadCalls(VM, 'shut off'));
  await assert.rejects(
    viewerPlan(off.ctx, VM),
    isConflict('att is not running (shut off)', 'start it with `vms start att`'),
  );
  off.runner.done();
});

test('vms viewer: launches the viewer through the runner, waits; its failure is the exit status', async () => {
  const PATH = pathWith('virt-viewer');
  const launch = (exitCode: number): Expected => ({
    cmd: 'virt-viewer',
    args: ['--connect', 'qemu:///system', VM],
    result: { exitCode },
  });
  const ok = new FakeRunner([...loadCalls(VM, 'running'), display, launch(0)]);
  const r = await runCli(['viewer', VM], { runner: ok, env: { DISPLAY: ':0', PATH } });
  ok.done();
  assert.deepEqual([r.exitCode, r.stdout, r.stderr], [0, '', '']);

  const failing = new FakeRunner([...loadCalls(VM, 'running'), display, launch(3)]);
  const f = await runCli(['viewer', VM], { runner: failing, env: { DISPLAY: ':0', PATH } });
  failing.done();
  assert.deepEqual([f.exitCode, f.stdout, f.stderr], [1, '', 'error: virt-viewer exited with status 3\n']);

  const headless = new FakeRunner([...loadCalls(VM, 'running'), display]);
  const h = await runCli(['viewer', VM], { runner: headless, env: { PATH } });
  headless.done();
  assert.equal(h.exitCode, 0);
  assert.match(h.stdout, /^spice:\/\/127\.0\.0\.1:5900\nhint: no graphical session/);
});
