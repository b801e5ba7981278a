import assert from 'node:assert/strict';
import { test } from 'node:test';
import { domainXmlReferences, snapshotReferences } from '../../../src/libvirt/domain-files.js';

// Which host files a definition or a snapshot names decides which files vms may delete (files-in-use, destroy, gc):
// every role, access and skip is checked exactly.

const domain = (devices: string, os = '') =>
  `<domain type='kvm'><name>v</name><os><type>hvm</type>${os}</os><devices>${devices}</devices></domain>`;

test('chardevs: file, pipe and dev ports are written, unix sockets listened on or connected to, logs written', async () => {
  const refs = await domainXmlReferences(
    domain(
      "<serial type='unix'><source mode='bind' path='/s/console.sock'/><log file='/s/serial.log'/></serial>" +
        "<serial type='file'><source path='/s/ttyS1.log'/></serial>" +
        "<serial type='pipe'><source path='/s/pipe'/></serial>" +
        "<parallel type='dev'><source path='/dev/lp0'/></parallel>" +
        "<channel type='unix'><source mode='connect' path='/s/agent.sock'/></channel>",
    ),
  );
  assert.deepEqual(refs, [
    { path: '/s/serial.log', role: 'log', access: 'write' },
    { path: '/s/console.sock', role: 'console', access: 'listen' },
    { path: '/s/ttyS1.log', role: 'serial', access: 'write' },
    { path: '/s/pipe', role: 'serial', access: 'write' },
    { path: '/dev/lp0', role: 'serial', access: 'write' },
    { path: '/s/agent.sock', role: 'channel', access: 'connect' },
  ]);
});

test('chardevs: a pty, a tcp port and a port without a source name no file; a bare element is no error', async () => {
  const refs = await domainXmlReferences(
    domain(
      "<serial type='pty'><source path='/dev/pts/7'/><log file='/s/pty.log'/></serial>" +
        "<serial type='tcp'><source mode='bind' host='127.0.0.1' service='4555'/></serial>" +
        "<serial type='file'><target port='2'/></serial>" +
        '<serial><log/></serial>' +
        "<channel type='spicevmc'><target type='virtio'/></channel>",
    ),
  );
  assert.deepEqual(refs, [{ path: '/s/pty.log', role: 'log', access: 'write' }]);
});

test('chardevs: a <console> names the console; without one, the first serial port is it', async () => {
  const withConsole = await domainXmlReferences(
    domain(
      "<serial type='file'><source path='/s/a'/></serial>" +
        "<console type='unix'><source mode='bind' path='/s/c.sock'/></console>",
    ),
  );
  assert.deepEqual(withConsole, [
    { path: '/s/a', role: 'serial', access: 'write' },
    { path: '/s/c.sock', role: 'console', access: 'listen' },
  ]);
  const firstSerial = await domainXmlReferences(
    domain("<serial type='file'><source path='/s/a'/></serial><serial type='file'><source path='/s/b'/></serial>"),
  );
  assert.deepEqual(firstSerial, [
    { path: '/s/a', role: 'console', access: 'write' },
    { path: '/s/b', role: 'serial', access: 'write' },
  ]);
  const noSource = await domainXmlReferences(
    domain("<serial type='pty'/><serial type='file'><source path='/s/b'/></serial>"),
  );
  assert.deepEqual(noSource, [{ path: '/s/b', role: 'serial', access: 'write' }]);
});

test('snapshot: its memory file is read, its external disks written (with their format), then its definition', async () => {
  const xml =
    "<domainsnapshot><name>s</name><memory snapshot='external' file='/i/s.mem'/><disks>" +
    "<disk name='vda' snapshot='external' type='file'><driver type='qcow2'/><source file='/i/v.s'/></disk>" +
    "<disk name='vdb' snapshot='external' type='file'><source file='/i/w.s'/></disk>" +
    "<disk name='vdc' snapshot='no'/>" +
    "<disk name='vdd' snapshot='internal'><source/></disk>" +
    '</disks>' +
    domain(
      "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/i/v.qcow2'/>" +
        "<target dev='vda' bus='virtio'/></disk>",
    ) +
    '</domainsnapshot>';
  assert.deepEqual(await snapshotReferences(xml), [
    { path: '/i/s.mem', role: 'memory', access: 'read' },
    { path: '/i/v.s', role: 'disk', access: 'write', format: 'qcow2' },
    { path: '/i/w.s', role: 'disk', access: 'write', format: undefined },
    { path: '/i/v.qcow2', role: 'disk', access: 'write', format: 'qcow2' },
  ]);
});

test('snapshot: no memory file, no disks, no definition: nothing; a bare <memory/> is no error', async () => {
  assert.deepEqual(await snapshotReferences("<domainsnapshot><memory snapshot='no'/></domainsnapshot>"), []);
  assert.deepEqual(await snapshotReferences('<domainsnapshot><memory/><disks/></domainsnapshot>'), []);
  assert.deepEqual(await snapshotReferences('<domainsnapshot><name>s</name></domainsnapshot>'), []);
});

test('snapshot: a document that is not a snapshot is refused by name', async () => {
  await assert.rejects(snapshotReferences(domain('')), {
    message: 'not a libvirt domain snapshot XML document',
  });
});
