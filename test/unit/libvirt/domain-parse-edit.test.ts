import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  buildDomainXml,
  domainFacts,
  parseDomainXml,
  readMetadata,
  type XmlNode,
} from '../../../src/libvirt/domain-parse.js';
import {
  cloneDefinition,
  withDiskBoot,
  withDiskSources,
  withMetadata,
  type CloneIdentity,
} from '../../../src/libvirt/domain-edit.js';
import { PENDING_STEPS, renderMetadata, VMS_NS } from '../../../src/libvirt/metadata.js';
import { assertValidDomainXml } from '../../helpers/validate-xml.js';

// `virsh dumpxml` of a running EFI VM that is itself a linked clone (backing chain), libvirt 9 style.
const FIXTURE = readFileSync(new URL('../../fixtures/dumpxml-efi-running.xml', import.meta.url), 'utf8');
const LIBOSINFO = 'http://libosinfo.org/xmlns/libvirt/domain/1.0';
const GiB = 2 ** 30;

const minimal = (inner: string) => `<domain type='kvm'><name>m</name>${inner}</domain>`;

test('domainFacts reads a real dumpxml', async () => {
  const facts = domainFacts(await parseDomainXml(FIXTURE));
  assert.deepEqual(facts, {
    name: 'work',
    uuid: '3f1c9b9e-5b7a-4d2e-9a55-0c1f3c2b8e41',
    memoryBytes: 4 * GiB, // 4194304 KiB
    cpus: 4,
    firmware: 'efi',
    nvramPath: '/var/lib/vms/work/nvram.fd',
    disks: [
      {
        type: 'file',
        device: 'disk',
        target: 'vda',
        path: '/var/lib/libvirt/images/work.qcow2',
        format: 'qcow2',
        readonly: false,
      },
      {
        type: 'file',
        device: 'cdrom',
        target: 'sda',
        path: '/var/lib/libvirt/iso/archlinux.iso',
        format: 'raw',
        readonly: true,
      },
    ],
    serialSocket: '/var/lib/vms/work/serial.sock',
    serialLog: '/var/lib/vms/work/console.log',
    graphics: 'spice',
    networks: ['network:default', 'bridge:br0', 'user'],
    metadata: {
      profile: 'dev',
      created: '2026-01-02T03:04:05.000Z',
      createdFrom: 'golden',
      bases: ['/var/lib/libvirt/images/golden.qcow2', '/var/lib/libvirt/images/arch-base.qcow2'],
      made: [],
    },
  });
});

test('domainFacts: memory units, firmware detection and missing parts', async () => {
  const cases: [string, Partial<ReturnType<typeof domainFacts>>][] = [
    [`<memory unit='GiB'>2</memory>`, { memoryBytes: 2 * GiB, firmware: 'bios', cpus: 1 }],
    [`<memory unit='MiB'>512</memory><vcpu>3</vcpu>`, { memoryBytes: 512 * 2 ** 20, cpus: 3 }],
    [`<memory>1024</memory>`, { memoryBytes: 2 ** 20 }], // no unit = KiB
    [`<memory unit='bytes'>1000</memory>`, { memoryBytes: 1000 }],
    [
      `<os><type>hvm</type><loader readonly='yes' type='pflash'>/code.fd</loader><nvram>/n.fd</nvram></os>`,
      { firmware: 'efi', nvramPath: '/n.fd' },
    ],
    [`<os><type>hvm</type><loader type='rom'>/bios.bin</loader></os>`, { firmware: 'bios', nvramPath: undefined }],
    [
      `<devices><serial type='pty'><target port='0'/></serial></devices>`,
      { serialSocket: undefined, serialLog: undefined, graphics: undefined },
    ],
    [
      `<devices><disk type='block' device='disk'><source dev='/dev/vg/x'/><target dev='vdb'/></disk></devices>`,
      {
        disks: [
          { type: 'block', device: 'disk', target: 'vdb', path: '/dev/vg/x', format: undefined, readonly: false },
        ],
      },
    ],
    [
      `<devices><disk type='file' device='cdrom'><target dev='sdb'/><readonly/></disk></devices>`,
      { disks: [{ type: 'file', device: 'cdrom', target: 'sdb', path: undefined, format: undefined, readonly: true }] },
    ],
  ];
  for (const [inner, expected] of cases) {
    const facts = domainFacts(await parseDomainXml(minimal(inner)));
    for (const [key, value] of Object.entries(expected))
      assert.deepEqual(facts[key as keyof typeof facts], value, `${key} of ${inner}`);
  }
});

test('parseDomainXml refuses a document that is not a domain', async () => {
  await assert.rejects(parseDomainXml(`<network><name>default</name></network>`), /not a libvirt domain XML document/);
});

test('readMetadata finds the vms block under any prefix and ignores other namespaces', async () => {
  const cases: [string, ReturnType<typeof readMetadata>][] = [
    [
      `<metadata><x:vm xmlns:x="${VMS_NS}"><x:profile>p</x:profile><x:base>/b</x:base></x:vm></metadata>`,
      { profile: 'p', created: undefined, createdFrom: undefined, bases: ['/b'], made: [] },
    ],
    [
      `<metadata><vm xmlns="${VMS_NS}"><created-from>src</created-from></vm></metadata>`,
      { profile: undefined, created: undefined, createdFrom: 'src', bases: [], made: [] },
    ],
    [
      `<metadata><vms:vm xmlns:vms="https://example.org/other"><vms:profile>p</vms:profile></vms:vm></metadata>`,
      { bases: [], made: [] },
    ],
    [`<metadata/>`, { bases: [], made: [] }],
    ['', { bases: [], made: [] }],
  ];
  for (const [inner, expected] of cases)
    assert.deepEqual(readMetadata(await parseDomainXml(minimal(inner))), expected, inner);
});

const IDENTITY: CloneIdentity = {
  name: 'work2',
  disks: new Map([['vda', '/var/lib/libvirt/images/work2.qcow2']]),
  nvram: '/var/lib/vms/work2/nvram.fd',
  serialSocket: '/var/lib/vms/work2/serial.sock',
  consoleOwner: '+1000:+106',
  serialLog: '/var/lib/vms/work2/console.log',
  metadata: {
    profile: 'dev',
    created: '2026-02-03T04:05:06.000Z',
    createdFrom: 'work',
    bases: ['/var/lib/libvirt/images/work.qcow2', '/var/lib/libvirt/images/golden.qcow2'],
    made: [],
  },
};

test('cloneDefinition gives the copy a new identity and its own files', async () => {
  const domain = await parseDomainXml(FIXTURE);
  const before = structuredClone(domain);
  const clone = await cloneDefinition(domain, IDENTITY);
  assert.deepEqual(domain, before, 'the input is left alone');

  assert.deepEqual(clone.name, ['work2']);
  assert.equal(clone.uuid, undefined);
  const devices = clone.devices[0];
  assert.equal(devices.interface.length, 3);
  for (const iface of devices.interface) assert.equal(iface.mac, undefined);

  const [vda, sda] = devices.disk;
  assert.deepEqual(vda.source, [{ $: { file: '/var/lib/libvirt/images/work2.qcow2', index: '3' } }]);
  assert.equal(vda.backingStore, undefined);
  assert.deepEqual(sda.source, before.devices[0].disk[1].source, 'the cdrom is shared, not copied');

  const os = clone.os[0];
  assert.deepEqual(os.nvram, [
    { _: '/var/lib/vms/work2/nvram.fd', $: { template: '/usr/share/edk2/x64/OVMF_VARS.4m.fd' } },
  ]);
  assert.deepEqual(os.loader, before.os[0].loader);

  for (const kind of ['serial', 'console']) {
    const dev = devices[kind][0];
    const seclabel = [{ $: { model: 'dac', relabel: 'yes' }, label: ['+1000:+106'] }];
    assert.deepEqual(
      dev.source,
      [{ $: { mode: 'bind', path: '/var/lib/vms/work2/serial.sock' }, seclabel }],
      `${kind}: the cloning user may connect`,
    );
    assert.deepEqual(dev.log, [{ $: { file: '/var/lib/vms/work2/console.log', append: 'on' } }], kind);
  }

  const [agent, spice] = devices.channel;
  assert.equal(agent.source, undefined, 'libvirt picks a per-domain agent socket itself');
  assert.equal(agent.target[0].$.name, 'org.qemu.guest_agent.0');
  assert.deepEqual(spice, before.devices[0].channel[1]);

  const graphics = devices.graphics[0];
  assert.equal(graphics.$.port, undefined);
  assert.deepEqual(graphics.$, { type: 'spice', autoport: 'yes', listen: '127.0.0.1' });

  assert.deepEqual(
    clone.sysinfo[0].oemStrings[0].entry,
    ['vms.name=work2', 'other=kept'],
    'the guest learns its new name from SMBIOS',
  );

  const md = clone.metadata[0];
  assert.deepEqual(Object.keys(md).sort(), ['libosinfo:libosinfo', 'vms:vm']);
  assert.deepEqual(md['libosinfo:libosinfo'], before.metadata[0]['libosinfo:libosinfo']);
  // Checked through XML here; the in-memory shape is checked in the next test.
  assert.deepEqual(readMetadata(await parseDomainXml(await buildDomainXml(clone))), IDENTITY.metadata);
});

test('edited domains keep the xml2js shape: readMetadata sees the new block without a round trip', async () => {
  const clone = await cloneDefinition(await parseDomainXml(FIXTURE), IDENTITY);
  assert.ok(Array.isArray(clone.metadata[0]['vms:vm']));
  assert.deepEqual(readMetadata(clone), IDENTITY.metadata);
  assert.deepEqual(domainFacts(await withMetadata(clone, { bases: ['/x'], made: [] })).metadata, {
    profile: undefined,
    created: undefined,
    createdFrom: undefined,
    bases: ['/x'],
    made: [],
  });
});

test('the cloned definition builds back to schema-valid XML with the same facts', async () => {
  const xml = await buildDomainXml(await cloneDefinition(await parseDomainXml(FIXTURE), IDENTITY));
  assertValidDomainXml(xml, 'clone of the fixture');
  assert.ok(!xml.includes('<uuid>'));
  assert.ok(!xml.includes('<mac '));
  assert.ok(!xml.includes('<backingStore type'));
  assert.ok(!xml.includes('/var/lib/vms/work/'), 'no file of the source VM is referenced');
  assert.ok(xml.includes(`xmlns:libosinfo="${LIBOSINFO}"`));

  const facts = domainFacts(await parseDomainXml(xml));
  assert.equal(facts.name, 'work2');
  assert.equal(facts.uuid, '');
  assert.equal(facts.memoryBytes, 4 * GiB);
  assert.equal(facts.firmware, 'efi');
  assert.equal(facts.nvramPath, IDENTITY.nvram);
  assert.deepEqual(
    facts.disks.map((d) => d.path),
    ['/var/lib/libvirt/images/work2.qcow2', '/var/lib/libvirt/iso/archlinux.iso'],
  );
  assert.equal(facts.serialSocket, IDENTITY.serialSocket);
  assert.equal(facts.serialLog, IDENTITY.serialLog);
  assert.deepEqual(facts.metadata, IDENTITY.metadata);
});

test('cloneDefinition gives the clone its own files for extra ports that write a file or listen, in its directory, and records them', async () => {
  const console = `<source mode='bind' path='/var/lib/vms/work/serial.sock'/><target port='0'/>`;
  const seclabel = `<seclabel model='dac' relabel='yes'><label>+0:+0</label></seclabel>`;
  const domain = await parseDomainXml(
    minimal(
      `<devices><serial type='unix'>${console}</serial>` +
        `<serial type='file'><source path='/srv/logs/ttyS1.log' append='on'>${seclabel}</source><log file='/srv/logs/serial.log'/><target port='1'/></serial>` +
        `<serial type='unix'><source mode='bind' path='/srv/extra.sock'/><target port='2'/></serial>` +
        `<serial type='unix'><source mode='connect' path='/run/hub.sock'/><target port='3'/></serial>` +
        `<parallel type='file'><source path='/other/ttyS1.log'/><target port='0'/></parallel>` +
        `<console type='unix'>${console}</console></devices>`,
    ),
  );
  const before = structuredClone(domain);
  const clone = await cloneDefinition(domain, IDENTITY);
  assert.deepEqual(domain, before, 'the input is left alone');
  const [main, file, listen, connect] = clone.devices[0].serial;
  assert.equal(main.source[0].$.path, '/var/lib/vms/work2/serial.sock');
  assert.deepEqual(file.source, [
    {
      $: { path: '/var/lib/vms/work2/ttyS1.log', append: 'on' },
      seclabel: [{ $: { model: 'dac', relabel: 'yes' }, label: ['+1000:+106'] }],
    },
  ]);
  assert.deepEqual(
    file.log,
    [{ $: { file: '/var/lib/vms/work2/serial.log' } }],
    'the console transcript is console.log here, so serial.log is free',
  );
  assert.deepEqual(listen.source, [{ $: { mode: 'bind', path: '/var/lib/vms/work2/extra.sock' } }]);
  assert.deepEqual(
    connect.source,
    [{ $: { mode: 'connect', path: '/run/hub.sock' } }],
    "a client of someone else's socket keeps it",
  );
  assert.deepEqual(
    clone.devices[0].parallel[0].source,
    [{ $: { path: '/var/lib/vms/work2/ttyS1-2.log' } }],
    'the same name twice: the second gets a number',
  );
  const moved = [
    '/var/lib/vms/work2/ttyS1.log',
    '/var/lib/vms/work2/serial.log',
    '/var/lib/vms/work2/extra.sock',
    '/var/lib/vms/work2/ttyS1-2.log',
  ];
  assert.deepEqual(readMetadata(clone).made, [...IDENTITY.metadata.made, ...moved]);

  // A port named like the clone's own console transcript or NVRAM gets another name.
  const clash = await parseDomainXml(
    minimal(
      `<devices><serial type='unix'>${console}</serial><serial type='file'><source path='/srv/console.log'/><target port='1'/></serial><serial type='file'><source path='/srv/nvram.fd'/><target port='2'/></serial></devices>`,
    ),
  );
  const [, log, nv] = (await cloneDefinition(clash, IDENTITY)).devices[0].serial;
  assert.deepEqual(
    [log.source[0].$.path, nv.source[0].$.path],
    ['/var/lib/vms/work2/console-2.log', '/var/lib/vms/work2/nvram-2.fd'],
  );

  // No <console>: the first serial port is the console.
  delete domain.devices[0].console;
  const [first, other] = (await cloneDefinition(domain, IDENTITY)).devices[0].serial;
  assert.deepEqual(
    [first.source[0].$.path, other.source[0].$.path],
    ['/var/lib/vms/work2/serial.sock', '/var/lib/vms/work2/ttyS1.log'],
  );
});

test('cloneDefinition without an nvram leaves a BIOS VM without one', async () => {
  const clone = await cloneDefinition(await parseDomainXml(minimal(`<os><type>hvm</type></os>`)), {
    ...IDENTITY,
    nvram: undefined,
  });
  assert.equal(clone.os[0].nvram, undefined);
  assert.deepEqual(clone.name, ['work2']);
});

test('withDiskSources only touches the disks it is given', async () => {
  const domain = await parseDomainXml(FIXTURE);
  const before = structuredClone(domain);
  const out = withDiskSources(
    domain,
    new Map([
      ['sda', '/iso/other.iso'],
      ['vdz', '/nowhere.qcow2'],
    ]),
  );
  assert.deepEqual(domain, before);
  const [vda, sda] = out.devices[0].disk;
  assert.deepEqual(vda, before.devices[0].disk[0]);
  assert.deepEqual(sda.source, [{ $: { file: '/iso/other.iso', index: '1' } }]);
  assert.equal(sda.backingStore, undefined);
  assert.equal(out.devices[0].disk.length, 2);
});

test('withMetadata adds a vms block where there was no metadata, and replaces an existing one', async () => {
  const md = { profile: 'p&q', bases: [], made: [] };
  for (const inner of [
    '',
    '<metadata/>',
    `<metadata><old:vm xmlns:old="${VMS_NS}"><old:profile>x</old:profile></old:vm></metadata>`,
  ]) {
    const domain = await parseDomainXml(minimal(inner));
    const out = await withMetadata(domain, md);
    assert.deepEqual(Object.keys(out.metadata[0]), ['vms:vm'], inner);
    const xml = await buildDomainXml(out);
    assertValidDomainXml(xml, `withMetadata on ${inner}`);
    assert.deepEqual(
      readMetadata(await parseDomainXml(xml)),
      { profile: 'p&q', created: undefined, createdFrom: undefined, bases: [], made: [] },
      inner,
    );
  }
});

const PKG_SHARE = `<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='/var/cache/pacman/pkg'/><target dir='vms-pkg-host'/><readonly/></filesystem>`;
const PKG_SHARE_RW = `<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='/var/cache/vms/pkg'/><target dir='vms-pkg-rw'/></filesystem>`;
const USER_SHARE = `<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='/srv/data'/><target dir='data'/></filesystem>`;
const MEMORY_BACKING = `<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>`;

/** The fixture as `vms create` leaves it during an install: direct kernel boot, the ISO, package-cache shares. */
function installing(shares: string): string {
  const xml = FIXTURE.replace('<resource>', `${MEMORY_BACKING}\n  <resource>`)
    .replace(
      `<boot dev='hd'/>\n    <boot dev='cdrom'/>`,
      `<kernel>/var/cache/vms/iso/abc/vmlinuz-linux</kernel>\n    <initrd>/var/cache/vms/iso/abc/initramfs-linux.img</initrd>\n` +
        `    <cmdline>archisobasedir=arch archisosearchuuid=2024-05-01-10-00-43-00 console=ttyS0,115200</cmdline>\n    <smbios mode='sysinfo'/>`,
    )
    .replace(`<controller type='usb'`, `${shares}\n    <controller type='usb'`);
  assert.ok(
    xml.includes('<kernel>') && xml.includes('<memoryBacking>') && xml.includes(shares),
    'the fixture changed: fix installing()',
  );
  return xml;
}

test('withDiskBoot: boots from the disk, without kernel, cdrom or package-cache shares; a user share stays', async () => {
  const xml = installing(PKG_SHARE + USER_SHARE + PKG_SHARE_RW);
  assertValidDomainXml(xml, 'the installing domain');
  const domain = await parseDomainXml(xml);
  const before = structuredClone(domain);
  const out = withDiskBoot(domain);
  assert.deepEqual(domain, before, 'the input is left alone');

  const os = out.os[0];
  assert.deepEqual(os.boot, [{ $: { dev: 'hd' } }]);
  for (const key of ['kernel', 'initrd', 'cmdline']) assert.equal(os[key], undefined, key);
  assert.deepEqual(os.nvram, before.os[0].nvram);
  assert.deepEqual(os.loader, before.os[0].loader);
  assert.deepEqual(os.smbios, before.os[0].smbios);
  const devices = out.devices[0];
  assert.deepEqual(devices.disk, [before.devices[0].disk[0]], 'only the system disk');
  assert.deepEqual(
    devices.filesystem.map((f: XmlNode) => f.target[0].$.dir),
    ['data'],
  );
  assert.deepEqual(out.memoryBacking, before.memoryBacking, 'the user share still needs shared memory');

  const rebuilt = await buildDomainXml(out);
  assertValidDomainXml(rebuilt, 'withDiskBoot with a user share');
  const facts = domainFacts(await parseDomainXml(rebuilt));
  assert.deepEqual(
    facts.disks.map((d) => d.device),
    ['disk'],
  );
  assert.equal(facts.firmware, 'efi');
  assert.ok(
    !rebuilt.includes('vms-pkg-') && !rebuilt.includes('<kernel>') && !rebuilt.includes('archisobasedir'),
    rebuilt,
  );
});

test('withDiskBoot: with only package-cache shares, the filesystems and the shared memory go', async () => {
  const out = withDiskBoot(await parseDomainXml(installing(PKG_SHARE + PKG_SHARE_RW)));
  assert.equal(out.devices[0].filesystem, undefined);
  assert.equal(out.memoryBacking, undefined);
  const rebuilt = await buildDomainXml(out);
  assertValidDomainXml(rebuilt, 'withDiskBoot without shares left');
  assert.ok(!rebuilt.includes('<filesystem') && !rebuilt.includes('<memoryBacking'), rebuilt);

  // The fixture itself (no kernel, no shares): the second boot device goes, the rest of <os> stays.
  const plain = withDiskBoot(await parseDomainXml(FIXTURE));
  assert.deepEqual(plain.os[0].boot, [{ $: { dev: 'hd' } }]);
  assert.equal(plain.os[0].firmware[0].feature.length, 2);
  assertValidDomainXml(await buildDomainXml(plain), 'withDiskBoot on the fixture');
});

test('metadata pending survives renderMetadata → XML → readMetadata; an unknown step reads as none', async () => {
  for (const pending of PENDING_STEPS) {
    const md = {
      profile: 'dev',
      created: '2026-01-02T03:04:05.000Z',
      createdFrom: '/iso/arch.iso',
      pending,
      bases: [],
      made: [],
    };
    const xml = await buildDomainXml(await withMetadata(await parseDomainXml(FIXTURE), md));
    assertValidDomainXml(xml, `pending ${pending}`);
    assert.deepEqual(readMetadata(await parseDomainXml(xml)), md, pending);
    assert.ok(renderMetadata(md).includes(`<vms:pending>${pending}</vms:pending>`));
  }
  const done = readMetadata(
    await parseDomainXml(
      await buildDomainXml(await withMetadata(await parseDomainXml(FIXTURE), { profile: 'dev', bases: [], made: [] })),
    ),
  );
  assert.ok(!('pending' in done), 'no pending key when nothing is pending');

  for (const odd of ['reboot', 'INSTALL', '', ' install']) {
    const xml = minimal(
      `<metadata><vms:vm xmlns:vms="${VMS_NS}"><vms:profile>p</vms:profile><vms:pending>${odd}</vms:pending></vms:vm></metadata>`,
    );
    const md = readMetadata(await parseDomainXml(xml));
    assert.equal(md.pending, undefined, JSON.stringify(odd));
    assert.equal(md.profile, 'p');
  }
});
