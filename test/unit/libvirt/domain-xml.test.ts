import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseStringPromise } from 'xml2js';
import { renderDomainXml, type DomainSpec, type NetworkSpec } from '../../../src/libvirt/domain-xml.js';
import { VMS_NS } from '../../../src/libvirt/metadata.js';
import { assertValidDomainXml } from '../../helpers/validate-xml.js';

const base: DomainSpec = {
  name: 'work',
  domainType: 'kvm',
  memoryBytes: 2 * 2 ** 30,
  cpus: 2,
  firmware: 'bios',
  diskPath: '/var/lib/libvirt/images/work.qcow2',
  network: { kind: 'none' },
  serialSocket: '/var/lib/vms/work/serial.sock',
  consoleOwner: '+1000:+106',
  serialLog: '/var/lib/vms/work/console.log',
  graphics: false,
  metadata: {
    profile: 'dev',
    created: '2026-01-02T03:04:05.000Z',
    bases: ['/var/lib/libvirt/images/base.qcow2'],
    made: [],
  },
};
const NVRAM = '/var/lib/vms/work/nvram.fd';
const ISO = '/var/lib/libvirt/iso/archlinux.iso';
const KERNEL = {
  kernel: '/var/lib/vms/work/vmlinuz',
  initrd: '/var/lib/vms/work/initrd.img',
  cmdline: 'console=ttyS0 root=/dev/vda1',
};

const count = (xml: string, s: string) => xml.split(s).length - 1;

test('every combination of options renders schema-valid XML with the expected devices', async (t) => {
  const networks: NetworkSpec[] = [{ kind: 'none' }, { kind: 'user' }, { kind: 'network', name: 'default' }];
  for (const firmware of ['bios', 'efi'] as const)
    for (const network of networks)
      for (const cdrom of [undefined, ISO])
        for (const kernelBoot of [undefined, KERNEL])
          for (const graphics of [true, false])
            for (const domainType of ['kvm', 'qemu'] as const) {
              const label = `${firmware} ${network.kind} ${cdrom ? 'cdrom' : 'no-cdrom'} ${kernelBoot ? 'kernel' : 'disk-boot'} ${graphics ? 'graphics' : 'headless'} ${domainType}`;
              await t.test(label, async () => {
                const spec: DomainSpec = {
                  ...base,
                  firmware,
                  nvramPath: firmware === 'efi' ? NVRAM : undefined,
                  network,
                  cdrom,
                  kernelBoot,
                  graphics,
                  domainType,
                };
                const xml = await renderDomainXml(spec);
                assertValidDomainXml(xml, label);

                assert.ok(xml.startsWith(`<domain type='${domainType}'>`));
                assert.ok(xml.includes(`<name>work</name>`));
                assert.ok(xml.includes(`<memory unit='MiB'>2048</memory>`));
                assert.ok(xml.includes(`<vcpu placement='static'>2</vcpu>`));
                assert.equal(xml.includes(`<os firmware='efi'>`), firmware === 'efi');
                assert.equal(xml.includes(`<nvram>${NVRAM}</nvram>`), firmware === 'efi');
                assert.equal(count(xml, '<nvram'), firmware === 'efi' ? 1 : 0);
                assert.equal(xml.includes(`mode='host-passthrough'`), domainType === 'kvm');
                assert.equal(xml.includes(`<model fallback='forbid'>qemu64</model>`), domainType === 'qemu');

                assert.equal(count(xml, '<interface'), network.kind === 'none' ? 0 : 1);
                assert.equal(xml.includes(`<interface type='user'>`), network.kind === 'user');
                assert.equal(xml.includes(`<interface type='network'>`), network.kind === 'network');
                assert.equal(xml.includes(`<source network='default'/>`), network.kind === 'network');

                assert.equal(xml.includes(`device='cdrom'`), cdrom !== undefined);
                assert.equal(xml.includes(`<source file='${ISO}'/>`), cdrom !== undefined);
                assert.equal(xml.includes(`<kernel>${KERNEL.kernel}</kernel>`), kernelBoot !== undefined);
                assert.equal(xml.includes(`<initrd>${KERNEL.initrd}</initrd>`), kernelBoot !== undefined);
                assert.equal(
                  xml.includes(`<cmdline>console&#x3D;ttyS0 root&#x3D;/dev/vda1</cmdline>`),
                  kernelBoot !== undefined,
                );
                assert.equal(xml.includes(`<boot dev='hd'/>`), kernelBoot === undefined);
                assert.equal(xml.includes(`<boot dev='cdrom'/>`), kernelBoot === undefined && cdrom !== undefined);

                assert.equal(xml.includes(`<graphics type='spice'`), graphics);
                assert.equal(xml.includes(`<model type='virtio' heads='1' primary='yes'/>`), graphics);
                assert.equal(xml.includes(`name='com.redhat.spice.0'`), graphics);
                assert.equal(xml.includes('<video>'), graphics);

                // Always: the serial console on a unix socket with a transcript, the guest agent, discard, metadata.
                // The socket belongs to the user who made the VM, so they can connect without root.
                const owner = `<seclabel model='dac' relabel='yes'>\n          <label>${base.consoleOwner}</label>\n        </seclabel>`;
                assert.ok(
                  xml.includes(
                    `<serial type='unix'>\n      <source mode='bind' path='${base.serialSocket}'>\n        ${owner}\n      </source>\n      <log file='${base.serialLog}' append='on'/>`,
                  ),
                );
                assert.ok(
                  xml.includes(`<console type='unix'>\n      <source mode='bind' path='${base.serialSocket}'/>`),
                );
                assert.ok(xml.includes(`<target type='virtio' name='org.qemu.guest_agent.0'/>`));
                assert.ok(xml.includes(`<driver name='qemu' type='qcow2' discard='unmap'/>`));
                assert.ok(xml.includes(`<source file='${base.diskPath}'/>`));
                assert.ok(xml.includes(`<vms:vm xmlns:vms="${VMS_NS}"><vms:profile>dev</vms:profile>`));
                assert.ok(xml.includes(`<vms:base>/var/lib/libvirt/images/base.qcow2</vms:base>`));
                assert.ok(!xml.includes('<uuid>'));
                assert.ok(
                  xml.includes(`<entry>vms.name=work</entry>`),
                  'the SMBIOS OEM string the guest reads its name from',
                );
                assert.ok(xml.includes(`<smbios mode='sysinfo'/>`));
                assert.ok(!xml.includes('<filesystem') && !xml.includes('<memoryBacking>'));
              });
            }
});

test('virtiofs shares come with shared memory backing, one filesystem per tag', async () => {
  for (const firmware of ['bios', 'efi'] as const) {
    const shares = [
      { source: '/var/cache/pacman/pkg', tag: 'vms-pkg-host' },
      { source: '/var/cache/vms/pkg/work', tag: 'vms-pkg-vm' },
    ];
    const xml = await renderDomainXml({
      ...base,
      firmware,
      nvramPath: firmware === 'efi' ? NVRAM : undefined,
      kernelBoot: KERNEL,
      cdrom: ISO,
      shares,
    });
    assertValidDomainXml(xml, `shares ${firmware}`);
    assert.equal(count(xml, `<driver type='virtiofs'/>`), 2);
    assert.ok(xml.includes(`<source dir='/var/cache/pacman/pkg'/>\n      <target dir='vms-pkg-host'/>`));
    assert.ok(xml.includes(`<source dir='/var/cache/vms/pkg/work'/>\n      <target dir='vms-pkg-vm'/>`));
    assert.ok(xml.includes(`<memoryBacking>\n    <source type='memfd'/>\n    <access mode='shared'/>`));
  }
});

test('a uuid is rendered when given, memory is rounded to MiB', async () => {
  const xml = await renderDomainXml({
    ...base,
    uuid: '6695eb01-f6a4-8304-79aa-97f2502e193f',
    memoryBytes: 1.5 * 2 ** 30 + 1000,
  });
  assertValidDomainXml(xml, 'uuid');
  assert.ok(xml.includes('<uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>'));
  assert.ok(xml.includes(`<memory unit='MiB'>1536</memory>`));
  assert.ok(xml.includes(`<currentMemory unit='MiB'>1536</currentMemory>`));
});

test('efi without an NVRAM path is refused', async () => {
  await assert.rejects(async () => renderDomainXml({ ...base, firmware: 'efi' }), /efi firmware needs an NVRAM path/);
});

test('markup characters in values are escaped and parse back to the exact strings', async () => {
  const nasty = `&<>"'\`=`;
  const spec: DomainSpec = {
    ...base,
    firmware: 'efi',
    nvramPath: `/var/lib/vms/a&b/nvram'${nasty}.fd`,
    diskPath: `/var/lib/libvirt/images/a&b<c>"d'e.qcow2`,
    cdrom: `/iso/it's "arch" & <more>.iso`,
    kernelBoot: { kernel: '/k&k', initrd: "/i'i", cmdline: `console=ttyS0 x="a&b" y='<c>' ${nasty}` },
    serialSocket: `/run/s'"<&>.sock`,
    serialLog: `/run/l'"<&>.log`,
    network: { kind: 'network', name: `net'"&` },
    metadata: {
      profile: `dev & "test" <'x'>`,
      created: nasty,
      createdFrom: `src<&>`,
      bases: [`/b'1`, `/b"2&`],
      made: [`/m<'&">`],
    },
  };
  const xml = await renderDomainXml(spec);
  assertValidDomainXml(xml, 'escaping');
  const { domain } = await parseStringPromise(xml);
  const os = domain.os[0];
  const devices = domain.devices[0];
  const [disk, cdrom] = devices.disk;
  const md = domain.metadata[0]['vms:vm'][0];
  assert.equal(os.nvram[0], spec.nvramPath);
  assert.equal(os.kernel[0], '/k&k');
  assert.equal(os.initrd[0], "/i'i");
  assert.equal(os.cmdline[0], spec.kernelBoot!.cmdline);
  assert.equal(disk.source[0].$.file, spec.diskPath);
  assert.equal(cdrom.source[0].$.file, spec.cdrom);
  assert.equal(devices.interface[0].source[0].$.network, `net'"&`);
  assert.equal(devices.serial[0].source[0].$.path, spec.serialSocket);
  assert.equal(devices.serial[0].log[0].$.file, spec.serialLog);
  assert.equal(devices.console[0].source[0].$.path, spec.serialSocket);
  assert.equal(md.$['xmlns:vms'], VMS_NS);
  assert.deepEqual(
    {
      profile: md['vms:profile'],
      created: md['vms:created'],
      from: md['vms:created-from'],
      bases: md['vms:base'],
      made: md['vms:made'],
    },
    {
      profile: [spec.metadata.profile],
      created: [nasty],
      from: ['src<&>'],
      bases: [`/b'1`, `/b"2&`],
      made: [`/m<'&">`],
    },
  );
});
