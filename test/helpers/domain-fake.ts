// Shared by the files-in-use, destroy and create tests (not a test file itself): small domain XML and the qemu-img and
// virsh answers that reading VMs' files takes, for the FakeRunner.
import { readFileSync } from 'node:fs';
import { VMS_NS } from '../../src/libvirt/metadata.js';
import type { Expected } from './fake-runner.js';
import { batchCall, URI, virshCall } from './virsh-fake.js';

export const domainXml = (name: string, devices: string, extra = '') =>
  `<domain type='qemu'><name>${name}</name>${extra}<devices>${devices}</devices></domain>`;

export const disk = (path: string, target: string, format = 'qcow2', more = '') =>
  `<disk type='file' device='disk'><driver name='qemu' type='${format}'/>` +
  `<source file='${path}'/><target dev='${target}'/>${more}</disk>`;

/** vms' metadata: the files it made for the VM and the bases it froze. */
export const metadata = (made: string[], bases: string[]) =>
  `<metadata><vms:vm xmlns:vms="${VMS_NS}">` +
  bases.map((b) => `<vms:base>${b}</vms:base>`).join('') +
  made.map((m) => `<vms:made>${m}</vms:made>`).join('') +
  `</vms:vm></metadata>`;

/** `virsh snapshot-list VM` of a VM without snapshots. */
export const NO_SNAPSHOTS = ' Name   Creation Time   State\n------------------------------------\n';

/** loadVm: the VM's saved definition, then its state. */
export const loadCalls = (name: string, xml: string, state = 'shut off') => [
  virshCall(['dumpxml', name, '--inactive', '--security-info'], xml),
  virshCall(['domstate', name], `${state}\n`),
];

export const listCall = (names: string[]) =>
  virshCall(['list', '--all', '--name'], names.map((n) => `${n}\n`).join(''));

/** filesInUse's batch that reads other VMs: per VM its saved and running definitions, snapshot table and names. */
export const readCall = (vms: [string, string[]][]) =>
  batchCall(
    vms.map(([n]) => `dumpxml ${n} --inactive`),
    vms.flatMap(([, outputs]) => outputs),
  );

/** What readCall answers for a VM read without trouble and without snapshots. */
export const readable = (xml: string) => [xml, xml, NO_SNAPSHOTS, ''];

/** `qemu-img info --backing-chain` of a disk: the image, then its backing files. */
export const chainCall = (path: string, chain: string[]): Expected => ({
  cmd: 'qemu-img',
  args: ['info', '-U', '--backing-chain', '--output=json', path],
  result: { stdout: JSON.stringify(chain.map((filename) => ({ filename, format: 'qcow2', 'virtual-size': 1 }))) },
});

/** `virsh define FILE`: the XML defined is handed to `seen` (and must pass `check`, when given). */
export const defineCall = (seen: (xml: string) => void, result: Expected['result'] = {}): Expected => ({
  cmd: 'virsh',
  args: (a) => {
    if (a.length !== 4 || a[0] !== '-c' || a[1] !== URI || a[2] !== 'define') return false;
    seen(readFileSync(a[3]!, 'utf8'));
    return true;
  },
  result,
});

/** The same expected call, with `look` run when it comes: to see the files and the journal at that moment. */
export const when = (call: Expected, look: () => void): Expected => ({
  ...call,
  args: (a) => {
    look();
    return typeof call.args === 'function' ? call.args(a) : JSON.stringify(a) === JSON.stringify(call.args);
  },
});
