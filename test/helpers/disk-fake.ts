// Shared by the disk command tests (not a test file itself): a VM `u` and its disks as libvirt prints them, the virsh
// and qemu-img calls `vms disk` makes, and a core Context on a FakeRunner with its images in a temp dir.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveConfig } from '../../src/config.js';
import { createContext } from '../../src/core/context.js';
import type { Progress } from '../../src/core/progress.js';
import { VmsError } from '../../src/errors.js';
import { VMS_NS } from '../../src/libvirt/metadata.js';
import type { RunResult } from '../../src/runner.js';
import type { FakeRunner, Expected } from './fake-runner.js';
import { batchCall, URI } from './virsh-fake.js';

export const domain = (devices: string, name = 'u') =>
  `<domain type='qemu'><name>${name}</name><memory unit='MiB'>256</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>${devices}</devices></domain>`;
export const BOOT = `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/img/u.qcow2'/><target dev='vda' bus='virtio'/></disk>`;
export const CDROM = `<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='/iso/x.iso'/><target dev='sda' bus='sata'/><readonly/></disk>`;
export const VM = domain(BOOT + CDROM);

export interface DiskSpec {
  bus?: string;
  format?: string;
  readonly?: boolean;
}

/** A file disk element at `target` (no driver type when `format` is ''). */
export function diskElement(target: string, path: string, spec: DiskSpec = {}): string {
  const { bus = 'virtio', format = 'qcow2', readonly = false } = spec;
  const driver = format ? `<driver name='qemu' type='${format}'/>` : '';
  return `<disk type='file' device='disk'>${driver}<source file='${path}'/><target dev='${target}' bus='${bus}'/>${readonly ? '<readonly/>' : ''}</disk>`;
}

/** `xml` with metadata.made holding `files`. */
export const withMade = (xml: string, files: string[]) =>
  xml.replace(
    '<devices>',
    `<metadata><vms:vm xmlns:vms="${VMS_NS}">${files.map((f) => `<vms:made>${f}</vms:made>`).join('')}</vms:vm></metadata><devices>`,
  );

export const virsh = (args: string[] | ((a: readonly string[]) => boolean), stdout = ''): Expected => ({
  cmd: 'virsh',
  args: typeof args === 'function' ? args : ['-c', URI, ...args],
  result: { stdout },
});

/** loadVm: the saved definition and the state; a running VM's live definition follows (`live`). */
export const load = (xml: string, state: string, live?: string) => [
  virsh(['dumpxml', 'u', '--inactive', '--security-info'], xml),
  virsh(['domstate', 'u'], `${state}\n`),
  ...(live === undefined ? [] : [virsh(['dumpxml', 'u'], live)]),
];

export const savedAgain = (xml: string) => virsh(['dumpxml', 'u', '--inactive', '--security-info'], xml);
export const liveAgain = (xml: string) => virsh(['dumpxml', 'u'], xml);

const FAILED_ATTACH = 'error: Failed to attach device\nerror: internal error: something broke';

/**
 * attach-device/detach-device u FILE FLAGS…, with the device file's content checked (it is gone afterwards); `fail`:
 * true, or virsh's error text.
 */
export const device = (verb: string, flags: string[], content: RegExp, fail: boolean | string = false): Expected => ({
  cmd: 'virsh',
  args: (a) =>
    a[2] === verb &&
    a[3] === 'u' &&
    content.test(readFileSync(a[4]!, 'utf8')) &&
    a.slice(5).join(' ') === flags.join(' '),
  result: fail ? { exitCode: 1, stderr: fail === true ? FAILED_ATTACH : fail } : {},
});

/** `virsh define FILE`, with the definition's content checked; `result` to make it fail. */
export const defined = (content: RegExp | ((text: string) => boolean), result?: Partial<RunResult>): Expected => ({
  cmd: 'virsh',
  args: (a) =>
    a[2] === 'define' &&
    (typeof content === 'function' ? content : (t: string) => content.test(t))(readFileSync(a[3]!, 'utf8')),
  ...(result && { result }),
});

/** The vms:made entries of a definition virsh was given. */
export const madeIn = (text: string) => [...text.matchAll(/<vms:made>([^<]*)<\/vms:made>/g)].map((m) => m[1]);

export const qemuImgInfo = (path: string, info: Record<string, unknown>): Expected => ({
  cmd: 'qemu-img',
  args: ['info', '-U', '--output=json', path],
  result: { stdout: JSON.stringify({ filename: path, ...info }) },
});

export const qemuImgCreate = (size: number): Expected => ({
  cmd: 'qemu-img',
  args: (a) => a[0] === 'create' && a.at(-1) === String(size),
});

export const NO_SNAPSHOTS = ' Name   Creation Time   State\n-----\n';

export interface OtherVm {
  name: string;
  xml: string;
  /** Its snapshots: name → the domain definition the snapshot holds. */
  snapshots?: Record<string, string>;
  /** Its snapshots cannot be listed (virsh fails): filesInUse counts it unreadable. */
  snapshotsFail?: boolean;
}

/**
 * filesInUse over u (shut off, `uXml`) and `others`: one batch for the definitions and snapshot lists, one for the
 * snapshots' definitions. Disks of a flat format (raw) or missing files make no qemu-img call.
 */
export function inUseCalls(uXml: string, others: OtherVm[], uSnapshots: Record<string, string> = {}): Expected[] {
  const vms: OtherVm[] = [{ name: 'u', xml: uXml, snapshots: uSnapshots }, ...others];
  const snaps = vms.flatMap((vm) => Object.entries(vm.snapshots ?? {}).map(([s, xml]) => ({ vm: vm.name, s, xml })));
  return [
    virsh(['list', '--all', '--name'], vms.map((v) => `${v.name}\n`).join('')),
    batchCall(
      vms.map((v) => `dumpxml ${v.name} --inactive`),
      vms.flatMap((v) => {
        const names = Object.keys(v.snapshots ?? {});
        const table = NO_SNAPSHOTS + names.map((s) => ` ${s}  2026  shutoff\n`).join('');
        return [v.xml, '', v.snapshotsFail ? '' : table, v.snapshotsFail ? '' : names.join('\n')];
      }),
    ),
    ...(snaps.length
      ? [
          batchCall(
            snaps.map((x) => `snapshot-dumpxml ${x.vm} ${x.s}`),
            snaps.map((x) => `<domainsnapshot><name>${x.s}</name>${x.xml}</domainsnapshot>`),
          ),
        ]
      : []),
  ];
}

/** A Progress that keeps the titles of the steps and the notes, in order. */
export function recordingProgress(): { progress: Progress; steps: string[]; notes: string[] } {
  const steps: string[] = [];
  const notes: string[] = [];
  return {
    steps,
    notes,
    progress: { step: (title, fn) => (steps.push(title), fn()), note: (m) => void notes.push(m) },
  };
}

/** A core Context on `runner` whose images dir is `images` (its state dir inside it). */
export const diskContext = (images: string, runner: FakeRunner, progress?: Progress) =>
  createContext({
    config: resolveConfig({
      env: { VMS_IMAGES_DIR: images, VMS_STATE_DIR: join(images, 'state'), VMS_CONFIG: join(images, 'none.json') },
    }),
    runner,
    progress,
  });

/** The VmsError `promise` rejects with (for exact checks of it); then every call `fake` expected was made. */
export async function failure(promise: Promise<unknown>, fake?: FakeRunner): Promise<VmsError> {
  const err = await promise.then(
    () => assert.fail('expected a failure'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof VmsError, String(err));
  fake?.done();
  return err;
}

/** What a caller decides on and shows of an error. */
export const facts = (e: VmsError) => ({ code: e.code, message: e.message, hint: e.hint, reason: e.reason });
